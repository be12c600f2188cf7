package gateway_test

// Reproductions of bypasses a security review found: statements hidden
// from the classifier by the client encoding or by a setting pipelined in
// front of them, rows changed by MERGE and upserts past rules written for
// DELETE and UPDATE, and audit text hidden behind padding. Each failed on
// the code before its fix.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// secPgconn connects as w with extra startup parameters, using pgconn
// directly so that the statement bytes are sent exactly as given.
func secPgconn(t *testing.T, w who, params map[string]string) (*pgconn.PgConn, error) {
	t.Helper()
	cfg := pgConfig(t, w)
	pcfg := cfg.Config.Copy()
	for k, v := range params {
		pcfg.RuntimeParams[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, pcfg)
	if err == nil {
		t.Cleanup(func() { pc.Close(context.Background()) })
	}
	return pc, err
}

// TestSecEncodingAliasBypass: the gateway refuses client_encoding=SJIS at
// startup, but PostgreSQL also accepts the aliases "windows932" and
// punctuated spellings ("s.jis"), and the login ParameterStatus (SJIS) is
// never checked. Under SJIS the byte pair 0x95 0x5C is one character, so
// the backslash that escapes a quote for the classifier is swallowed by the
// target, and a DELETE hidden in a string literal runs, unheld and audited
// as a SELECT.
func TestSecEncodingAliasBypass(t *testing.T) {
	for _, enc := range []string{"windows932", "s.jis", "WIN-932", "sjis "} {
		t.Run(enc, func(t *testing.T) {
			psqlUpstream(t, "INSERT INTO orders (id, customer_id, amount, status) VALUES (-4242, 1, 1, 'sec') ON CONFLICT DO NOTHING")
			pc, err := secPgconn(t, alice, map[string]string{"client_encoding": enc})
			if err != nil {
				if !strings.Contains(err.Error(), "is not allowed through the gateway") {
					t.Fatalf("startup with client_encoding=%q: %v, want the gateway's refusal", enc, err)
				}
				return
			}
			t.Logf("startup with client_encoding=%q accepted; target reports %q", enc, pc.ParameterStatus("client_encoding"))
			ctx := testCtx(t)
			// Plain DELETE is held (refused) for alice:
			_, err = pc.Exec(ctx, "DELETE FROM orders WHERE id = -4242").ReadAll()
			t.Logf("plain DELETE: %v", err)
			// 0xC3 0x95 is "Õ" in UTF-8 (what the classifier parses); in
			// SJIS 0xC3 is a half-width kana and 0x95 0x5C one kanji.
			evil := "SELECT E'\xc3\x95\\'; DELETE FROM orders WHERE id = -4242; --'"
			res, err := pc.Exec(ctx, evil).ReadAll()
			for _, r := range res {
				t.Logf("result: tag=%q err=%v", r.CommandTag, r.Err)
			}
			t.Logf("hidden DELETE: err=%v", err)
			if got := psqlUpstream(t, "SELECT count(*) FROM orders WHERE id = -4242"); got == "0" {
				t.Errorf("client_encoding=%q: the hidden DELETE ran on the target (row -4242 is gone) although DELETE is held for alice", enc)
			}
		})
	}
}

// secRaw hijacks a logged-in pgconn so raw protocol messages can be
// pipelined in one write.
func secRaw(t *testing.T, w who) *pgconn.HijackedConn {
	t.Helper()
	pc, err := secPgconn(t, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Conn.Close() })
	return hc
}

// secDrain reads messages until the connection ends or after the n-th
// ReadyForQuery, logging what came back.
func secDrain(t *testing.T, hc *pgconn.HijackedConn, n int) {
	t.Helper()
	hc.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for n > 0 {
		m, err := hc.Frontend.Receive()
		if err != nil {
			t.Logf("receive: %v", err)
			return
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			t.Logf("error %s %s %s", m.Severity, m.Code, m.Message)
		case *pgproto3.CommandComplete:
			t.Logf("complete %s", m.CommandTag)
		case *pgproto3.ParameterStatus:
			t.Logf("parameter %s=%s", m.Name, m.Value)
		case *pgproto3.ReadyForQuery:
			n--
		}
	}
}

