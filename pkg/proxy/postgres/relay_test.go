package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/lib/pq"
)

func TestQueryModes(t *testing.T) { forTransports(t, testQueryModes) }

func testQueryModes(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	conn := g.connect(t, nil)
	ctx := context.Background()
	modes := []struct {
		name string
		mode pgx.QueryExecMode
	}{
		{"simple", pgx.QueryExecModeSimpleProtocol},
		{"extended-cached", pgx.QueryExecModeCacheStatement},
		{"extended-unnamed", pgx.QueryExecModeExec},
		{"extended-describe", pgx.QueryExecModeDescribeExec},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			var name string
			if err := conn.QueryRow(ctx, "SELECT name FROM items WHERE id = $1", m.mode, 42).Scan(&name); err != nil {
				t.Fatal(err)
			}
			if name != "item 42" {
				t.Errorf("got %q, want item 42", name)
			}
		})
	}
}

func TestLibPQ(t *testing.T) { forTransports(t, testLibPQ) }

func testLibPQ(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	db, err := sql.Open("postgres", g.dsn(goodToken, g.sslmode))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM items WHERE id <= $1", 10).Scan(&n); err != nil || n != 10 {
		t.Fatalf("got %d, %v; want 10", n, err)
	}
	_, err = db.Exec("DELETE FROM items WHERE id = $1", 5)
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "42501" || pe.Message != "deletes need an approval" {
		t.Fatalf("got %v, want the refusal with SQLSTATE 42501", err)
	}
	if err := db.QueryRow("SELECT count(*) FROM items").Scan(&n); err != nil || n != 1000 {
		t.Errorf("got %d, %v after refused delete; want 1000", n, err)
	}
}

func TestPipelinedBatch(t *testing.T) { forTransports(t, testPipelinedBatch) }

func testPipelinedBatch(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	conn := g.connect(t, nil)
	ctx := context.Background()
	b := &pgx.Batch{}
	for i := 1; i <= 5; i++ {
		b.Queue("SELECT name FROM items WHERE id = $1", i)
	}
	b.Queue("SELECT count(*) FROM items WHERE id < $1", 100)
	br := conn.SendBatch(ctx, b)
	for i := 1; i <= 5; i++ {
		var name string
		if err := br.QueryRow().Scan(&name); err != nil || name != fmt.Sprintf("item %d", i) {
			t.Fatalf("batch row %d: got %q, %v", i, name, err)
		}
	}
	var n int
	if err := br.QueryRow().Scan(&n); err != nil || n != 99 {
		t.Fatalf("got count %d, %v; want 99", n, err)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	executes := 0
	for _, e := range g.rec.statements() {
		if e.Kind == KindExecute && e.Executed && e.CommandTag == "SELECT" && e.Rows == 1 {
			executes++
		}
	}
	if executes < 6 {
		t.Errorf("got %d executed SELECT events of one row, want 6", executes)
	}
}

func TestRefusedStatementAbortsTransaction(t *testing.T) {
	forTransports(t, testRefusedStatementAbortsTransaction)
}

func testRefusedStatementAbortsTransaction(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	conn := g.connect(t, nil)
	ctx := context.Background()
	modes := []struct {
		name string
		mode pgx.QueryExecMode
	}{
		{"simple", pgx.QueryExecModeSimpleProtocol},
		{"extended", pgx.QueryExecModeCacheStatement},
	}
	for i, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO scratch VALUES ($1, 'in refused tx')", m.mode, i); err != nil {
				t.Fatal(err)
			}
			_, err = tx.Exec(ctx, "DROP TABLE items", m.mode)
			if code := pgCode(err); code != "42501" || !strings.Contains(err.Error(), "destructive DDL is not allowed") {
				t.Fatalf("got %v, want the refusal with SQLSTATE 42501", err)
			}
			if err := tx.Commit(ctx); !errors.Is(err, pgx.ErrTxCommitRollback) {
				t.Fatalf("got commit result %v, want the transaction rolled back", err)
			}
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM scratch WHERE id = $1", i).Scan(&n); err != nil || n != 0 {
				t.Errorf("got %d rows, %v from the refused transaction; want 0", n, err)
			}
		})
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('items') IS NOT NULL").Scan(&exists); err != nil || !exists {
		t.Errorf("items exists: %v, %v; want true", exists, err)
	}
}

