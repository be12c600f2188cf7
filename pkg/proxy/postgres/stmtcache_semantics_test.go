package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// What the statement cache must not change: most tests run the same raw
// protocol steps through a gateway with the cache on and one with it off
// (which forwards the unnamed statement as the client sends it, as
// PostgreSQL alone answers), and want the same answers.

// readAnswers reads backend messages up to ReadyForQuery, as readTypes,
// with each DataRow's first column after its D.
func readAnswers(t *testing.T, rc *rawClient) string {
	t.Helper()
	got, ended := readStep(rc, true)
	if ended {
		t.Fatalf("read: the connection ended (seen %q)", got)
	}
	return got
}

// reviewStep is one write of messages and the number of ReadyForQuery
// answers it gets.
type reviewStep struct {
	name  string
	msgs  msgs
	ready int
}

// answersWithCache runs steps on a fresh connection to a gateway whose
// statement cache holds size statements (0: off), and returns each
// step's answers.
func answersWithCache(t *testing.T, size int, steps []reviewStep) ([]string, *gateway) {
	t.Helper()
	out, g := answersToEnd(t, size, steps)
	for i, a := range out {
		if strings.HasSuffix(a, "EOF") {
			t.Fatalf("%s: the connection ended: %q", steps[i].name, a)
		}
	}
	return out, g
}

// compareWithAndWithoutCache fails for every step whose answers differ
// between the cache on and off.
func compareWithAndWithoutCache(t *testing.T, steps []reviewStep) (on, off *gateway) {
	t.Helper()
	without, off := answersWithCache(t, 0, steps)
	with, on := answersWithCache(t, 100, steps)
	for i, st := range steps {
		if with[i] != without[i] {
			t.Errorf("%s: with the cache %q, without (as PostgreSQL) %q", st.name, with[i], without[i])
		}
	}
	return on, off
}

// TestStatementCacheDescribeAfterTableChange: lib/pq, pgx's describe modes
// and JDBC Describe the unnamed statement before binding it. After another
// session adds a column, a Describe of the cached statement fails with
// 0A000 ("cached plan must not change result type"). The entry must go
// stale then too, not only after a failed Bind, or the query fails for the
// rest of the session: the documented difference is one failure.
func TestStatementCacheDescribeAfterTableChange(t *testing.T) {
	admin := adminConn(t)
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "DROP TABLE IF EXISTS review_describe; CREATE TABLE review_describe (a int); INSERT INTO review_describe VALUES (1); GRANT SELECT ON review_describe TO orders_rw"); err != nil {
		t.Fatal(err)
	}
	up := Upstream{Address: needPG(t).Addr(), Database: "orders", User: "orders_rw", Password: rwPassword, TLSMode: "disable", StatementCache: 100}
	g := startGateway(t, gatewayOptions{plainClients: true, upstream: &up})
	rc := dialRaw(t, g, true, nil)
	waitReadyAfterLogin(t, rc)
	const all = "SELECT * FROM review_describe"
	describe := msgs{&P{Query: all}, &D{ObjectType: 'S'}, &S{}}
	run := msgs{&B{}, &E{}, &S{}}
	for range 2 {
		for _, m := range []msgs{describe, run} {
			if _, err := rc.conn.Write(encode(t, m...)); err != nil {
				t.Fatal(err)
			}
			readAnswers(t, rc)
		}
	}
	if _, err := admin.Exec(ctx, "ALTER TABLE review_describe ADD COLUMN b int"); err != nil {
		t.Fatal(err)
	}
	// As lib/pq and pgx do: the Bind only after a Describe that
	// succeeded.
	var got []string
	for range 4 {
		if _, err := rc.conn.Write(encode(t, describe...)); err != nil {
			t.Fatal(err)
		}
		d := readAnswers(t, rc)
		got = append(got, d)
		if strings.HasPrefix(d, "1 t E") {
			continue
		}
		if _, err := rc.conn.Write(encode(t, run...)); err != nil {
			t.Fatal(err)
		}
		got = append(got, readAnswers(t, rc))
	}
	// The first Describe may fail (the documented deviation); the next
	// round must run the text.
	if len(got) < 2 || got[1] != "1 t T Z" {
		t.Errorf("Describe-then-Bind after the table changed, four rounds: %q; want the second to describe the new row type", got)
	}
}