// TestSecPipelinedSettingBypass: an admin grant may SET
// standard_conforming_strings or client_encoding; the gateway ends the
// session when the target reports the change (ParameterStatus), but the
// target reports it only before its next ReadyForQuery, after it has
// already read and run the statements pipelined behind the SET. A DELETE
// that rule prod-deletes holds runs.
func TestSecPipelinedSettingBypass(t *testing.T) {
	cases := []struct{ name, set, evil string }{
		{"scs-simple", "SET standard_conforming_strings = off",
			`SELECT 'a\', ' ; DELETE FROM orders WHERE id = -4243; -- '`},
		{"encoding-simple", "SET client_encoding = 'SJIS'",
			"SELECT E'\xc3\x95\\'; DELETE FROM orders WHERE id = -4243; --'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			psqlUpstream(t, "INSERT INTO orders (id, customer_id, amount, status) VALUES (-4243, 1, 1, 'sec') ON CONFLICT DO NOTHING")
			hc := secRaw(t, carol)
			var buf []byte
			buf, _ = (&pgproto3.Query{String: c.set}).Encode(buf)
			buf, _ = (&pgproto3.Query{String: c.evil}).Encode(buf)
			if _, err := hc.Conn.Write(buf); err != nil {
				t.Fatal(err)
			}
			secDrain(t, hc, 2)
			time.Sleep(200 * time.Millisecond)
			if got := psqlUpstream(t, "SELECT count(*) FROM orders WHERE id = -4243"); got == "0" {
				t.Errorf("%s: the pipelined hidden DELETE ran on the target although DELETE is held", c.name)
			}
		})
	}
	t.Run("scs-extended-single-statement", func(t *testing.T) {
		psqlUpstream(t, "INSERT INTO orders (id, customer_id, amount, status) VALUES (-4243, 1, 1, 'sec') ON CONFLICT DO NOTHING")
		hc := secRaw(t, carol)
		evil := `WITH q AS (SELECT 'a\' AS c), d AS (SELECT ' AS c), d AS (DELETE FROM orders WHERE id = -4243 RETURNING 1) SELECT 1 FROM d --') SELECT 1 FROM q, d`
		var buf []byte
		for _, sql := range []string{"SET standard_conforming_strings = off", evil} {
			buf, _ = (&pgproto3.Parse{Query: sql}).Encode(buf)
			buf, _ = (&pgproto3.Bind{}).Encode(buf)
			buf, _ = (&pgproto3.Execute{}).Encode(buf)
		}
		buf, _ = (&pgproto3.Sync{}).Encode(buf)
		if _, err := hc.Conn.Write(buf); err != nil {
			t.Fatal(err)
		}
		secDrain(t, hc, 1)
		time.Sleep(200 * time.Millisecond)
		if got := psqlUpstream(t, "SELECT count(*) FROM orders WHERE id = -4243"); got == "0" {
			t.Errorf("extended pipeline: the hidden DELETE ran on the target although DELETE is held")
		}
	})
}

// TestSecHoldRuleMissesMergeAndUpsert: rule prod-deletes holds DELETE and
// UPDATE for everyone, but a MERGE … THEN DELETE / THEN UPDATE and an
// INSERT … ON CONFLICT DO UPDATE delete and update rows without a hold.
func TestSecHoldRuleMissesMergeAndUpsert(t *testing.T) {
	psqlUpstream(t, "INSERT INTO orders (id, customer_id, amount, status) VALUES (-4244, 1, 1, 'sec'), (-4245, 1, 1, 'sec'), (-4246, 1, 1, 'sec') ON CONFLICT (id) DO UPDATE SET status = 'sec'")
	conn := connect(t, pgConfig(t, alice))
	ctx := testCtx(t)
	for _, sql := range []string{
		"DELETE FROM orders WHERE id = -4244",
		"MERGE INTO orders o USING (SELECT -4244 AS id) s ON o.id = s.id WHEN MATCHED THEN DELETE",
		"MERGE INTO orders o USING (SELECT -4245 AS id) s ON o.id = s.id WHEN MATCHED THEN UPDATE SET status = 'merged'",
		"INSERT INTO orders (id, customer_id, amount, status) VALUES (-4246, 1, 1, 'x') ON CONFLICT (id) DO UPDATE SET status = 'upserted'",
	} {
		_, err := conn.Exec(ctx, sql)
		t.Logf("%s\n    -> err=%v", sql, err)
	}
	got := psqlUpstream(t, "SELECT coalesce(string_agg(id || ':' || status, ',' ORDER BY id), '') FROM orders WHERE id IN (-4244, -4245, -4246)")
	t.Logf("rows now: %q (before: all three with status sec)", got)
	if got != "-4246:sec,-4245:sec,-4244:sec" {
		t.Errorf("rows were deleted/updated without the approval that rule prod-deletes requires: %q", got)
	}
}