func TestRefusedParseWithParameters(t *testing.T) { forTransports(t, testRefusedParseWithParameters) }

func testRefusedParseWithParameters(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	conn := g.connect(t, nil)
	ctx := context.Background()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeDescribeExec} {
		_, err := conn.Exec(ctx, "DELETE FROM items WHERE id = $1 AND name = $2", mode, 7, "item 7")
		if code := pgCode(err); code != "42501" || !strings.Contains(err.Error(), "deletes need an approval") {
			t.Fatalf("mode %v: got %v, want the refusal with SQLSTATE 42501", mode, err)
		}
	}
	// A named statement the gateway refused stays refused when bound again
	// with parameters.
	pc := conn.PgConn()
	if _, err := pc.Prepare(ctx, "del", "DELETE FROM items WHERE id = $1", nil); pgCode(err) != "42501" {
		t.Fatalf("prepare: got %v, want SQLSTATE 42501", err)
	}
	res := pc.ExecPrepared(ctx, "del", [][]byte{[]byte("7")}, nil, nil).Read()
	if code := pgCode(res.Err); code != "42501" || !strings.Contains(res.Err.Error(), "deletes need an approval") {
		t.Fatalf("exec prepared: got %v, want the refusal", res.Err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM items WHERE id = 7").Scan(&n); err != nil || n != 1 {
		t.Errorf("got %d, %v; want row 7 still there", n, err)
	}
	refused := 0
	for _, e := range g.rec.statements() {
		if !e.Allowed && e.Verdict.Rule == "no-delete" {
			refused++
		}
	}
	if refused < 5 {
		t.Errorf("got %d refused events, want at least 5", refused)
	}
}

func TestCopy(t *testing.T) { forTransports(t, testCopy) }

func testCopy(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	conn := g.connect(t, nil)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE TEMP TABLE copied (id int, note text)"); err != nil {
		t.Fatal(err)
	}
	rows := make([][]any, 5000)
	for i := range rows {
		rows[i] = []any{i, strings.Repeat("x", i%100)}
	}
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"id", "note"}, pgx.CopyFromRows(rows))
	if err != nil || n != 5000 {
		t.Fatalf("copy from: got %d, %v; want 5000", n, err)
	}
	var out bytes.Buffer
	tag, err := conn.PgConn().CopyTo(ctx, &out, "COPY (SELECT id, name FROM items ORDER BY id) TO STDOUT")
	if err != nil || tag.RowsAffected() != 1000 {
		t.Fatalf("copy to: got %v, %v; want 1000 rows", tag, err)
	}
	if lines := strings.Count(out.String(), "\n"); lines != 1000 || !strings.HasPrefix(out.String(), "1\titem 1\n") {
		t.Errorf("got %d lines starting %q, want 1000 starting 1\\titem 1", lines, out.String()[:10])
	}
	// COPY FROM STDIN in text form, through the simple protocol.
	tag, err = conn.PgConn().CopyFrom(ctx, strings.NewReader("1\tone\n2\ttwo\n"), "COPY copied FROM STDIN")
	if err != nil || tag.RowsAffected() != 2 {
		t.Fatalf("copy from stdin: got %v, %v; want 2 rows", tag, err)
	}
}

func TestListenNotify(t *testing.T) { forTransports(t, testListenNotify) }

