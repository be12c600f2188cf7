package postgres

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestLoopPipelinedStartup sends simple and extended queries, refused ones
// among them, in the same write as the password, before the gateway has
// answered the login: they sit in the session's read buffer when it enters
// the event loop. Each must be answered in order, the refused ones must never
// reach the target, and the observer must see the same events as on
// goroutines.
func TestLoopPipelinedStartup(t *testing.T) {
	var mu sync.Mutex
	observed := map[bool][]string{}
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		admin := adminConn(t)
		ctx := context.Background()
		marker := 910001
		if plain {
			marker = 910002
		}
		if _, err := admin.Exec(ctx, "INSERT INTO scratch VALUES ($1, 'must survive')", marker); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Exec(ctx, "DELETE FROM scratch WHERE id = $1", marker) })
		del := fmt.Sprintf("DELETE FROM scratch WHERE id = %d", marker)
		extra := encode(t,
			&pgproto3.Query{String: "SELECT name FROM items WHERE id = 11"},
			&pgproto3.Query{String: del},
			&pgproto3.Parse{Query: "DELETE FROM scratch WHERE id = $1"},
			&pgproto3.Bind{Parameters: [][]byte{[]byte(fmt.Sprint(marker))}},
			&pgproto3.Execute{},
			&pgproto3.Sync{},
			&pgproto3.Parse{Query: "SELECT name FROM items WHERE id = $1"},
			&pgproto3.Bind{Parameters: [][]byte{[]byte("12")}},
			&pgproto3.Execute{},
			&pgproto3.Sync{},
			&pgproto3.Query{String: "SELECT name FROM items WHERE id = 13"},
		)
		rc := dialRaw(t, g, plain, extra)
		got, err := rc.readEvents(5)
		if err != nil {
			t.Fatalf("read answers: %v (got %v)", err, got)
		}
		want := []backendEvent{
			{"row", "item 11"}, {"complete", "SELECT 1"}, {"ready", "I"},
			{"error", "ERROR 42501"}, {"ready", "I"},
			{"error", "ERROR 42501"}, {"ready", "I"},
			{"row", "item 12"}, {"complete", "SELECT 1"}, {"ready", "I"},
			{"row", "item 13"}, {"complete", "SELECT 1"}, {"ready", "I"},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("got answers\n%v\nwant\n%v", got, want)
		}
		var n int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM scratch WHERE id = $1", marker).Scan(&n); err != nil || n != 1 {
			t.Errorf("got %d marker rows, %v; want 1 (a refused DELETE reached the target)", n, err)
		}
		var events []string
		for _, e := range g.rec.statements() {
			text := strings.ReplaceAll(e.Text, fmt.Sprint(marker), "MARKER")
			events = append(events, fmt.Sprintf("%s|%s|allowed=%v|executed=%v|%s|%s", e.Kind, text, e.Allowed, e.Executed, e.CommandTag, e.ErrorCode))
		}
		mu.Lock()
		observed[plain] = events
		mu.Unlock()
		if plain {
			if got, want := strings.Join(events, "\n"), strings.Join(observed[false], "\n"); got != want {
				t.Errorf("observer events on the event loop:\n%s\nwant (as on goroutines):\n%s", got, want)
			}
		}
	})
}