// TestStatementCacheTimeZone: a typed literal is converted when the
// statement is analyzed, with the session's settings then (TimeZone,
// DateStyle, IntervalStyle, ...). PostgreSQL analyzes the unnamed
// statement at every Parse; a statement the cache kept from before SET
// TIME ZONE would give another value (and an INSERT of such a literal
// would store one). A change of settings makes the cache prepare afresh.
func TestStatementCacheTimeZone(t *testing.T) {
	const q = "SELECT extract(epoch FROM '2024-01-01 00:00'::timestamptz)::int8::text"
	run := msgs{&P{Query: q}, &B{}, &E{}, &S{}}
	compareWithAndWithoutCache(t, []reviewStep{
		{"utc", msgs{&Q{String: "SET TIME ZONE 'UTC'"}}, 1},
		{"miss", run, 1},
		{"hit", run, 1},
		{"tokyo", msgs{&Q{String: "SET TIME ZONE 'Asia/Tokyo'"}}, 1},
		{"hit-after-set-time-zone", run, 1},
		{"datestyle-mdy", msgs{&Q{String: "SET datestyle TO ISO, MDY"}}, 1},
		{"date-miss", msgs{&P{Query: "SELECT '01/02/2024'::date::text"}, &B{}, &E{}, &S{}}, 1},
		{"datestyle-dmy", msgs{&Q{String: "SET datestyle TO ISO, DMY"}}, 1},
		{"date-hit-after-set-datestyle", msgs{&P{Query: "SELECT '01/02/2024'::date::text"}, &B{}, &E{}, &S{}}, 1},
	})
}

// TestStatementCacheClientEncoding: the cache's key is the Parse's bytes,
// but the target reads them in the session's client_encoding. After SET
// client_encoding the same bytes are another text, which the gateway
// checks and audits: a hit would bind the statement the target read in
// the old encoding. The cache is used only in UTF8.
func TestStatementCacheClientEncoding(t *testing.T) {
	q := "SELECT '\xc3\xa9'::text" // "é" in UTF8, "Ã©" in LATIN1
	run := msgs{&P{Query: q}, &B{}, &E{}, &S{}}
	on, _ := compareWithAndWithoutCache(t, []reviewStep{
		{"miss-utf8", run, 1},
		{"hit-utf8", run, 1},
		{"latin1", msgs{&Q{String: "SET client_encoding TO 'LATIN1'"}}, 1},
		{"hit-latin1", run, 1},
	})
	// The audit of the last run names the LATIN1 reading of the text.
	var last StatementEvent
	for _, e := range on.rec.statements() {
		if e.Kind == KindExecute {
			last = e
		}
	}
	t.Logf("audited last run: %q (rows %d)", last.Text, last.Rows)
}

// TestStatementCacheFailedTransactionPipelined: the status of the target's
// last ReadyForQuery is out of date while the client pipelines. A Parse
// sent right behind the statement that fails the transaction must not hit
// the cache, or the client gets ParseComplete and the error at the Bind,
// where PostgreSQL fails the Parse.
func TestStatementCacheFailedTransactionPipelined(t *testing.T) {
	run := msgs{&P{Query: "SELECT 1"}, &B{}, &E{}, &S{}}
	compareWithAndWithoutCache(t, []reviewStep{
		{"miss", run, 1},
		{"hit", run, 1},
		{"begin", msgs{&Q{String: "BEGIN"}}, 1},
		{"fail-then-parse-pipelined", append(msgs{&Q{String: "SELECT 1/0"}}, run...), 2},
		{"rollback", msgs{&Q{String: "ROLLBACK"}}, 1},
	})
}

// TestStatementCacheQueryIgnoredAfterError: after an error the target
// ignores every message up to Sync, a simple Query too, which then drops
// nothing. The unnamed statement counts as dropped only once the target
// ran the Query: otherwise the next Bind would go out unrenamed, to the
// target's empty unnamed statement (a hit's Parse), and the client would
// get EmptyQueryResponse while the audit said the text ran.
func TestStatementCacheQueryIgnoredAfterError(t *testing.T) {
	const q = "SELECT 42"
	prime := msgs{&P{Query: q}, &B{}, &E{}, &S{}}
	on, _ := compareWithAndWithoutCache(t, []reviewStep{
		{"miss", prime, 1},
		{"hit", prime, 1},
		{"hit-error-ignored-query", msgs{&P{Query: q}, &P{Name: "bad", Query: "SELECT * FROM no_such_table"}, &Q{String: "SELECT 1"}, &S{}}, 1},
		{"bind-after", msgs{&B{}, &E{}, &S{}}, 1},
	})
	for _, e := range on.rec.statements() {
		if e.Kind == KindExecute && e.Text == q && e.Executed && e.CommandTag == "" {
			t.Errorf("audit says %q ran (executed, %d rows, no tag), but the target ran the empty statement", e.Text, e.Rows)
		}
	}
}