func testListenNotify(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	listener, notifier := g.connect(t, nil), g.connect(t, nil)
	ctx := context.Background()
	if _, err := listener.Exec(ctx, "LISTEN orders_changed"); err != nil {
		t.Fatal(err)
	}
	if _, err := notifier.Exec(ctx, "SELECT pg_notify('orders_changed', 'order 7 shipped')"); err != nil {
		t.Fatal(err)
	}
	n, err := listener.WaitForNotification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Channel != "orders_changed" || n.Payload != "order 7 shipped" {
		t.Errorf("got %s/%q, want orders_changed/\"order 7 shipped\"", n.Channel, n.Payload)
	}
}

func TestCancel(t *testing.T) { forTransports(t, testCancel) }

func testCancel(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	cfg := g.pgxConfig(t, goodToken, g.sslmode, nil)
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 1 << 62}
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	admin := adminConn(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		waitFor(t, "pg_sleep to run", func() bool { return sleeping(admin) > 0 })
		cancel()
	}()
	_, err = conn.Exec(ctx, "SELECT pg_sleep(600)")
	if code := pgCode(err); code != "57014" {
		t.Fatalf("got %v, want SQLSTATE 57014 (query_canceled)", err)
	}
	var one int
	if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("after cancel: got %d, %v; want 1", one, err)
	}
}

// sleeping counts the target's backends running pg_sleep as orders_rw.
func sleeping(admin *pgx.Conn) int { return running(admin, "pg_sleep") }

// running counts the target's active sessions whose query contains s.
func running(admin *pgx.Conn, s string) int {
	var n int
	admin.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_stat_activity WHERE usename = 'orders_rw' AND state = 'active' AND strpos(query, $1) > 0", s).Scan(&n)
	return n
}

func TestMaxMessageSize(t *testing.T) { forTransports(t, testMaxMessageSize) }

func testMaxMessageSize(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain, maxMessage: 64 << 10})
	conn := g.connect(t, nil)
	ctx := context.Background()
	_, err := conn.Exec(ctx, "SELECT '"+strings.Repeat("a", 100<<10)+"'", pgx.QueryExecModeSimpleProtocol)
	if code := pgCode(err); code != codeProgramLimitExceeded {
		t.Fatalf("got %v, want SQLSTATE %s", err, codeProgramLimitExceeded)
	}
	if !conn.IsClosed() && conn.Ping(ctx) == nil {
		t.Error("connection still usable after an oversized message")
	}
	if stats := <-g.rec.ends; stats.Reason != reasonTooLarge {
		t.Errorf("got end reason %q, want %q", stats.Reason, reasonTooLarge)
	}
}

func TestClientDisconnectMidQuery(t *testing.T) { forTransports(t, testClientDisconnectMidQuery) }

func testClientDisconnectMidQuery(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	conn := g.connect(t, nil)
	admin := adminConn(t)
	// Its own mark: another test's pg_sleep may still be ending.
	mark := fmt.Sprintf("disconnect-%t-%d", plain, time.Now().UnixNano())
	go conn.Exec(context.Background(), "SELECT pg_sleep(600) -- "+mark)
	waitFor(t, "pg_sleep to run", func() bool { return running(admin, mark) > 0 })
	conn.PgConn().Conn().Close()
	stats := <-g.rec.ends
	if stats.Reason != reasonClientGone {
		t.Errorf("got end reason %q, want %q", stats.Reason, reasonClientGone)
	}
	waitFor(t, "the target to end the query", func() bool { return running(admin, mark) == 0 })
	var events []StatementEvent
	for _, e := range g.rec.statements() {
		if strings.Contains(e.Text, mark) {
			events = append(events, e)
		}
	}
	// pgx's read failure also sends a CancelRequest, which the gateway
	// forwards: when it wins the race with the session's end, the target
	// answers 57014 before the gateway closes its connection.
	if len(events) != 1 || events[0].Executed && events[0].ErrorCode != "57014" {
		t.Errorf("got pg_sleep events %+v, want one that did not complete (or was cancelled)", events)
	}
}

func TestTargetKilledMidSession(t *testing.T) { forTransports(t, testTargetKilledMidSession) }