// TestLoopEndReasonsMatch ends sessions in ways the event loop hands back
// (end of input, a half-close, a handler error, a lost target) and checks
// each ends with the reason the goroutine relay reports for the same event,
// and the client sees the same final error.
func TestLoopEndReasonsMatch(t *testing.T) {
	type outcome struct{ reason, lastError string }
	scenarios := []struct {
		name string
		// act drives a logged-in raw client to the end of its session.
		act  func(t *testing.T, rc *rawClient, admin *pgx.Conn)
		want outcome
	}{
		{"client-eof-mid-message", func(t *testing.T, rc *rawClient, _ *pgx.Conn) {
			q := encode(t, &pgproto3.Query{String: "SELECT 1"})
			rc.conn.Write(q[:len(q)-3])
			rc.conn.Close()
		}, outcome{reasonClientGone, ""}},
		{"half-close-after-query", func(t *testing.T, rc *rawClient, _ *pgx.Conn) {
			rc.conn.Write(encode(t, &pgproto3.Query{String: "SELECT 1"}))
			closeWrite(t, rc.conn)
		}, outcome{reasonClientGone, ""}},
		{"malformed-query", func(t *testing.T, rc *rawClient, _ *pgx.Conn) {
			rc.conn.Write([]byte{'Q', 0, 0, 0, 8, 'a', 'b', 'c', 'd'})
		}, outcome{reasonProtocolError, "FATAL 08P01"}},
		{"bind-of-unseen-statement", func(t *testing.T, rc *rawClient, _ *pgx.Conn) {
			rc.conn.Write(encode(t, &pgproto3.Bind{PreparedStatement: "never-parsed"}, &pgproto3.Execute{}, &pgproto3.Sync{}))
		}, outcome{reasonRefused, "FATAL 42501"}},
		{"invalid-length", func(t *testing.T, rc *rawClient, _ *pgx.Conn) {
			rc.conn.Write([]byte{'Q', 0, 0, 0, 2})
		}, outcome{reasonProtocolError, "FATAL 08P01"}},
		{"target-terminated", func(t *testing.T, rc *rawClient, admin *pgx.Conn) {
			rc.conn.Write(encode(t, &pgproto3.Query{String: "SELECT pg_backend_pid()"}))
			ev, err := rc.readEvents(1)
			if err != nil || len(ev) == 0 {
				t.Fatalf("backend pid: got %v, %v", ev, err)
			}
			if _, err := admin.Exec(context.Background(), "SELECT pg_terminate_backend("+ev[0].text+")"); err != nil {
				t.Fatal(err)
			}
		}, outcome{reasonTargetLost, "FATAL 57P01"}}, // the target's own, and no second one
		{"terminate", func(t *testing.T, rc *rawClient, _ *pgx.Conn) {
			rc.conn.Write(encode(t, &pgproto3.Query{String: "SELECT 1"}, &pgproto3.Terminate{}))
		}, outcome{reasonTerminate, ""}},
	}
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		admin := adminConn(t)
		for _, sc := range scenarios {
			t.Run(sc.name, func(t *testing.T) {
				rc := dialRaw(t, g, plain, nil)
				waitReadyAfterLogin(t, rc)
				sc.act(t, rc, admin)
				var got outcome
				// The client's view: the last FATAL error before the end of
				// input. On a protocol violation it half-closes, as a client
				// that stops sending would, which ends the gateway's
				// lingering (lingerClose) at once instead of after its bound.
				halfClosed := false
				for {
					msg, err := rc.fe.Receive()
					if err != nil {
						break
					}
					if e, ok := msg.(*pgproto3.ErrorResponse); ok && e.Severity == "FATAL" {
						got.lastError = e.Severity + " " + e.Code
						if !halfClosed && e.Code == codeProtocolViolation {
							rc.conn.(interface{ CloseWrite() error }).CloseWrite()
							halfClosed = true
						}
					}
				}
				got.reason = (<-g.rec.ends).Reason
				if got != sc.want {
					t.Errorf("got %+v, want %+v", got, sc.want)
				}
			})
		}
	})
}

// closeWrite half-closes c (TCP or TLS over TCP).
func closeWrite(t *testing.T, c net.Conn) {
	t.Helper()
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("%T cannot half-close", c)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
}

