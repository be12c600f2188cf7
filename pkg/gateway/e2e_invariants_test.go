package gateway_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatectl/gatectl/pkg/audit"
)

// recordingConn keeps every byte read from the wrapped connection.
type recordingConn struct {
	net.Conn
	rec *syncBuffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.rec.Write(p[:n])
	return n, err
}

// clientSeen collects what clients received: raw bytes of plaintext
// sessions and, for TLS sessions, every message text pgx surfaces.
type clientSeen struct {
	raw  syncBuffer
	mu   sync.Mutex
	text []string
}

func (c *clientSeen) add(s ...string) {
	c.mu.Lock()
	c.text = append(c.text, s...)
	c.mu.Unlock()
}

func (c *clientSeen) addErr(err error) {
	if err == nil {
		return
	}
	c.add(err.Error())
	if pe, ok := err.(*pgconn.PgError); ok {
		c.add(pe.Message, pe.Detail, pe.Hint, pe.Where, pe.InternalQuery)
	}
}

// instrument makes cfg report everything it receives to seen; plaintext
// additionally records the raw bytes (TLS would hide them from DialFunc).
func (c *clientSeen) instrument(cfg *pgx.ConnConfig, plaintext bool) {
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		c.add(n.Message, n.Detail, n.Hint, n.Where)
	}
	if plaintext {
		var d net.Dialer
		cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &recordingConn{Conn: conn, rec: &c.raw}, nil
		}
	}
}

// leakStatements exercise every kind of message a client can receive:
// rows, parameter changes, notices, the target's errors and the gateway's
// refusals.
var leakStatements = []string{
	"SELECT current_user, session_user, 'e2e-marker'",
	"SHOW ALL",
	"SET application_name = 'e2e-leak'",
	// A notice from the target (for the admin; refused for the others).
	"CREATE TABLE IF NOT EXISTS customers (id int)",
	"SELECT 1/0",
	"SELECT * FROM no_such_table",
	"DELETE FROM orders WHERE id = -1",
	"DROP TABLE IF EXISTS e2e_absent",
	"SELEC broken",
}

// TestCredentialNeverLeaks checks DESIGN.md §7.2: no target credential
// reaches a client (raw bytes of plaintext sessions, every message of TLS
// sessions), the gateway's log or the audit log, also when the target
// refuses the gateway's login; and no token reaches the audit log.
func TestCredentialNeverLeaks(t *testing.T) {
	passwords := targetPasswords(t)
	var seen clientSeen
	for _, w := range []who{etl, alice, carol} {
		for _, plaintext := range []bool{false, true} {
			for _, mode := range protocolModes {
				sslmode := "verify-full"
				if plaintext {
					sslmode = "disable"
				}
				cfg := pgConfigMode(t, w, sslmode)
				cfg.DefaultQueryExecMode = mode.mode
				seen.instrument(cfg, plaintext)
				conn := connect(t, cfg)
				ctx := testCtx(t)
				for _, sql := range leakStatements {
					rows, err := conn.Query(ctx, sql)
					if err == nil {
						for rows.Next() {
							for _, v := range rows.RawValues() {
								seen.add(string(v))
							}
						}
						rows.Close()
						err = rows.Err()
					}
					seen.addErr(err)
				}
				for _, k := range []string{"application_name", "session_authorization", "server_version", "is_superuser", "DateStyle", "TimeZone"} {
					seen.add(conn.PgConn().ParameterStatus(k))
				}
				conn.Close(ctx)
			}
		}
	}

	t.Run("target-login-failure", func(t *testing.T) {
		// The gateway's credential for orders_ro is now wrong: the target
		// refuses the gateway's login, and the client must learn only that.
		psqlUpstream(t, "ALTER ROLE orders_ro PASSWORD 'e2e-wrong-password-0123456789'")
		restore := fmt.Sprintf("ALTER ROLE orders_ro PASSWORD '%s'", os.Getenv("ORDERS_RO_PASSWORD"))
		defer psqlUpstream(t, restore)
		for _, plaintext := range []bool{false, true} {
			sslmode := "verify-full"
			if plaintext {
				sslmode = "disable"
			}
			cfg := pgConfigMode(t, etl, sslmode)
			seen.instrument(cfg, plaintext)
			_, err := pgx.ConnectConfig(testCtx(t), cfg)
			if err == nil {
				t.Fatalf("sslmode=%s: got a session with a wrong target credential, want an error", sslmode)
			}
			seen.addErr(err)
			pe := pgErrorOf(t, err)
			if got, want := pe.Code, "08001"; got != want {
				t.Errorf("sslmode=%s: got SQLSTATE %s (%s), want %s", sslmode, got, pe.Message, want)
			}
			if !strings.Contains(pe.Message, "could not log in") {
				t.Errorf("sslmode=%s: got message %q, want a generic \"could not log in\"", sslmode, pe.Message)
			}
			// The session id the client is shown finds the failure in the
			// audit log, which names neither password.
			m := regexp.MustCompile(`session (s-[0-9a-f]+)`).FindStringSubmatch(pe.Hint)
			if m == nil {
				t.Fatalf("sslmode=%s: hint %q names no session", sslmode, pe.Hint)
			}
			var found *audit.Event
			for deadline := time.Now().Add(10 * time.Second); found == nil && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				for _, e := range auditEvents(t, url.Values{"session": {m[1]}}) {
					if e.Action == "session.refuse" {
						found = &e
					}
				}
			}
			switch {
			case found == nil:
				t.Errorf("sslmode=%s: no session.refuse event for session %s", sslmode, m[1])
			case found.Decision != "error" || found.Principal != etl.principal || !strings.Contains(found.Reason, "check the gateway's credential"):
				t.Errorf("sslmode=%s: got event %+v, want an error naming the principal and the credential", sslmode, *found)
			case strings.Contains(fmt.Sprint(*found), "e2e-wrong-password") || strings.Contains(fmt.Sprint(*found), os.Getenv("ORDERS_RO_PASSWORD")):
				t.Errorf("sslmode=%s: the event holds a password: %+v", sslmode, *found)
			}
		}
	})

	// The capture works: the marker row, the notice and the login failure made it.
	all := seen.raw.String() + "\n" + strings.Join(seen.text, "\n")
	for _, want := range []string{"e2e-marker", "already exists, skipping", "could not log in"} {
		if !strings.Contains(all, want) {
			t.Errorf("captured client traffic has no %q; the capture is broken", want)
		}
	}
	if !strings.Contains(seen.raw.String(), "e2e-marker") {
		t.Errorf("raw plaintext capture has no %q; the capture is broken", "e2e-marker")
	}

	export := auditExport(t, url.Values{})
	logs := gatewayLog.String()
	places := []struct{ name, text string }{
		{"client-raw-bytes", seen.raw.String()},
		{"client-messages", strings.Join(seen.text, "\n")},
		{"gateway-log", logs},
		{"audit-log", export},
	}
	// The log and the audit export hold this test's sessions.
	if !strings.Contains(logs, "target login failed") {
		t.Errorf("the gateway log has no \"target login failed\"; the log capture is broken")
	}
	if !strings.Contains(export, `"session.start"`) {
		t.Errorf("the audit export has no session.start event")
	}
	for _, p := range places {
		for name, pw := range passwords {
			if strings.Contains(p.text, pw) {
				t.Errorf("%s contains the password of %s", p.name, name)
			}
		}
	}
	for i, tok := range mintedTokens() {
		if strings.Contains(export, tok) {
			t.Errorf("the audit log contains minted token #%d", i)
		}
		if strings.Contains(logs, tok) {
			t.Errorf("the gateway log contains minted token #%d", i)
		}
	}
}