func testTargetKilledMidSession(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain, plaintext: true})
	other := g.connect(t, nil)
	admin := adminConn(t)
	ctx := context.Background()

	// A raw client, to see every message the gateway sends.
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": "alice", "database": "orders"}})
	fe.Send(&pgproto3.PasswordMessage{Password: goodToken})
	fe.Send(&pgproto3.Query{String: "SELECT pg_backend_pid()"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var pid string
	for pid == "" {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := msg.(*pgproto3.DataRow); ok {
			pid = string(d.Values[0])
		}
	}
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend("+pid+")"); err != nil {
		t.Fatal(err)
	}
	var codes []string
	for {
		msg, err := fe.Receive()
		if err != nil {
			break
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			codes = append(codes, e.Severity+" "+e.Code+" "+e.Message)
		}
	}
	// The target's own FATAL says why; the gateway adds none of its own.
	if len(codes) != 1 || !strings.HasPrefix(codes[0], "FATAL 57P01 terminating connection") {
		t.Errorf("got errors %q, want only the target's FATAL 57P01", codes)
	}
	var one int
	if err := other.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("other session: got %d, %v; want 1", one, err)
	}
}

func TestFunctionCall(t *testing.T) { forTransports(t, testFunctionCall) }

func testFunctionCall(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain, plaintext: true})
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": "alice", "database": "orders"}})
	fe.Send(&pgproto3.PasswordMessage{Password: goodToken})
	fe.Flush()
	readUntilReady(t, fe)
	tests := []struct {
		name     string
		oid      uint32
		wantCode string
	}{
		{"allowed-pg-backend-pid", 2026, ""},
		{"refused-now", 1299, "42501"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fe.Send(&pgproto3.FunctionCall{Function: tt.oid, ResultFormatCode: 0})
			fe.Flush()
			msgs := readUntilReady(t, fe)
			code := ""
			for _, m := range msgs {
				if e, ok := m.(*pgproto3.ErrorResponse); ok {
					code = e.Code
				}
			}
			if code != tt.wantCode {
				t.Errorf("got SQLSTATE %q, want %q", code, tt.wantCode)
			}
		})
	}
}

// readUntilReady returns the messages up to ReadyForQuery (a description of
// each; messages alias the frontend's buffer).
func readUntilReady(t *testing.T, fe *pgproto3.Frontend) []pgproto3.BackendMessage {
	t.Helper()
	var msgs []pgproto3.BackendMessage
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			cp := *e
			msg = &cp
		}
		msgs = append(msgs, msg)
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return msgs
		}
	}
}

// TestTerminateIsNotTargetLost checks that a client saying goodbye ends the
// session as client-terminate: the target closing right after the forwarded
// Terminate raced the client side and was once reported as a lost target.
func TestTerminateIsNotTargetLost(t *testing.T) { forTransports(t, testTerminateIsNotTargetLost) }

func testTerminateIsNotTargetLost(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	for i := range 40 {
		conn := g.connect(t, nil)
		// Bounded: a lost answer is a failure naming the session, not a
		// test binary that hangs until its timeout.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := conn.Exec(ctx, "SELECT 1")
		cancel()
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		conn.Close(context.Background())
		if stats := <-g.rec.ends; stats.Reason != reasonTerminate {
			t.Fatalf("session %d: got end reason %q, want %q", i, stats.Reason, reasonTerminate)
		}
	}
}

// TestOversizedMessageAfterAQuery sends a query and, in the same write, the
// header of a message over the limit. As PostgreSQL would, the gateway
// runs the query it had already read and checked before it ends the
// session with 54000, on the event loop and on goroutines alike.
func TestOversizedMessageAfterAQuery(t *testing.T) { forTransports(t, testOversizedMessageAfterAQuery) }