// TestLoopLeaksNothing runs sessions that end in every way a session
// on the event loop can end and checks the process is left with no more
// descriptors and goroutines than before.
func TestLoopLeaksNothing(t *testing.T) {
	g := startGateway(t, gatewayOptions{plainClients: true, maxMessage: 64 << 10})
	admin := adminConn(t)
	ctx := context.Background()
	// Warm up: start the loops and the runtime's own descriptors.
	warm := g.connect(t, nil)
	queryItem(t, warm, 1)
	warm.Close(ctx)
	<-g.rec.ends
	runtime.GC()
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	ends := []struct {
		name string
		end  func(t *testing.T, conn *pgx.Conn)
	}{
		{"terminate", func(t *testing.T, conn *pgx.Conn) { conn.Close(ctx) }},
		{"client-eof", func(t *testing.T, conn *pgx.Conn) { conn.PgConn().Conn().Close() }},
		{"large-then-terminate", func(t *testing.T, conn *pgx.Conn) {
			var got string
			big := strings.Repeat("y", 40<<10)
			if err := conn.QueryRow(ctx, "SELECT $1::text", big).Scan(&got); err != nil || got != big {
				t.Fatalf("echo: got %d bytes, %v", len(got), err)
			}
			conn.Close(ctx)
		}},
		{"too-large", func(t *testing.T, conn *pgx.Conn) {
			conn.Exec(ctx, "SELECT '"+strings.Repeat("a", 100<<10)+"'", pgx.QueryExecModeSimpleProtocol)
			conn.Close(ctx)
		}},
		{"target-terminated", func(t *testing.T, conn *pgx.Conn) {
			var pid int
			if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
				t.Fatal(err)
			}
			if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the gateway to notice the lost target", func() bool { return len(g.rec.ends) > 0 })
			conn.Close(ctx)
		}},
	}
	for round := range 5 {
		for _, e := range ends {
			conn, err := pgx.ConnectConfig(ctx, g.pgxConfig(t, goodToken, g.sslmode, nil))
			if err != nil {
				t.Fatalf("round %d, %s: connect: %v", round, e.name, err)
			}
			queryItem(t, conn, round+1)
			e.end(t, conn)
			<-g.rec.ends
		}
	}
	// Sessions ended by Shutdown, on a gateway of their own.
	sg := startGateway(t, gatewayOptions{plainClients: true})
	var conns []*pgx.Conn
	for range 5 {
		conn, err := pgx.ConnectConfig(ctx, sg.pgxConfig(t, goodToken, sg.sslmode, nil))
		if err != nil {
			t.Fatal(err)
		}
		queryItem(t, conn, 2)
		conns = append(conns, conn)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	sg.srv.Shutdown(done)
	for _, c := range conns {
		c.Close(ctx)
	}
	// The second gateway's listener and its shutdown account for no
	// descriptor: its listener is closed.
	waitForBaseline(t, fds, goroutines)
}

// TestLoopShutdownRightAfterLoopEntry shuts the gateway down the moment a
// client has its ReadyForQuery, while its session is entering the event
// loop: the session must still end as a shutdown, the client must get the
// shutdown error, and Shutdown must return.
func TestLoopShutdownRightAfterLoopEntry(t *testing.T) {
	for i := range 20 {
		g := startGateway(t, gatewayOptions{plainClients: true})
		rc := dialRaw(t, g, true, nil)
		waitReadyAfterLogin(t, rc)
		returned := shutdownNow(g)
		var fatal string
		for {
			msg, err := rc.fe.Receive()
			if err != nil {
				break
			}
			if e, ok := msg.(*pgproto3.ErrorResponse); ok {
				fatal = e.Severity + " " + e.Code
			}
		}
		if want := "FATAL " + codeAdminShutdown; fatal != want {
			t.Errorf("round %d: client got final error %q, want %q", i, fatal, want)
		}
		if got := (<-g.rec.ends).Reason; got != reasonShutdown {
			t.Errorf("round %d: got end reason %q, want %q", i, got, reasonShutdown)
		}
		waitFor(t, "Shutdown to return", func() bool {
			select {
			case <-returned:
				return true
			default:
				return false
			}
		})
	}
}

// TestLoopCopy moves COPY data both ways in many small
// CopyData messages (relayed on the loop) and in ones larger than the relay
// buffer (handed back), and checks every byte arrived.
func TestLoopCopy(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		conn := g.connect(t, nil)
		ctx := context.Background()
		if _, err := conn.Exec(ctx, "CREATE TEMP TABLE blobs (id int, body text)"); err != nil {
			t.Fatal(err)
		}
		var in strings.Builder
		sum := md5.New()
		for i := range 3000 {
			size := i % 50
			if i%500 == 7 {
				size = 3*relayBufferSize + i // larger than the relay buffer
			}
			body := strings.Repeat(string(rune('a'+i%26)), size)
			fmt.Fprintf(&in, "%d\t%s\n", i, body)
			sum.Write([]byte(body))
		}
		tag, err := conn.PgConn().CopyFrom(ctx, strings.NewReader(in.String()), "COPY blobs FROM STDIN")
		if err != nil || tag.RowsAffected() != 3000 {
			t.Fatalf("copy in: got %v, %v; want 3000 rows", tag, err)
		}
		want := hex.EncodeToString(sum.Sum(nil))
		var got string
		if err := conn.QueryRow(ctx, "SELECT md5(string_agg(body, '' ORDER BY id)) FROM blobs").Scan(&got); err != nil || got != want {
			t.Fatalf("copy in: got md5 %q, %v; want %q", got, err, want)
		}
		var out strings.Builder
		tag, err = conn.PgConn().CopyTo(ctx, &out, "COPY (SELECT id, body FROM blobs ORDER BY id) TO STDOUT")
		if err != nil || tag.RowsAffected() != 3000 {
			t.Fatalf("copy out: got %v, %v; want 3000 rows", tag, err)
		}
		if out.String() != in.String() {
			t.Fatalf("copy out: got %d bytes, want the %d bytes copied in", out.Len(), in.Len())
		}
		queryItem(t, conn, 8)
	})
}

