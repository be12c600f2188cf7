package gateway_test

// Reproductions from a second security review (sec2) of the PostgreSQL
// path: rows read after the token expired, sessions on the event loop
// stalled by another session's statements, and audit events that name the
// wrong policy commit, miss a refusal or count statements wrongly. Each
// test fails while its defect is present.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatectl/gatectl/pkg/api"
)

// sec2Raw logs in as w with sslmode (and token tok, if not empty) and
// hijacks the connection for raw protocol messages.
func sec2Raw(t *testing.T, w who, sslmode, tok string) *pgconn.HijackedConn {
	t.Helper()
	cfg := pgConfigMode(t, w, sslmode)
	if tok != "" {
		cfg.Password = tok
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, cfg.Config.Copy())
	if err != nil {
		t.Fatalf("connect as %s (sslmode=%s): %v", w.principal, sslmode, err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Conn.Close() })
	return hc
}

func sec2Send(t *testing.T, hc *pgconn.HijackedConn, msgs ...pgproto3.FrontendMessage) {
	t.Helper()
	var buf []byte
	for _, m := range msgs {
		var err error
		if buf, err = m.Encode(buf); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hc.Conn.Write(buf); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// sec2Read reads until the n-th ReadyForQuery or the end of the
// connection, and returns a summary: rows, tags, errors.
func sec2Read(t *testing.T, hc *pgconn.HijackedConn, n int) []string {
	t.Helper()
	hc.Conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var seen []string
	for n > 0 {
		m, err := hc.Frontend.Receive()
		if err != nil {
			return append(seen, "end: "+err.Error())
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			seen = append(seen, "row "+string(m.Values[0]))
		case *pgproto3.CommandComplete:
			seen = append(seen, "complete "+string(m.CommandTag))
		case *pgproto3.PortalSuspended:
			seen = append(seen, "suspended")
		case *pgproto3.ErrorResponse:
			seen = append(seen, "error "+m.Severity+" "+m.Code+" "+m.Message)
		case *pgproto3.ReadyForQuery:
			n--
		}
	}
	return seen
}

// sec2Token mints a dev token for w that lives ttl.
func sec2Token(t *testing.T, w who, ttl time.Duration) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"sub": w.sub, "groups": w.groups, "ttl": ttl.String()})
	resp, err := apiClient.Post(env.Ready.API+"/dev/token", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
		t.Fatalf("mint a %s token: %v", ttl, err)
	}
	return out.AccessToken
}

// TestSec2ExecuteAfterTokenExpiry: a session ends at its next checked
// statement once its token expired, but an Execute message was never
// checked: a portal opened before expiry (here a named portal in an open
// transaction) kept returning rows, row by row, as long as the client
// liked; the same after the grant was revoked. An Execute in a later read
// than its Bind is now checked again.
func TestSec2ExecuteAfterTokenExpiry(t *testing.T) {
	const ttl = 3 * time.Second
	for _, sslmode := range []string{"disable", "verify-full"} {
		t.Run(sslmode, func(t *testing.T) {
			tok := sec2Token(t, etl, ttl)
			expires := time.Now().Add(ttl)
			hc := sec2Raw(t, etl, sslmode, tok)
			sec2Send(t, hc, &pgproto3.Query{String: "BEGIN"},
				&pgproto3.Parse{Name: "s", Query: "SELECT email FROM customers ORDER BY id"},
				&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s"},
				&pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{})
			t.Logf("before expiry: %q", sec2Read(t, hc, 2))
			time.Sleep(time.Until(expires) + time.Second)
			// The next Execute of the portal ends the session.
			sec2Send(t, hc, &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{})
			got := sec2Read(t, hc, 1)
			t.Logf("after expiry: %q", got)
			for _, s := range got {
				if strings.HasPrefix(s, "row ") {
					t.Errorf("the token expired at %s, and the session still returned %q", expires.Format(time.TimeOnly), s)
				}
			}
			if len(got) == 0 || !strings.HasPrefix(got[0], "error FATAL 28000") {
				t.Errorf("after expiry: %q, want FATAL 28000", got)
			}
		})
	}
}