func testOversizedMessageAfterAQuery(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain, maxMessage: 64 << 10})
	admin := adminConn(t)
	marker := fmt.Sprintf("before-oversized-%t-%d", plain, time.Now().UnixNano())
	extra := encode(t, &pgproto3.Query{String: "INSERT INTO scratch VALUES (9003, '" + marker + "')"})
	extra = append(extra, 'Q', 0, 0x10, 0, 0) // 1 MiB announced; the body never comes
	rc := dialRaw(t, g, plain, extra)
	events, _ := rc.readEvents(2)
	var sawError bool
	for _, e := range events {
		sawError = sawError || e == backendEvent{"error", "FATAL " + codeProgramLimitExceeded}
	}
	if !sawError {
		t.Errorf("got %v, want a FATAL %s", events, codeProgramLimitExceeded)
	}
	if stats := <-g.rec.ends; stats.Reason != reasonTooLarge {
		t.Errorf("got end reason %q, want %q", stats.Reason, reasonTooLarge)
	}
	waitFor(t, "the query read before the oversized message to run", func() bool {
		var n int
		admin.QueryRow(context.Background(), "SELECT count(*) FROM scratch WHERE note = $1", marker).Scan(&n)
		return n == 1
	})
}

// TestTargetConnectionCut: a target connection that ends without the
// target's own FATAL (a network failure) is reported to the client as
// FATAL 08006 naming the target.
func TestTargetConnectionCut(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		pg := needPG(t)
		cut := startCutter(t, pg.Addr())
		g := startGateway(t, gatewayOptions{plainClients: plain, upstream: &Upstream{Address: cut.addr, Database: "orders",
			User: "orders_rw", Password: rwPassword, TLSMode: "disable"}})
		rc := dialRaw(t, g, plain, nil)
		waitReadyAfterLogin(t, rc)
		cut.cut()
		var fatals []string
		rc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			msg, err := rc.fe.Receive()
			if err != nil {
				break
			}
			if e, ok := msg.(*pgproto3.ErrorResponse); ok {
				fatals = append(fatals, e.Severity+" "+e.Code+" "+e.Message)
			}
		}
		if want := `FATAL 08006 connection to target "orders" lost`; fmt.Sprint(fatals) != "["+want+"]" {
			t.Errorf("got %q, want only %q", fatals, want)
		}
		if r := (<-g.rec.ends).Reason; r != reasonTargetLost {
			t.Errorf("end reason %q", r)
		}
	})
}

// cutter forwards TCP connections to a target until cut closes them all.
type cutter struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func startCutter(t *testing.T, target string) *cutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c := &cutter{addr: ln.Addr().String()}
	t.Cleanup(c.cut)
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go io.Copy(out, in)
			go io.Copy(in, out)
		}
	}()
	return c
}

func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// TestClientGoneCancelsItsStatement: a client that goes away without a
// CancelRequest (killed, its machine gone) leaves its statement running
// on the target, which notices the closed connection only when it next
// writes: the gateway cancels it (a resilience test's finding: a killed
// psql's pg_sleep(30) ran to its end). The audit marks it interrupted,
// not skipped: it ran, in part.
func TestClientGoneCancelsItsStatement(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		admin := adminConn(t)
		mark := fmt.Sprintf("gone-%t-%d", plain, time.Now().UnixNano())
		text := "SELECT pg_sleep(60) -- " + mark
		// As on a target that does not look for closed connections (the
		// default; the tests' server does every 100ms).
		rc := dialRaw(t, g, plain, encode(t, &Q{String: "SET client_connection_check_interval = 0"}, &Q{String: text}))
		waitFor(t, "pg_sleep to run", func() bool { return running(admin, mark) > 0 })
		rc.conn.Close()
		if stats := <-g.rec.ends; stats.Reason != reasonClientGone {
			t.Errorf("got end reason %q, want %q", stats.Reason, reasonClientGone)
		}
		waitFor(t, "the target to end the statement", func() bool { return running(admin, mark) == 0 })
		var events []StatementEvent
		for _, e := range g.rec.statements() {
			if e.Text == text {
				events = append(events, e)
			}
		}
		if len(events) != 1 || !events[0].Interrupted || events[0].Executed {
			t.Errorf("got events %+v, want one interrupted, not executed", events)
		}
	})
}