// TestNoUpstreamLoginBeforeAccess checks DESIGN.md §7.1 at the PostgreSQL
// listener: a bad token (28P01) and a token without a grant (42501 FATAL)
// are refused before anything is dialed; the target's connection log shows
// no login for them, while it does show one for an accepted session.
func TestNoUpstreamLoginBeforeAccess(t *testing.T) {
	tests := []struct {
		name     string
		as       who
		password string // overrides the token when set
		code     string
		severity string
		want     string
	}{
		{name: "bad-token", as: etl, password: "not-a-token", code: "28P01", severity: "FATAL", want: "authentication failed"},
		{name: "forged-token", as: etl, password: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJldGwifQ.", code: "28P01", severity: "FATAL", want: "authentication failed"},
		{name: "no-grant", as: bob, code: "42501", severity: "FATAL", want: `no grant gives user:bob access to target "orders"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app := "e2e-nologin-" + tc.name
			cfg := pgConfig(t, tc.as)
			if tc.password != "" {
				cfg.Password = tc.password
			}
			cfg.RuntimeParams["application_name"] = app
			_, err := pgx.ConnectConfig(testCtx(t), cfg)
			if err == nil {
				t.Fatal("got a session, want a refusal")
			}
			pe := pgErrorOf(t, err)
			if pe.Code != tc.code || pe.Severity != tc.severity {
				t.Errorf("got %s %s (%s), want %s %s", pe.Severity, pe.Code, pe.Message, tc.severity, tc.code)
			}
			if !strings.Contains(pe.Message, tc.want) {
				t.Errorf("got message %q, want it to contain %q", pe.Message, tc.want)
			}
			if strings.Contains(upstreamLog(t), "application_name="+app) {
				t.Errorf("the target logged a login for the refused client %s", app)
			}
		})
	}
	t.Run("accepted-session-logs-in", func(t *testing.T) {
		// The control: the check above would see a login if there was one.
		app := "e2e-login-accepted"
		cfg := pgConfig(t, etl)
		cfg.RuntimeParams["application_name"] = app
		connect(t, cfg)
		if !strings.Contains(upstreamLog(t), "application_name="+app) {
			t.Errorf("the target's log shows no login for the accepted session %s; log_connections is not working", app)
		}
	})
}

// TestTargetLostMidSession terminates one session's backend on the target:
// that client gets an error on its next query, another session goes on.
func TestTargetLostMidSession(t *testing.T) {
	victim := connect(t, pgConfig(t, etl))
	bystander := connect(t, pgConfig(t, etl))
	ctx := testCtx(t)
	var pid int
	if err := victim.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatalf("victim's backend pid: %v", err)
	}
	// The timeout makes pg_terminate_backend wait until the backend is gone.
	if got := psqlUpstream(t, fmt.Sprintf("SELECT pg_terminate_backend(%d, 30000)", pid)); got != "t" {
		t.Fatalf("got pg_terminate_backend %q, want t", got)
	}
	if _, err := victim.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("got no error on the victim's next query, want one")
	}
	for i := range 3 {
		var n int
		if err := bystander.QueryRow(ctx, "SELECT count(*) FROM customers WHERE id <= $1", 7).Scan(&n); err != nil {
			t.Fatalf("bystander query %d: %v", i, err)
		}
		if got, want := n, 7; got != want {
			t.Errorf("bystander query %d: got %d, want %d", i, got, want)
		}
	}
}
