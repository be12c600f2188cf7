package gateway_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestSessionEndsWhenItsGrantIsRemoved: once a grant is gone, no statement
// of a session it opened may run, not even the ROLLBACK that would end the
// open transaction, which used to stay open on the target (idle in
// transaction, holding its locks) until the client went away. The next
// statement now ends the session, which rolls the transaction back.
func TestSessionEndsWhenItsGrantIsRemoved(t *testing.T) {
	dora := who{sub: "dora", principal: "user:dora"}
	grant := filepath.Join(env.PolicyDir, "grants", "e2e-dora.toml")
	if err := os.WriteFile(grant, []byte("[[grant]]\nid = \"e2e-dora-write\"\nto = \"user:dora\"\ntarget = \"orders\"\naccess = \"write\"\nowner = \"group:dba\"\nreason = \"e2e\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sec2Git(t, "add", "grants/e2e-dora.toml")
	sec2Git(t, "commit", "-q", "-m", "e2e: a grant for dora")
	sec2WaitLive(t, sec2Git(t, "rev-parse", "HEAD"))
	removed := false
	t.Cleanup(func() {
		if !removed {
			sec2Git(t, "rm", "-q", "grants/e2e-dora.toml")
			sec2Git(t, "commit", "-q", "-m", "e2e: remove dora's grant")
			sec2WaitLive(t, sec2Git(t, "rev-parse", "HEAD"))
		}
	})

	ctx := testCtx(t)
	var pids []string
	conns := []*pgx.Conn{connect(t, pgConfigMode(t, dora, "verify-full")), connect(t, pgConfigMode(t, dora, "disable"))}
	for i, conn := range conns {
		var pid string
		if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()::text").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
		if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "SELECT id FROM orders WHERE id = $1 FOR UPDATE", i+1); err != nil {
			t.Fatal(err)
		}
	}

	sec2Git(t, "rm", "-q", "grants/e2e-dora.toml")
	sec2Git(t, "commit", "-q", "-m", "e2e: remove dora's grant")
	sec2WaitLive(t, sec2Git(t, "rev-parse", "HEAD"))
	removed = true

	for i, conn := range conns {
		_, err := conn.Exec(ctx, "ROLLBACK")
		pe := pgErrorOf(t, err)
		if pe.Code != "42501" || pe.Severity != "FATAL" || !strings.Contains(pe.Message, "session is closed") {
			t.Errorf("conn %d: ROLLBACK after the grant was removed: %s %s %q, want FATAL 42501 closing the session", i, pe.Severity, pe.Code, pe.Message)
		}
	}
	// The target ends the backends, and so their transactions.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		n := psqlUpstream(t, "SELECT count(*) FROM pg_stat_activity WHERE pid IN ("+strings.Join(pids, ",")+")")
		if n == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s of the sessions' backends still run on the target", n)
		}
	}
	// session.end says why, apart from other refusals.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var reasons []string
		ends := 0
		for _, e := range auditEvents(t, url.Values{"action": {"session.end"}, "principal": {dora.principal}}) {
			reasons = append(reasons, e.Reason)
			if e.Reason == "grant-removed" {
				ends++
			}
		}
		if ends == len(conns) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session.end reasons %q, want %d saying grant-removed", reasons, len(conns))
		}
	}
}
