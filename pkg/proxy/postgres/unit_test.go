package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestRefusalSQLRaisesMessageVerbatim(t *testing.T) {
	admin := adminConn(t)
	tests := []struct{ name, msg, want string }{
		{"plain", "no drops", "no drops"},
		{"quotes", `it's "bad"'; DROP TABLE items; --`, `it's "bad"'; DROP TABLE items; --`},
		{"outer-tag", "contains $g$ END $g$; DROP TABLE items", "contains $g$ END $g$; DROP TABLE items"},
		{"inner-tag", "close $m$; DROP TABLE items; $m$", "close $m$; DROP TABLE items; $m$"},
		{"tag-suffix", "ends with $m", "ends with $m"},
		{"backslash", `C:\temp\n`, `C:\temp\n`},
		{"nul", "a\x00b", "ab"},
		{"empty", "", defaultRefusal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := admin.Exec(context.Background(), refusalSQL(tt.msg), pgx.QueryExecModeSimpleProtocol)
			if code := pgCode(err); code != "42501" {
				t.Fatalf("got %v, want SQLSTATE 42501", err)
			}
			if got := err.Error(); !strings.HasPrefix(got, "ERROR: "+tt.want+" (SQLSTATE") {
				t.Errorf("got %q, want message %q", got, tt.want)
			}
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Hint != RefusalHint {
				t.Errorf("hint %q, want RefusalHint: clients tell a refusal by the gateway from the target's own 42501 by it", pe.Hint)
			}
		})
	}
	var exists bool
	admin.QueryRow(context.Background(), "SELECT to_regclass('items') IS NOT NULL").Scan(&exists)
	if !exists {
		t.Fatal("a refusal message broke out of its literal")
	}
}

func TestSplitCommandTag(t *testing.T) {
	tests := []struct {
		tag, word string
		rows      int64
		counted   bool
	}{
		{"SELECT 5", "SELECT", 5, true},
		{"INSERT 0 12", "INSERT", 12, true},
		{"UPDATE 0", "UPDATE", 0, true},
		{"COPY 1000", "COPY", 1000, true},
		{"FETCH 3", "FETCH", 3, true},
		{"MOVE 2", "MOVE", 2, true},
		{"CREATE TABLE", "CREATE TABLE", 0, false},
		{"BEGIN", "BEGIN", 0, false},
		{"SHOW", "SHOW", 0, false},
		{"EXPLAIN", "EXPLAIN", 0, false},
		{"CALL", "CALL", 0, false},
		{"SELECT 99999999999999999999", "SELECT 99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(strings.ToLower(tt.tag), " ", "-"), func(t *testing.T) {
			word, rows, counted := splitCommandTag([]byte(tt.tag))
			if word != tt.word || rows != tt.rows || counted != tt.counted {
				t.Errorf("got %q, %d, %t; want %q, %d, %t", word, rows, counted, tt.word, tt.rows, tt.counted)
			}
		})
	}
	// The common tags cost no allocation.
	for _, tag := range [][]byte{[]byte("SELECT 1"), []byte("SHOW"), []byte("EXPLAIN"), []byte("FETCH 10")} {
		if n := testing.AllocsPerRun(100, func() { splitCommandTag(tag) }); n != 0 {
			t.Errorf("splitCommandTag(%q): got %v allocations, want 0", tag, n)
		}
	}
}

func TestParseStartup(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		kind    startupKind
		wantErr bool
	}{
		{"ssl-request", "\x04\xd2\x16\x2f", startupSSLRequest, false},
		{"gssenc-request", "\x04\xd2\x16\x30", startupGSSENCRequest, false},
		{"cancel", "\x04\xd2\x16\x2e\x00\x00\x00\x01abcd", startupCancel, false},
		{"startup", "\x00\x03\x00\x00user\x00alice\x00database\x00orders\x00\x00", startupMessage, false},
		{"protocol-2", "\x00\x02\x00\x00user\x00alice\x00\x00", 0, true},
		{"unterminated", "\x00\x03\x00\x00user\x00alice", 0, true},
		{"missing-value", "\x00\x03\x00\x00user\x00", 0, true},
		{"trailing-data", "\x00\x03\x00\x00\x00x", 0, true},
		{"short-cancel", "\x04\xd2\x16\x2e\x00\x00", 0, true},
		{"ssl-with-body", "\x04\xd2\x16\x2fxx", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseStartup([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if err == nil && p.kind != tt.kind {
				t.Errorf("got kind %d, want %d", p.kind, tt.kind)
			}
		})
	}
}