// TestSecEncodingAliasBypassPsql is TestSecEncodingAliasBypass with psql:
// PGCLIENTENCODING=windows932.
func TestSecEncodingAliasBypassPsql(t *testing.T) {
	psqlUpstream(t, "INSERT INTO orders (id, customer_id, amount, status) VALUES (-4247, 1, 1, 'sec') ON CONFLICT DO NOTHING")
	environ := append(clientEnv(t, alice, "verify-full"), "PGCLIENTENCODING=windows932")
	evil := "SELECT E'\xc3\x95\\'; DELETE FROM orders WHERE id = -4247; --'"
	code, out, errOut := runClient(t, environ, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", evil)
	t.Logf("psql exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	if got := psqlUpstream(t, "SELECT count(*) FROM orders WHERE id = -4247"); got == "0" {
		t.Errorf("psql with PGCLIENTENCODING=windows932 ran a hidden DELETE that rule prod-deletes holds")
	}
	for _, e := range auditEvents(t, url.Values{"action": {"statement"}}) {
		if strings.Contains(fmt.Sprint(e.Detail), "-4247") {
			t.Logf("audit: decision=%s detail=%v", e.Decision, e.Detail)
		}
	}
}

// TestSecAuditTextTruncatedByPadding: statement text over 8 KiB is cut in
// the audit event, so a comment in front hides what actually ran.
func TestSecAuditTextTruncatedByPadding(t *testing.T) {
	conn := connect(t, pgConfig(t, alice))
	marker := "sec-pad-marker-4248"
	sql := "/* " + strings.Repeat("x", 9000) + " */ INSERT INTO orders (id, customer_id, amount, status) VALUES (-4248, 1, 1, '" + marker + "') ON CONFLICT DO NOTHING"
	if _, err := conn.Exec(testCtx(t), sql); err != nil {
		t.Fatal(err)
	}
	defer psqlUpstream(t, "DELETE FROM orders WHERE id = -4248")
	for _, e := range auditEvents(t, url.Values{"action": {"statement"}, "principal": {"user:alice"}}) {
		text := fmt.Sprint(e.Detail["text"])
		if strings.HasPrefix(text, "/* xxxx") {
			t.Logf("audit event: decision=%s class=%v tag=%v len(text)=%d has-marker=%v tail=%q",
				e.Decision, e.Detail["class"], e.Detail["tag"], len(text), strings.Contains(text, marker), text[len(text)-20:])
			if !strings.Contains(text, marker) {
				t.Errorf("the audit event's text does not show the statement that ran")
			}
		}
	}
}

// TestSecStartupParamsDropped: options= and replication= do not reach the
// target (control experiment; expected to pass).
func TestSecStartupParamsDropped(t *testing.T) {
	environ := append(clientEnv(t, etl, "verify-full"), "PGOPTIONS=-c role=orders_admin -c search_path=pg_temp,public -c session_authorization=orders_admin")
	code, out, errOut := runClient(t, environ, "psql", "-X", "-At", "-c", "SELECT current_user, session_user, current_setting('search_path'), current_setting('role')")
	t.Logf("options: exit %d out=%q err=%q", code, out, errOut)
	if strings.Contains(out, "orders_admin") || strings.Contains(out, "pg_temp") {
		t.Errorf("PGOPTIONS reached the target: %q", out)
	}
	host, port := gatewayHostPort(t)
	code, out, errOut = runClient(t, clientEnv(t, etl, "verify-full"), "psql", "-X", "-At",
		"host="+host+" port="+port+" dbname=orders replication=database", "-c", "IDENTIFY_SYSTEM")
	t.Logf("replication: exit %d out=%q err=%q", code, out, errOut)
	if code == 0 {
		t.Errorf("a replication command ran: %q", out)
	}
}

// TestSecEncodingAliasReadGrant: the same hidden-statement trick with the
// read grant: the read credential (orders_ro) still may create large
// objects and terminate other sessions of orders_ro (other principals' read
// sessions), both of which the classifier puts above read.
func TestSecEncodingAliasReadGrant(t *testing.T) {
	bystander := connect(t, pgConfig(t, etl))
	var bpid int
	// pg_backend_pid is the target's pid (the gateway hands out its own keys).
	if err := bystander.QueryRow(testCtx(t), "SELECT pg_backend_pid()").Scan(&bpid); err != nil {
		t.Fatal(err)
	}
	pc, err := secPgconn(t, etl, map[string]string{"client_encoding": "windows932"})
	if err != nil {
		if !strings.Contains(err.Error(), "is not allowed through the gateway") {
			t.Fatalf("startup with client_encoding=windows932: %v, want the gateway's refusal", err)
		}
		return
	}
	ctx := testCtx(t)
	_, err = pc.Exec(ctx, fmt.Sprintf("SELECT pg_terminate_backend(%d)", bpid)).ReadAll()
	t.Logf("plain pg_terminate_backend: %v", err)
	evil := fmt.Sprintf("SELECT E'\xc3\x95\\'; SELECT pg_terminate_backend(%d), lo_from_bytea(4249, $$sec$$); --'", bpid)
	res, err := pc.Exec(ctx, evil).ReadAll()
	for _, r := range res {
		t.Logf("result: tag=%q rows=%q err=%v", r.CommandTag, r.Rows, r.Err)
	}
	t.Logf("hidden: %v", err)
	defer psqlUpstream(t, "SELECT lo_unlink(4249) FROM pg_largeobject_metadata WHERE oid = 4249")
	if got := psqlUpstream(t, "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = 4249"); got != "0" {
		t.Errorf("the read grant created large object 4249")
	}
	if err := bystander.Ping(testCtx(t)); err != nil {
		t.Errorf("the read grant terminated another read session: %v", err)
	}
}

// TestSecDatabaseDefaultEncoding: an admin grant could ALTER DATABASE …
// SET client_encoding, and later sessions whose client sends no
// client_encoding (psql in a script) started in SJIS, because the gateway
// did not check the parameters the target reports at login.
func TestSecDatabaseDefaultEncoding(t *testing.T) {
	conn := connect(t, pgConfig(t, carol))
	if _, err := conn.Exec(testCtx(t), "ALTER DATABASE orders SET client_encoding = 'SJIS'"); err == nil || !strings.Contains(err.Error(), "refused for every grant") {
		t.Errorf("admin ALTER DATABASE … SET client_encoding = 'SJIS': %v, want it refused for every grant", err)
	}
	// Set behind the gateway's back, by the database's owner: the login
	// parameters the target reports are checked too.
	psqlUpstream(t, "ALTER DATABASE orders SET client_encoding = 'SJIS'")
	defer psqlUpstream(t, "ALTER DATABASE orders RESET client_encoding")
	code, out, errOut := runClient(t, clientEnv(t, etl, "verify-full"), "psql", "-X", "-At", "-c", "SHOW client_encoding")
	t.Logf("etl psql: exit %d out=%q err=%q", code, out, errOut)
	if strings.TrimSpace(out) == "SJIS" {
		t.Errorf("a read session runs with client_encoding SJIS through the gateway")
	}
	if code == 0 || !strings.Contains(errOut, "the target's default for this database or role") {
		t.Errorf("psql exit %d, stderr %q; want the login refused, naming the target's default", code, errOut)
	}
}

// TestPgSettingsPipelinedBypass: SET of standard_conforming_strings is
// refused for every grant because a statement pipelined behind it is read
// differently by the target than by the classifier. UPDATE pg_settings
// (updatable by every role; its rule calls set_config) made the same
// change as a plain write: a write grant on a target without an UPDATE
// hold hid a DROP TABLE, which rule no-drop denies, in a string literal.
func TestPgSettingsPipelinedBypass(t *testing.T) {
	orders, err := os.ReadFile(filepath.Join(env.PolicyDir, "targets", "orders.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(env.PolicyDir, "targets", "rev3.toml"), orders, 0o644); err != nil {
		t.Fatal(err)
	}
	grant := "[[grant]]\nid = \"rev3-dora-write\"\nto = \"user:dora3\"\ntarget = \"rev3\"\naccess = \"write\"\nowner = \"group:dba\"\nreason = \"e2e\"\n"
	if err := os.WriteFile(filepath.Join(env.PolicyDir, "grants", "rev3.toml"), []byte(grant), 0o644); err != nil {
		t.Fatal(err)
	}
	sec2Git(t, "add", "targets/rev3.toml", "grants/rev3.toml")
	sec2Git(t, "commit", "-q", "-m", "rev3: a second target and a write grant")
	sec2WaitLive(t, sec2Git(t, "rev-parse", "HEAD"))
	t.Cleanup(func() {
		sec2Git(t, "rm", "-q", "targets/rev3.toml", "grants/rev3.toml")
		sec2Git(t, "commit", "-q", "-m", "rev3: remove")
		sec2WaitLive(t, sec2Git(t, "rev-parse", "HEAD"))
	})
	psqlUpstream(t, "DROP TABLE IF EXISTS rev3_victim; CREATE TABLE rev3_victim (id int); ALTER TABLE rev3_victim OWNER TO orders_rw")
	defer psqlUpstream(t, "DROP TABLE IF EXISTS rev3_victim")

	dora := who{sub: "dora3", principal: "user:dora3"}
	cfg := pgConfig(t, dora)
	cfg.Database = "rev3"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, cfg.Config.Copy())
	if err != nil {
		t.Fatal(err)
	}
	// Control: the DROP itself is refused.
	_, err = pc.Exec(ctx, "DROP TABLE rev3_victim").ReadAll()
	t.Logf("plain DROP: %v", err)
	if err == nil {
		t.Fatal("plain DROP TABLE ran")
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Conn.Close()
	var buf []byte
	buf, _ = (&pgproto3.Query{String: "UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'"}).Encode(buf)
	buf, _ = (&pgproto3.Query{String: `SELECT 'a\', ' ; DROP TABLE rev3_victim; -- '`}).Encode(buf)
	if _, err := hc.Conn.Write(buf); err != nil {
		t.Fatal(err)
	}
	secDrain(t, hc, 2)
	time.Sleep(300 * time.Millisecond)
	if got := psqlUpstream(t, "SELECT count(*) FROM pg_class WHERE relname = 'rev3_victim'"); got == "0" {
		t.Errorf("a write grant dropped table rev3_victim (rule no-drop) by hiding the DROP behind UPDATE pg_settings")
	}
}

// TestFetchOfABoundPortal: SQL FETCH of a portal that the protocol's Bind
// made runs its statement, out of sight of the Execute path's re-check
// and audit event (a security review's finding: an INSERT bound under one
// policy ran by FETCH after a deny rule for it went live, audited as a
// FETCH). The gateway refuses it with the classifier's name of the
// portal; FETCH of a DECLAREd cursor still runs.
func TestFetchOfABoundPortal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, pgConfig(t, etl).Config.Copy())
	if err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Conn.Close()
	send := func(msgs ...pgproto3.FrontendMessage) {
		t.Helper()
		for _, m := range msgs {
			hc.Frontend.Send(m)
		}
		if err := hc.Frontend.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// read returns the SQLSTATEs of errors and the tags of completions
	// up to the next ReadyForQuery.
	read := func() []string {
		t.Helper()
		hc.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var seen []string
		for {
			m, err := hc.Frontend.Receive()
			if err != nil {
				t.Fatalf("receive: %v (seen %v)", err, seen)
			}
			switch m := m.(type) {
			case *pgproto3.ErrorResponse:
				seen = append(seen, m.Code+" "+m.Message)
			case *pgproto3.CommandComplete:
				seen = append(seen, string(m.CommandTag))
			case *pgproto3.ReadyForQuery:
				return seen
			}
		}
	}
	send(&pgproto3.Query{String: "BEGIN; DECLARE revf_c CURSOR FOR SELECT 1"})
	read()
	send(&pgproto3.Query{String: "FETCH ALL FROM revf_c"})
	if got := read(); fmt.Sprint(got) != "[FETCH 1]" {
		t.Errorf("FETCH of a DECLAREd cursor: %v, want it run", got)
	}
	send(&pgproto3.Parse{Query: "SELECT 'revf'"}, &pgproto3.Bind{DestinationPortal: "revF_p"}, &pgproto3.Sync{})
	read()
	send(&pgproto3.Query{String: `FETCH ALL FROM "revF_p"`})
	got := read()
	if len(got) != 1 || !strings.HasPrefix(got[0], `42501 FETCH or MOVE of portal "revF_p", which a Bind made, is refused`) {
		t.Errorf("FETCH of a bound portal: %v, want the refusal", got)
	}
}