// TestLoopNotifyBurstWhileIdle sends many notifications to a session that
// is idle on the loop and checks each arrives once, in order.
func TestLoopNotifyBurstWhileIdle(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		listener := g.connect(t, nil)
		admin := adminConn(t)
		ctx := context.Background()
		if _, err := listener.Exec(ctx, "LISTEN loop_burst"); err != nil {
			t.Fatal(err)
		}
		const n = 3000
		if _, err := admin.Exec(ctx, fmt.Sprintf(
			"SELECT pg_notify('loop_burst', g::text || repeat('p', 100)) FROM generate_series(1, %d) g", n)); err != nil {
			t.Fatal(err)
		}
		wctx, stop := context.WithTimeout(ctx, time.Minute) // a bound on a hang
		defer stop()
		for i := 1; i <= n; i++ {
			got, err := listener.WaitForNotification(wctx)
			if err != nil {
				t.Fatalf("notification %d: %v", i, err)
			}
			if want := fmt.Sprint(i) + strings.Repeat("p", 100); got.Payload != want {
				t.Fatalf("notification %d: got payload %.12q…, want %.12q…", i, got.Payload, want)
			}
		}
	})
}

// holdingChecker is testChecker, except that it blocks on statements that
// mention "hold", as a hold waiting for an approval does, until the
// session's context ends or the test releases it; then it refuses them.
type holdingChecker struct {
	entered chan struct{} // receives once per held statement
	release chan struct{} // closed by the test
}

func newHoldingChecker() *holdingChecker {
	return &holdingChecker{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

// TryCheck decides at once what Check does not hold.
func (c *holdingChecker) TryCheck(sql string) (Verdict, bool) {
	if strings.Contains(sql, "hold") {
		return Verdict{}, false
	}
	return testChecker{}.Check(context.Background(), sql), true
}

func (c *holdingChecker) Check(ctx context.Context, sql string) Verdict {
	if !strings.Contains(sql, "hold") {
		return testChecker{}.Check(ctx, sql)
	}
	c.entered <- struct{}{}
	select {
	case <-ctx.Done():
	case <-c.release:
	}
	return Verdict{Message: "held statement not approved", Rule: "hold"}
}

// heldQuery starts a session whose statement is held, and waits until the
// checker holds it.
func heldQuery(t *testing.T, g *gateway, plain bool, c *holdingChecker) {
	t.Helper()
	dialRaw(t, g, plain, encode(t, &pgproto3.Query{String: "SELECT 'hold me'"}))
	<-c.entered
}

// TestLoopHeldStatementBlocksOnlyItsSession: StatementChecker.Check may
// block (a hold waiting for an approval). While one session waits, others
// must go on. On the event loop the checker's TryCheck declines the held
// statement, and the session moves to its goroutines, where Check waits
// without stalling the loop.
func TestLoopHeldStatementBlocksOnlyItsSession(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		c := newHoldingChecker()
		g := startGateway(t, gatewayOptions{plainClients: plain, checker: c})
		t.Cleanup(func() { close(c.release) })
		added, back := loopAdded(t), loopGivenBack()
		heldQuery(t, g, plain, c)
		if plain && (loopAdded(t) == added || loopGivenBack() == back) {
			t.Fatal("the held session did not start on the loop and leave it; the test does not exercise the hand-back")
		}
		// More sessions than there are loops, so one shares the held
		// session's loop. 10 s bounds a hang; the query takes milliseconds.
		all, _ := sharedLoops()
		for i := range len(all) + 1 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := pgx.ConnectConfig(ctx, g.pgxConfig(t, goodToken, g.sslmode, nil))
			if err != nil {
				t.Fatalf("session %d: connect while another session is held: %v", i, err)
			}
			defer conn.Close(context.Background())
			var name string
			if err := conn.QueryRow(ctx, "SELECT name FROM items WHERE id = 9").Scan(&name); err != nil {
				t.Fatalf("session %d: query while another session's statement is held: %v", i, err)
			}
		}
	})
}