// TestStatementCacheDeallocateAllExtended: DEALLOCATE ALL drops the named
// statements, not the unnamed one. Run through the extended protocol
// between a Parse of the unnamed statement and its Bind, it drops the
// cache's statement too, and the Bind fails with 26000 where PostgreSQL
// alone would run it (a documented difference; no other text runs). The
// next Parse prepares the text afresh.
func TestStatementCacheDeallocateAllExtended(t *testing.T) {
	const q = "SELECT 42"
	prime := msgs{&P{Query: q}, &B{}, &E{}, &S{}}
	got, _ := answersWithCache(t, 100, []reviewStep{
		{"miss", prime, 1},
		{"parse-deallocate-bind", msgs{&P{Query: q}, &P{Name: "d", Query: "DEALLOCATE ALL"}, &B{DestinationPortal: "p", PreparedStatement: "d"}, &E{Portal: "p"},
			&B{}, &E{}, &S{}}, 1},
		{"again", prime, 1},
	})
	want := []string{"1 2 D:42 C Z", "1 1 2 C E26000 Z", "1 2 D:42 C Z"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestStatementCacheSingleDeallocateLeaks: a DEALLOCATE of one of the
// client's own statements must not empty the cache: the target would keep
// every statement the cache prepared, under names never reused, so each
// such DEALLOCATE would leave up to statement_cache more plans in the
// target's backend.
func TestStatementCacheSingleDeallocateLeaks(t *testing.T) {
	up := Upstream{Address: needPG(t).Addr(), Database: "orders", User: "orders_rw", Password: rwPassword, TLSMode: "disable", StatementCache: 100}
	g := startGateway(t, gatewayOptions{plainClients: true, upstream: &up})
	conn := g.connect(t, nil)
	ctx := context.Background()
	for range 5 {
		for _, q := range []string{"SELECT $1::int", "SELECT $1::int + 1", "SELECT $1::int + 2"} {
			if _, err := conn.Exec(ctx, q, pgx.QueryExecModeExec, 1); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := conn.Exec(ctx, "PREPARE mine AS SELECT 1", pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "DEALLOCATE mine", pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
	}
	if got := preparedOnTarget(t, conn); len(got) > 3 {
		t.Errorf("after 5 rounds of 3 queries and a DEALLOCATE of the client's own statement, the target holds %d statements: %q", len(got), got)
	}
}

// TestStatementCacheDescribeAfterTableChangePgx is the same with pgx's
// describe-exec mode: after the table changes, the query fails once.
func TestStatementCacheDescribeAfterTableChangePgx(t *testing.T) {
	admin := adminConn(t)
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "DROP TABLE IF EXISTS review_describe_pgx; CREATE TABLE review_describe_pgx (a int); INSERT INTO review_describe_pgx VALUES (1); GRANT SELECT ON review_describe_pgx TO orders_rw"); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, gatewayOptions{plainClients: true})
	conn := g.connect(t, nil)
	const all = "SELECT * FROM review_describe_pgx WHERE a = $1"
	run := func() error {
		rows, err := conn.Query(ctx, all, pgx.QueryExecModeDescribeExec, 1)
		if err != nil {
			return err
		}
		rows.Close()
		return rows.Err()
	}
	for range 2 {
		if err := run(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.Exec(ctx, "ALTER TABLE review_describe_pgx ADD COLUMN b int"); err != nil {
		t.Fatal(err)
	}
	var errs []error
	for range 5 {
		errs = append(errs, run())
	}
	if errs[1] != nil || errs[4] != nil {
		t.Errorf("runs after the change: %v; want at most the first to fail", errs)
	}
}

// TestSkippedCloseAndParseOfUnnamed: after an error, the target skips a
// Close of the unnamed statement and a Parse of it, and keeps the
// statement from before. A Bind pipelined into the next step, before the
// Parse is answered, ran that old text while the audit named the new one.
// The Close now leaves a mark that makes the Parse uncertain, so the Bind
// is refused (the session ends), with the cache on or off.
func TestSkippedCloseAndParseOfUnnamed(t *testing.T) {
	for _, size := range []int{0, 100} {
		up := Upstream{Address: needPG(t).Addr(), Database: "orders", User: "orders_rw", Password: rwPassword, TLSMode: "disable", StatementCache: size}
		g := startGateway(t, gatewayOptions{plainClients: true, upstream: &up})
		rc := dialRaw(t, g, true, nil)
		waitReadyAfterLogin(t, rc)
		if _, err := rc.conn.Write(encode(t, &P{Query: "SELECT 'first'"}, &B{}, &E{}, &S{})); err != nil {
			t.Fatal(err)
		}
		if got := readAnswers(t, rc); got != "1 2 D:first C Z" {
			t.Fatalf("cache %d: first run: %q", size, got)
		}
		if _, err := rc.conn.Write(encode(t, &P{Name: "bad", Query: "SELECT * FROM no_such_table"}, &Cl{ObjectType: 'S'}, &P{Query: "SELECT 'second'"}, &S{},
			&B{}, &E{}, &S{})); err != nil {
			t.Fatal(err)
		}
		// The gateway refuses the Bind as it reads it, which may be
		// before the target's answers to the step before reach the
		// client: read to the end.
		rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		refused := false
		for {
			msg, err := rc.fe.Receive()
			if err != nil {
				break
			}
			if e, ok := msg.(*pgproto3.ErrorResponse); ok && e.Code == codeInsufficientPriv && e.Severity == "FATAL" {
				refused = true
			}
			if d, ok := msg.(*pgproto3.DataRow); ok {
				t.Errorf("cache %d: the Bind after the skipped Close and Parse ran %q", size, d.Values[0])
			}
		}
		if !refused {
			t.Errorf("cache %d: the Bind after the skipped Close and Parse was not refused with FATAL 42501", size)
		}
		for _, e := range g.rec.statements() {
			if e.Kind == KindExecute && e.Executed && e.Text == "SELECT 'second'" {
				t.Errorf("cache %d: audited %q as run; the target never parsed it", size, e.Text)
			}
		}
	}
}

// TestStatementCacheNameTakenByFunction: SQL the checker sees only as a DO
// block (or a function) may DEALLOCATE and PREPARE a statement under a
// cache name: a later hit binds that name, and the target runs a text the
// gateway never checked, audited as the client's cached text. Before the
// cache only the client's named statements were exposed so; now every
// one-shot query is.
func TestStatementCacheNameTakenByFunction(t *testing.T) {
	const q = "SELECT 'checked'"
	run := msgs{&P{Query: q}, &B{}, &E{}, &S{}}
	got, g := answersWithCache(t, 100, []reviewStep{
		{"miss", run, 1},
		{"do", msgs{&Q{String: `DO $$BEGIN EXECUTE 'DEALLOCATE "gatectl.1"'; EXECUTE 'PREP' || 'ARE "gatectl.1" AS SELECT ''unchecked'''; END$$`}}, 1},
		{"hit", run, 1},
	})
	if strings.Contains(got[2], "unchecked") {
		var last StatementEvent
		for _, e := range g.rec.statements() {
			if e.Kind == KindExecute {
				last = e
			}
		}
		t.Errorf("the Bind of the unnamed statement ran the DO block's statement (%q); audit %q", got, last.Text)
	}
}

// TestStatementCacheParseErrorMovesToBind: PostgreSQL analyzes the unnamed
// statement at its Parse, so a text naming a table or column that is gone
// fails there. A hit's empty Parse succeeds, and the error comes at the
// Bind (or the Describe) of the cached statement instead, after a
// ParseComplete: the entry goes stale then, so that only the first run
// after the change differs.
func TestStatementCacheParseErrorMovesToBind(t *testing.T) {
	admin := adminConn(t)
	ctx := context.Background()
	const q = "SELECT b FROM review_gone"
	run := msgs{&P{Query: q}, &B{}, &E{}, &S{}}
	// The column is dropped between the second and third runs.
	var answers [2][]string
	for i, size := range []int{0, 100} {
		if _, err := admin.Exec(ctx, "DROP TABLE IF EXISTS review_gone; CREATE TABLE review_gone (a int, b int); GRANT SELECT ON review_gone TO orders_rw"); err != nil {
			t.Fatal(err)
		}
		up := Upstream{Address: needPG(t).Addr(), Database: "orders", User: "orders_rw", Password: rwPassword, TLSMode: "disable", StatementCache: size}
		g := startGateway(t, gatewayOptions{plainClients: true, upstream: &up})
		rc := dialRaw(t, g, true, nil)
		waitReadyAfterLogin(t, rc)
		for j := range 4 {
			if j == 2 {
				if _, err := admin.Exec(ctx, "ALTER TABLE review_gone DROP COLUMN b"); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := rc.conn.Write(encode(t, run...)); err != nil {
				t.Fatal(err)
			}
			answers[i] = append(answers[i], readAnswers(t, rc))
		}
	}
	// The first run after the change may still get its error at the
	// Bind; the second must get it at the Parse, as from PostgreSQL.
	if answers[1][3] != answers[0][3] {
		t.Errorf("runs before and after the column is dropped: with the cache %q, without (as PostgreSQL) %q", answers[1], answers[0])
	}
}
