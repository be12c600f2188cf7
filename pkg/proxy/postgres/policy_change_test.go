package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// switchChecker refuses statements containing "orders_refused_now" once
// refuse is set, as a policy that changes mid-session would.
type switchChecker struct{ refuse atomic.Bool }

func (c *switchChecker) TryCheck(sql string) (Verdict, bool) {
	return c.Check(context.Background(), sql), true
}

func (c *switchChecker) Check(ctx context.Context, sql string) Verdict {
	if c.refuse.Load() && strings.Contains(sql, "orders_refused_now") {
		return Verdict{Message: "denied by rule \"late\"", Rule: "late"}
	}
	return testChecker{}.Check(ctx, sql)
}

// TestBindRechecksThePolicy checks that a statement prepared while allowed
// cannot run after the policy stops allowing it: the Bind is checked again.
func TestBindRechecksThePolicy(t *testing.T) { forTransports(t, testBindRechecksThePolicy) }

func testBindRechecksThePolicy(t *testing.T, plain bool) {
	c := &switchChecker{}
	g := startGateway(t, gatewayOptions{plainClients: plain, checker: c})
	conn := g.connect(t, nil)
	ctx := context.Background()
	const sql = "SELECT 1 AS orders_refused_now"
	if _, err := conn.Prepare(ctx, "late", sql); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "late"); err != nil {
		t.Fatalf("while allowed: %v", err)
	}
	c.refuse.Store(true)
	_, err := conn.Exec(ctx, "late")
	if code := pgCode(err); code != codeInsufficientPriv || !strings.Contains(err.Error(), "policy changed") {
		t.Fatalf("after the policy changed: got %v, want SQLSTATE 42501 saying the policy changed", err)
	}
}

// countingChecker counts the checks of each statement text.
type countingChecker struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *countingChecker) TryCheck(sql string) (Verdict, bool) {
	return c.Check(context.Background(), sql), true
}

func (c *countingChecker) Check(ctx context.Context, sql string) Verdict {
	c.mu.Lock()
	c.n[sql]++
	c.mu.Unlock()
	return testChecker{}.Check(ctx, sql)
}

func (c *countingChecker) count(sql string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[sql]
}

// TestOneShotQueryCheckedOnce checks that a Parse and Bind sent together
// (a one-shot extended query) are checked once, at the Parse, while a Bind
// that comes in a later read is checked again.
func TestOneShotQueryCheckedOnce(t *testing.T) { forTransports(t, testOneShotQueryCheckedOnce) }

func testOneShotQueryCheckedOnce(t *testing.T, plain bool) {
	c := &countingChecker{n: map[string]int{}}
	g := startGateway(t, gatewayOptions{plainClients: plain, checker: c})
	conn := g.connect(t, nil)
	ctx := context.Background()
	const oneShot = "SELECT name FROM items WHERE id = $1"
	for i := 1; i <= 3; i++ {
		if _, err := conn.Exec(ctx, oneShot, pgx.QueryExecModeExec, i); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.count(oneShot); got != 3 {
		t.Errorf("one-shot query run 3 times was checked %d times, want 3", got)
	}
	const prepared = "SELECT count(*) FROM items"
	if _, err := conn.Prepare(ctx, "p", prepared); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := conn.Exec(ctx, "p"); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.count(prepared); got != 3 {
		t.Errorf("statement prepared once and run twice was checked %d times, want 3 (Parse, then each Bind)", got)
	}
}

// TestBindOfUnseenStatementRefused checks that a Bind of a statement made by
// SQL PREPARE, which shares the protocol's namespace but whose text the
// gateway checked only as a PREPARE, ends the session.
func TestBindOfUnseenStatementRefused(t *testing.T) {
	forTransports(t, testBindOfUnseenStatementRefused)
}

func testBindOfUnseenStatementRefused(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	conn := g.connect(t, nil)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "PREPARE sneaky AS SELECT 1", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	err := conn.PgConn().ExecPrepared(ctx, "sneaky", nil, nil, nil).Read().Err
	if code := pgCode(err); code != codeInsufficientPriv || !strings.Contains(err.Error(), "did not see parsed") ||
		!strings.Contains(err.Error(), "prepare statements with the protocol's Parse") || strings.Contains(err.Error(), "use EXECUTE") {
		t.Fatalf("got %v, want SQLSTATE 42501 about an unseen statement", err)
	}
}

// TestUnsafeSettingsEndTheSession checks the settings under which the
// target would read statements differently from the classifier:
// standard_conforming_strings off (set mid-session) and a client-only
// encoding (asked for at startup).
func TestUnsafeSettingsEndTheSession(t *testing.T) { forTransports(t, testUnsafeSettingsEndTheSession) }

func testUnsafeSettingsEndTheSession(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	ctx := context.Background()
	conn := g.connect(t, nil)
	_, err := conn.Exec(ctx, "SET standard_conforming_strings = off", pgx.QueryExecModeSimpleProtocol)
	if err == nil {
		_, err = conn.Exec(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol)
	}
	if code := pgCode(err); code != codeInsufficientPriv || !strings.Contains(err.Error(), "standard_conforming_strings") {
		t.Fatalf("after SET standard_conforming_strings = off: got %v, want SQLSTATE 42501", err)
	}

	cfg := g.pgxConfig(t, goodToken, g.sslmode, nil)
	cfg.RuntimeParams["client_encoding"] = "SJIS"
	_, err = pgx.ConnectConfig(ctx, cfg)
	if code := pgCode(err); code != codeInsufficientPriv || !strings.Contains(err.Error(), "client_encoding SJIS") {
		t.Fatalf("client_encoding SJIS: got %v, want SQLSTATE 42501", err)
	}
}

// TestSkippedCloseKeepsTheRecord: a Close that the target skips, because
// an earlier request of its pipeline failed, leaves the statement in place
// there; the gateway must keep its record of it too. Otherwise a re-Parse
// of the name fails on the target (42P05) with nothing for the gateway to
// put back, and a Bind is checked against the new text while the target
// runs the old one, which the policy may refuse by now.
func TestSkippedCloseKeepsTheRecord(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		p := preparedThenRefused(t, plain)

		p.rc.conn.Write(encode(t, &P{Query: "SELECT 1/0"}, &B{}, &E{}, &pgproto3.Close{ObjectType: 'S', Name: "x"}, &S{}))
		if got := p.readUntil(t, "ready", 1); fmt.Sprint(got) != "[E22012 ready]" {
			t.Fatalf("failed pipeline: %v", got)
		}
		p.rc.conn.Write(encode(t, &P{Name: "x", Query: "SELECT 'new text'"}, &S{}))
		if got := p.readUntil(t, "ready", 1); fmt.Sprint(got) != "[E42P05 ready]" {
			t.Fatalf("re-Parse: %v, want the target's 42P05: it still holds x", got)
		}
		p.rc.conn.Write(encode(t, &B{PreparedStatement: "x"}, &E{}, &S{}))
		if e := refusalOfX(t, p); e.Severity != "FATAL" || e.Code != codeInsufficientPriv || !strings.Contains(e.Message, "policy changed") {
			t.Errorf("Bind of x: %s %s %q, want the session ended by the re-check", e.Severity, e.Code, e.Message)
		}
	})
}