// TestSec2LoopStalledByClassifier: plaintext sessions share the event
// loop's thread, which runs the statement checker. A statement of 32 KiB
// (just small enough to be handled on the loop) such as 1+1+…+1 takes the
// classifier about half a second before it is refused, and refusals are
// not cached; one session sending them in a pipeline stalls every other
// session on its loop by that much per statement.
func TestSec2LoopStalledByClassifier(t *testing.T) {
	ctx := testCtx(t)
	attacker := sec2Raw(t, etl, "disable", "")
	// Sessions are spread over GOMAXPROCS/2 loops in turn: the next that
	// many sessions include one on the attacker's loop.
	var victims []*pgx.Conn
	for range max(1, runtime.GOMAXPROCS(0)/2) {
		victims = append(victims, connect(t, pgConfigMode(t, etl, "disable")))
	}
	slow := "SELECT " + strings.Repeat("1+", (32<<10-64)/2) + "1"
	const n = 8
	var msgs []pgproto3.FrontendMessage
	for range n {
		msgs = append(msgs, &pgproto3.Query{String: slow})
	}
	var wg sync.WaitGroup
	worst := make([]time.Duration, len(victims))
	stop := make(chan struct{})
	for i, v := range victims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				if _, err := v.Exec(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol); err != nil {
					t.Errorf("victim %d: %v", i, err)
					return
				}
				worst[i] = max(worst[i], time.Since(start))
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	sec2Send(t, attacker, msgs...)
	got := sec2Read(t, attacker, n)
	took := time.Since(start)
	close(stop)
	wg.Wait()
	t.Logf("attacker's %d statements of %d bytes: %v (first answer %q)", n, len(slow), took, firstOf(got))
	for i, w := range worst {
		t.Logf("victim %d: slowest SELECT 1 took %v", i, w)
		if w > 250*time.Millisecond {
			t.Errorf("victim %d: a SELECT 1 took %v while another session's statements were classified on the event loop", i, w)
		}
	}
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	if len(s[0]) > 120 {
		return s[0][:120]
	}
	return s[0]
}