func TestShutdownEndsSessions(t *testing.T) { forTransports(t, testShutdownEndsSessions) }

func testShutdownEndsSessions(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	conn := g.connect(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // do not wait for the session to end on its own
	if err := g.srv.Shutdown(ctx); err == nil {
		t.Error("got nil from Shutdown with an open session, want the context's error")
	}
	if stats := <-g.rec.ends; stats.Reason != reasonShutdown {
		t.Errorf("got end reason %q, want %q", stats.Reason, reasonShutdown)
	}
	_, err := conn.Exec(context.Background(), "SELECT 1")
	if err == nil {
		t.Error("session still works after shutdown")
	}
	short, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	if err := g.srv.Shutdown(short); err != nil {
		t.Errorf("second Shutdown: got %v, want nil", err)
	}
}

// TestShutdownCancelsTheStatementInFlight: a session ended by Shutdown
// while its statement runs used to leave the statement running on the
// target, which committed it after the client had been told the session
// ended. Shutdown now cancels it on the target.
func TestShutdownCancelsTheStatementInFlight(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		conn := g.connect(t, nil)
		ctx := context.Background()
		// Without the cancel the target would notice the closed
		// connection only when the statement ends.
		if _, err := conn.Exec(ctx, "SET client_connection_check_interval = 0"); err != nil {
			t.Fatal(err)
		}
		var pid int
		if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := conn.Exec(ctx, "SELECT pg_sleep(60)")
			done <- err
		}()
		waitFor(t, "the statement to run on the target", func() bool {
			return pgStateOf(t, pid) == "active"
		})
		expired, cancel := context.WithCancel(ctx)
		cancel()
		g.srv.Shutdown(expired)
		if err := <-done; err == nil || !strings.Contains(err.Error(), "cancelled the statement in flight") {
			t.Errorf("the client got %v, want the shutdown saying the statement was cancelled", err)
		}
		waitFor(t, "the target to stop the statement", func() bool { return pgStateOf(t, pid) != "active" })
	})
}

// pgStateOf is the target backend pid's state in pg_stat_activity, or ""
// once it is gone.
func pgStateOf(t *testing.T, pid int) string {
	t.Helper()
	out, err := testPG.Psql(context.Background(), "postgres", fmt.Sprintf("SELECT state FROM pg_stat_activity WHERE pid = %d", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// TestRefusalHasNoPLpgSQLContext: the target raises the gateway's refusal
// from a DO block, whose CONTEXT line ("PL/pgSQL function
// inline_code_block line 1 at RAISE") and source location (pl_exec.c)
// are noise to the client; they are cut, in both protocols.
func TestRefusalHasNoPLpgSQLContext(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		conn := g.connect(t, nil)
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
			_, err := conn.Exec(context.Background(), "DROP TABLE items", mode)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != codeInsufficientPriv {
				t.Fatalf("mode %v: got %v, want the refusal", mode, err)
			}
			if pe.Where != "" || pe.Hint != RefusalHint {
				t.Errorf("mode %v: refusal has CONTEXT %q and HINT %q; want no CONTEXT and RefusalHint", mode, pe.Where, pe.Hint)
			}
			// psql's VERBOSITY=verbose shows these as LOCATION.
			if pe.File != "" || pe.Line != 0 || pe.Routine != "" {
				t.Errorf("mode %v: refusal has the location %s:%d %s in PL/pgSQL; want none", mode, pe.File, pe.Line, pe.Routine)
			}
		}
	})
}