// refusalOfX reads the gateway's answers to a Bind and Execute of x up to
// the first error, failing the test if the target runs x.
func refusalOfX(t *testing.T, p *pipelineReader) *pgproto3.ErrorResponse {
	t.Helper()
	p.rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		m, err := p.rc.fe.Receive()
		if err != nil {
			t.Fatalf("the session ended without a refusal: %v", err)
		}
		if d, ok := m.(*pgproto3.DataRow); ok {
			t.Fatalf("the target ran x and returned %q; the policy refuses its text now", d.Values[0])
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			return e
		}
	}
}

// TestPipelinedReparseChecksWhatTheTargetMayHold: the same as
// TestSkippedCloseKeepsTheRecord, but in one write, so the gateway handles
// the Bind before the target has said that the Close was skipped and the
// re-Parse refused: the Bind must be checked against the old text too.
func TestPipelinedReparseChecksWhatTheTargetMayHold(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		p := preparedThenRefused(t, plain)

		p.rc.conn.Write(encode(t,
			&P{Query: "SELECT 1/0"}, &B{}, &E{}, &pgproto3.Close{ObjectType: 'S', Name: "x"}, &S{},
			&P{Name: "x", Query: "SELECT 'new text'"}, &S{},
			&B{PreparedStatement: "x"}, &E{}, &S{}))
		// The errors of the requests before the Bind may come first.
		if got := firstAnswer(t, p, true); got != "FATAL "+codeInsufficientPriv {
			t.Errorf("Bind of x got %q, want the session ended by a refusal", got)
		}
	})
}

// TestPipelinedPrepareThenBind: a client that prepares a new name and binds
// it after a Sync in the same write (pgx's pipeline mode) is not refused:
// nothing else can be under that name.
func TestPipelinedPrepareThenBind(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t,
			&P{Name: "fresh", Query: "SELECT 'fresh'"}, &S{},
			&B{PreparedStatement: "fresh"}, &E{}, &S{}))}
		if got := p.readUntil(t, "ready", 2); fmt.Sprint(got) != "[ready CSELECT 1 ready]" {
			t.Errorf("got %v", got)
		}
	})
}

// TestUnsupportedStartupIsRefused: a replication connection or startup
// options are refused with 0A000 before the password is asked for, rather
// than dropped, which gave an ordinary session and settings that seemed
// set and were not; replication=false still logs in.
func TestUnsupportedStartupIsRefused(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	ctx := context.Background()
	for _, tc := range []struct {
		param, value, want string
	}{
		{"replication", "database", "replication connections are not supported"},
		{"replication", "true", "replication connections are not supported"},
		{"replication", "on", "replication connections are not supported"},
		{"options", "-c statement_timeout=1000", "startup options (PGOPTIONS, options=-c …) are not passed"},
		{"replication", "false", ""},
		{"replication", "of", ""},
		{"options", "  ", ""},
	} {
		cfg := g.pgxConfig(t, goodToken, g.sslmode, nil)
		cfg.RuntimeParams[tc.param] = tc.value
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s=%q: %v, want a session", tc.param, tc.value, err)
				continue
			}
			conn.Close(ctx)
			continue
		}
		if err == nil {
			conn.Close(ctx)
			t.Errorf("%s=%q: got a session, want 0A000", tc.param, tc.value)
			continue
		}
		if code := pgCode(err); code != codeFeatureNotSupported || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: got %v, want 0A000 %q", tc.param, tc.value, err, tc.want)
		}
	}
}