// TestLoopShutdownEndsAHeldSession: Shutdown cancels a session's context,
// which ends a hold, whether the session was on the loop before it was held
// or not.
func TestLoopShutdownEndsAHeldSession(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		c := newHoldingChecker()
		g := startGateway(t, gatewayOptions{plainClients: plain, checker: c})
		t.Cleanup(func() { close(c.release) })
		heldQuery(t, g, plain, c)
		returned := shutdownNow(g)
		select {
		case <-returned:
		case <-time.After(10 * time.Second): // a bound on a hang; Shutdown takes milliseconds
			t.Fatal("Shutdown did not return while a session's statement was held")
		}
		if got := (<-g.rec.ends).Reason; got != reasonShutdown {
			t.Errorf("got end reason %q, want %q", got, reasonShutdown)
		}
	})
}

// TestLoopShutdownDuringBusyLoop shuts the gateway down while clients
// keep opening sessions, querying on the loop and forcing hand-backs: every
// session that started must end once with a reason that fits, Shutdown
// must return, and nothing may leak.
func TestLoopShutdownDuringBusyLoop(t *testing.T) {
	adminConn(t)
	warm := startGateway(t, gatewayOptions{plainClients: true})
	queryItem(t, warm.connect(t, nil), 1) // starts the loops
	runtime.GC()
	fds, goroutines := openFDs(t), runtime.NumGoroutine()

	g := startGateway(t, gatewayOptions{plainClients: true})
	reasons := make(map[string]int)
	var ended sync.WaitGroup
	ended.Add(1)
	stopCounting := make(chan struct{})
	go func() {
		defer ended.Done()
		for {
			select {
			case s := <-g.rec.ends:
				reasons[s.Reason]++
			case <-stopCounting:
				// Shutdown has returned: every end is in the channel.
				for {
					select {
					case s := <-g.rec.ends:
						reasons[s.Reason]++
					default:
						return
					}
				}
			}
		}
	}()
	ctx := context.Background()
	big := strings.Repeat("z", 2*relayBufferSize)
	var clients sync.WaitGroup
	var sessions sync.WaitGroup
	sessions.Add(6 * 2) // two sessions per client before the shutdown
	for c := range 6 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for s := 0; ; s++ {
				conn, err := pgx.ConnectConfig(ctx, g.pgxConfig(t, goodToken, g.sslmode, nil))
				if err != nil {
					return // the gateway is shutting down
				}
				for q := range 10 {
					var got string
					text := fmt.Sprint(c, q)
					if q == 5 {
						text = big // a hand-back
					}
					if err := conn.QueryRow(ctx, "SELECT $1::text", text).Scan(&got); err != nil || got != text {
						break
					}
				}
				conn.Close(ctx)
				if s < 2 {
					sessions.Done()
				}
			}
		}()
	}
	sessions.Wait()
	done, cancel := context.WithCancel(ctx)
	cancel()
	g.srv.Shutdown(done)
	clients.Wait()
	close(stopCounting)
	ended.Wait()
	g.rec.mu.Lock()
	started := len(g.rec.starts)
	g.rec.mu.Unlock()
	total := 0
	for reason, n := range reasons {
		total += n
		if reason != reasonTerminate && reason != reasonShutdown && reason != reasonClientGone {
			t.Errorf("got %d sessions ended with reason %q, want terminate, shutdown or disconnect", n, reason)
		}
	}
	if total != started {
		t.Errorf("got %d session ends for %d starts (%v)", total, started, reasons)
	}
	t.Logf("session ends: %v", reasons)
	waitForBaseline(t, fds, goroutines)
}

// shutdownNow starts a Shutdown that waits for no session (its context is
// already done) and returns a channel closed when Shutdown returns.
func shutdownNow(g *gateway) <-chan struct{} {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	returned := make(chan struct{})
	go func() {
		g.srv.Shutdown(ctx)
		close(returned)
	}()
	return returned
}
