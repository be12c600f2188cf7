package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// loopAdded is how many sessions the event loop has taken so far.
func loopAdded(t *testing.T) int64 {
	t.Helper()
	all, err := sharedLoops()
	if err != nil {
		t.Fatalf("event loop: %v", err)
	}
	var n int64
	for _, l := range all {
		n += l.added.Load()
	}
	return n
}

// loopGivenBack is how many sessions the event loops have given back.
func loopGivenBack() int64 {
	all, _ := sharedLoops()
	var n int64
	for _, l := range all {
		n += l.givenBack.Load()
	}
	return n
}

// queryItem runs a lookup that must return "item id".
func queryItem(t *testing.T, conn *pgx.Conn, id int) {
	t.Helper()
	var name string
	if err := conn.QueryRow(context.Background(), "SELECT name FROM items WHERE id = $1", id).Scan(&name); err != nil {
		t.Fatalf("lookup %d: %v", id, err)
	}
	if want := fmt.Sprintf("item %d", id); name != want {
		t.Fatalf("lookup %d: got %q, want %q", id, name, want)
	}
}

func TestPlaintextSessionsRunOnTheLoop(t *testing.T) {
	before := loopAdded(t)
	tlsGW := startGateway(t, gatewayOptions{})
	queryItem(t, tlsGW.connect(t, nil), 1)
	if got := loopAdded(t); got != before {
		t.Errorf("a TLS session went to the event loop (%d sessions taken, want %d)", got, before)
	}
	plain := startGateway(t, gatewayOptions{plainClients: true})
	queryItem(t, plain.connect(t, nil), 2)
	if got := loopAdded(t); got != before+1 {
		t.Errorf("got %d sessions taken by the event loop, want %d", got, before+1)
	}
}

func TestLoopDisabledKeepsSessionsOnGoroutines(t *testing.T) {
	loopDisabled.Store(true)
	defer loopDisabled.Store(false)
	before := loopAdded(t)
	g := startGateway(t, gatewayOptions{plainClients: true})
	queryItem(t, g.connect(t, nil), 3)
	if got := loopAdded(t); got != before {
		t.Errorf("got %d sessions taken by the event loop, want %d", got, before)
	}
}

// TestLoopHandsBackLargeMessages sends and receives messages larger than
// the relay buffer, which the loop leaves to the goroutines, and checks the
// session carries on after the switch.
func TestLoopHandsBackLargeMessages(t *testing.T) {
	g := startGateway(t, gatewayOptions{plainClients: true})
	conn := g.connect(t, nil)
	ctx := context.Background()
	queryItem(t, conn, 4)
	backBefore := loopGivenBack()
	big := strings.Repeat("x", 3*relayBufferSize)
	var got string
	if err := conn.QueryRow(ctx, "SELECT $1::text", big).Scan(&got); err != nil || got != big {
		t.Fatalf("echo of %d bytes: got %d bytes, %v", len(big), len(got), err)
	}
	if loopGivenBack() == backBefore {
		t.Error("the loop kept the session; the test did not exercise the hand-back")
	}
	queryItem(t, conn, 5)
}

// TestLoopHandsBackToASlowReader streams a result far larger than the
// socket buffers to a client that does not read for a while: the loop's
// writes to it fill up, the session moves to goroutines with the unsent
// bytes, and every row still arrives, in order.
func TestLoopHandsBackToASlowReader(t *testing.T) {
	g := startGateway(t, gatewayOptions{plainClients: true})
	cfg := g.pgxConfig(t, goodToken, g.sslmode, nil)
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	stashedBefore := loopStashes.Load()
	// About 30 MB, more than the socket buffers between the gateway and
	// the client hold while the client does not read.
	const rows = 300000
	pgc := conn.PgConn()
	rr := pgc.ExecParams(context.Background(), "SELECT g, repeat('r', 80) FROM generate_series(1, $1::int) g",
		[][]byte{[]byte(fmt.Sprint(rows))}, nil, nil, nil)
	time.Sleep(200 * time.Millisecond) // not an assertion: lets the gateway's writes back up
	n := 0
	for rr.NextRow() {
		n++
		if got, want := string(rr.Values()[0]), fmt.Sprint(n); got != want {
			t.Fatalf("row %d: got id %s, want %s", n, got, want)
		}
	}
	if _, err := rr.Close(); err != nil {
		t.Fatal(err)
	}
	if n != rows {
		t.Fatalf("got %d rows, want %d", n, rows)
	}
	if loopStashes.Load() == stashedBefore {
		t.Error("the loop never met a full client socket; the test did not exercise the hand-back")
	}
	queryItem(t, conn, 6)
}

// TestLoopAssemblesSplitMessages writes a simple Query one byte at a time:
// the loop must wait for the whole message before handling it.
func TestLoopAssemblesSplitMessages(t *testing.T) {
	g := startGateway(t, gatewayOptions{plainClients: true})
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "alice", "database": "orders"}})
	fe.Send(&pgproto3.PasswordMessage{Password: goodToken})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, fe)
	q := []byte{'Q', 0, 0, 0, 0}
	q = append(q, "SELECT name FROM items WHERE id = 7\x00"...)
	binary.BigEndian.PutUint32(q[1:], uint32(len(q)-1))
	for i := range q {
		if _, err := c.Write(q[i : i+1]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // not an assertion: makes each byte its own segment
	}
	var got []string
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			got = append(got, string(m.Values[0]))
		case *pgproto3.ErrorResponse:
			t.Fatalf("error: %s", m.Message)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if len(got) != 1 || got[0] != "item 7" {
		t.Fatalf("got rows %q, want [item 7]", got)
	}
}

// waitReady reads the login answers up to ReadyForQuery.
func waitReady(t *testing.T, fe *pgproto3.Frontend) {
	t.Helper()
	for {
		msg, err := fe.Receive()
		if err == io.EOF {
			t.Fatal("gateway closed the connection during login")
		}
		if err != nil {
			t.Fatal(err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			t.Fatalf("login: %s", m.Message)
		case *pgproto3.ReadyForQuery:
			return
		}
	}
}
