package postgres

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// rawClient is a protocol-level client of the gateway: the test writes
// exactly the bytes it wants, in the writes it wants.
type rawClient struct {
	conn net.Conn
	fe   *pgproto3.Frontend
}

// dialRaw connects to g (over TLS unless plain) and sends the startup
// message, the password and then extra, all in one write, so that extra
// reaches the gateway before it has answered the login.
func dialRaw(t *testing.T, g *gateway, plain bool, extra []byte) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	conn := c
	if !plain {
		req := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), codeSSLRequest)
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		var answer [1]byte
		if _, err := io.ReadFull(c, answer[:]); err != nil || answer[0] != 'S' {
			t.Fatalf("SSLRequest: got %q, %v; want S", answer[:], err)
		}
		tc := tls.Client(c, &tls.Config{RootCAs: g.ca, ServerName: "127.0.0.1"})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		conn = tc
	}
	var buf []byte
	buf, _ = (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": "alice", "database": "orders"}}).Encode(buf)
	buf, _ = (&pgproto3.PasswordMessage{Password: goodToken}).Encode(buf)
	buf = append(buf, extra...)
	if _, err := conn.Write(buf); err != nil {
		t.Fatal(err)
	}
	return &rawClient{conn: conn, fe: pgproto3.NewFrontend(conn, conn)}
}

// encode concatenates the wire form of msgs.
func encode(t *testing.T, msgs ...pgproto3.FrontendMessage) []byte {
	t.Helper()
	var buf []byte
	for _, m := range msgs {
		var err error
		if buf, err = m.Encode(buf); err != nil {
			t.Fatal(err)
		}
	}
	return buf
}

// backendEvent is a copy of what the test needs from one backend message
// (messages alias the frontend's buffer).
type backendEvent struct {
	typ  string // "row", "complete", "error", "ready", "copy-out", "copy-data", "notification"
	text string // first column, command tag, SQLSTATE or payload
}

// readEvents reads backend messages until the ready-th ReadyForQuery after
// login (the login's own ReadyForQuery is not counted) or the end of input,
// and returns what it saw; err is the error that stopped it, if any.
func (rc *rawClient) readEvents(ready int) (events []backendEvent, err error) {
	loggedIn := false
	for ready > 0 {
		msg, err := rc.fe.Receive()
		if err != nil {
			return events, err
		}
		switch m := msg.(type) {
		case *pgproto3.BackendKeyData:
			loggedIn = true
		case *pgproto3.ReadyForQuery:
			if loggedIn {
				loggedIn = false // the login's ReadyForQuery
				continue
			}
			events = append(events, backendEvent{"ready", string(m.TxStatus)})
			ready--
		case *pgproto3.DataRow:
			events = append(events, backendEvent{"row", string(m.Values[0])})
		case *pgproto3.CommandComplete:
			events = append(events, backendEvent{"complete", string(m.CommandTag)})
		case *pgproto3.ErrorResponse:
			events = append(events, backendEvent{"error", m.Severity + " " + m.Code})
		case *pgproto3.NotificationResponse:
			events = append(events, backendEvent{"notification", m.Payload})
		}
	}
	return events, nil
}

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("count descriptors: %v", err)
	}
	return len(ents)
}

// waitForBaseline waits until the process has no more descriptors and
// goroutines than fds and goroutines; a leak makes it give up after
// waitFor's bound and fail the test with the counts.
func waitForBaseline(t *testing.T, fds, goroutines int) {
	t.Helper()
	var gotFDs, gotG int
	deadlineHit := true
	defer func() {
		if deadlineHit {
			t.Logf("descriptors: got %d, want at most %d; goroutines: got %d, want at most %d", gotFDs, fds, gotG, goroutines)
		}
	}()
	waitFor(t, "descriptors and goroutines back to their baseline", func() bool {
		gotFDs, gotG = openFDs(t), runtime.NumGoroutine()
		return gotFDs <= fds && gotG <= goroutines
	})
	deadlineHit = false
}

// waitReadyAfterLogin reads the login's answers up to ReadyForQuery.
func waitReadyAfterLogin(t *testing.T, rc *rawClient) {
	t.Helper()
	for {
		msg, err := rc.fe.Receive()
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			t.Fatalf("login: %s", m.Message)
		case *pgproto3.ReadyForQuery:
			return
		}
	}
}