// sec2Git runs git in the demo policy repository.
func sec2Git(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", env.PolicyDir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=sec2", "GIT_AUTHOR_EMAIL=sec2@example.com",
		"GIT_COMMITTER_NAME=sec2", "GIT_COMMITTER_EMAIL=sec2@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// sec2LiveCommit is the policy commit the gateway has live.
func sec2LiveCommit(t *testing.T) string {
	t.Helper()
	var st api.PolicyStatus
	if err := json.Unmarshal([]byte(apiGet(t, "/v1/policy/status")), &st); err != nil {
		t.Fatal(err)
	}
	return st.Live.Hash
}

func sec2WaitLive(t *testing.T, commit string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for sec2LiveCommit(t) != commit {
		if time.Now().After(deadline) {
			t.Fatalf("policy commit %s never went live", commit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSec2AuditAfterPolicyChange: a session keeps the policy commit that
// was live when it started and names it in every statement event, while
// its statements are decided by the policy live at the time. After a new
// commit adds a deny rule, the session's refusal by that rule is audited
// with the old commit, which has no such rule. And a statement prepared
// before the change and bound after it ends the session without any
// statement event: the refusal, its rule and its text are not audited.
func TestSec2AuditAfterPolicyChange(t *testing.T) {
	oldCommit := sec2LiveCommit(t)
	mark := strconv.FormatInt(time.Now().UnixNano(), 36)
	conn := connect(t, pgConfig(t, alice))
	ctx := testCtx(t)
	listen := "LISTEN sec2_" + mark
	if _, err := conn.Prepare(ctx, "sec2_prepared", listen); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT 'sec2 before "+mark+"'"); err != nil {
		t.Fatal(err)
	}
	// A new policy commit: deny LISTEN.
	rule := filepath.Join(env.PolicyDir, "rules", "sec2.toml")
	if err := os.WriteFile(rule, []byte("[[deny]]\nid = \"sec2-no-listen\"\ntargets = [\"*\"]\nstatements = [\"LISTEN\"]\nmessage = \"sec2 test rule\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sec2Git(t, "add", "rules/sec2.toml")
	sec2Git(t, "commit", "-q", "-m", "sec2: deny LISTEN")
	newCommit := sec2Git(t, "rev-parse", "HEAD")
	t.Cleanup(func() {
		sec2Git(t, "rm", "-q", "rules/sec2.toml")
		sec2Git(t, "commit", "-q", "-m", "sec2: remove the test rule")
		sec2WaitLive(t, sec2Git(t, "rev-parse", "HEAD"))
	})
	sec2WaitLive(t, newCommit)

	simple := "LISTEN sec2_simple_" + mark
	_, err := conn.Exec(ctx, simple, pgx.QueryExecModeSimpleProtocol)
	if err == nil || !strings.Contains(err.Error(), "sec2-no-listen") {
		t.Fatalf("%s after the new commit: %v, want the new rule's refusal", simple, err)
	}
	_, err = conn.Exec(ctx, "sec2_prepared")
	t.Logf("Bind of the statement prepared before the change: %v", err)

	var sawSimple, sawPrepared bool
	for _, e := range auditEvents(t, url.Values{"action": {"statement"}, "principal": {alice.principal}}) {
		switch e.Detail["text"] {
		case simple:
			sawSimple = true
			t.Logf("refusal event: decision=%s rule=%s policy_commit=%s", e.Decision, e.Rule, e.PolicyCommit)
			if e.Rule == "sec2-no-listen" && e.PolicyCommit != newCommit {
				t.Errorf("the refusal by rule %s (added in commit %.12s) is audited with policy commit %.12s (old %.12s)",
					e.Rule, newCommit, e.PolicyCommit, oldCommit)
			}
		case listen:
			if e.Decision == "deny" {
				sawPrepared = true
			}
		}
	}
	if !sawSimple {
		t.Errorf("no statement event for %q", simple)
	}
	if err != nil && !sawPrepared {
		t.Errorf("the session was ended by refusing %q (%v), but no statement event records that refusal or its rule", listen, err)
	}
}

// TestSec2SessionEndCounts: session.end says how many statements a
// session ran, but counts checks: a prepared statement executed five times
// counts once (and a Parse that never runs counts too), so the count
// disagrees with the session's own statement events.
func TestSec2SessionEndCounts(t *testing.T) {
	cfg := pgConfig(t, etl)
	mark := strconv.FormatInt(time.Now().UnixNano(), 36)
	cfg.RuntimeParams["application_name"] = "sec2-" + mark
	ctx := testCtx(t)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := conn.Exec(ctx, "SELECT $1::int -- sec2 "+mark, i); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)
	var session string
	deadline := time.Now().Add(10 * time.Second)
	for session == "" && time.Now().Before(deadline) {
		for _, e := range auditEvents(t, url.Values{"action": {"session.start"}, "principal": {etl.principal}}) {
			if e.Detail["application"] == "sec2-"+mark {
				session = e.Session
			}
		}
	}
	if session == "" {
		t.Fatal("no session.start event")
	}
	var events int
	var end map[string]string
	for time.Now().Before(deadline) && end == nil {
		events = 0
		for _, e := range auditEvents(t, url.Values{"session": {session}}) {
			switch e.Action {
			case "statement":
				events++
			case "session.end":
				end = e.Detail
			}
		}
	}
	if end == nil {
		t.Fatal("no session.end event")
	}
	t.Logf("session %s: %d statement events; session.end says statements=%s refused=%s", session, events, end["statements"], end["refused"])
	if end["statements"] != fmt.Sprint(events) {
		t.Errorf("session.end counts %s statements, but the session has %d statement events (5 executions of one prepared statement)", end["statements"], events)
	}
}

// TestSec2AttributeNotationRunsUnseenFunction: rule no-drop denies DROP
// to every grant, including admin, and a call of a user's function is
// opaque, so every deny rule covers it. But a function of one row-type
// argument can be called in attribute notation (o.f for f(o)), which the
// classifier takes for a column: the admin grant created such a function
// (CREATE FUNCTION was not a DROP) and then ran a DROP TABLE through it,
// unrefused and audited as a SELECT. The rules now see a function's body
// when it is created: an SQL body by its statements, any other as opaque.
func TestSec2AttributeNotationRunsUnseenFunction(t *testing.T) {
	t.Cleanup(func() {
		psqlUpstream(t, "DROP FUNCTION IF EXISTS sec2_f(orders); DROP FUNCTION IF EXISTS sec2_g(orders); DROP TABLE IF EXISTS sec2_keep")
	})
	conn := connect(t, pgConfig(t, carol))
	ctx := testCtx(t)
	if _, err := conn.Exec(ctx, "CREATE TABLE sec2_keep (id int)"); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"CREATE FUNCTION sec2_f(orders) RETURNS int LANGUAGE sql AS 'DROP TABLE sec2_keep; SELECT 1'",
		"CREATE FUNCTION sec2_g(orders) RETURNS int LANGUAGE plpgsql AS $$ BEGIN DROP TABLE sec2_keep; RETURN 1; END $$",
	} {
		_, err := conn.Exec(ctx, sql)
		wantRefusal(t, err, "no-drop")
		noteRefusal(carol, sql, "no-drop")
	}
	for _, sql := range []string{"SELECT o.sec2_f FROM orders o LIMIT 1", "SELECT o.sec2_g FROM orders o LIMIT 1"} {
		_, err := conn.Exec(ctx, sql)
		t.Logf("%s: %v", sql, err)
	}
	if got := psqlUpstream(t, "SELECT count(*) FROM pg_class WHERE relname = 'sec2_keep'"); got == "0" {
		t.Errorf("table sec2_keep was dropped through the admin grant although rule no-drop denies DROP to every grant")
	}
}
