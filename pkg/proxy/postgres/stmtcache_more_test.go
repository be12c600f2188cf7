package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/lib/pq"
)

// answersToEnd is answersWithCache for steps the gateway may end the
// session in: a step's answers end at ReadyForQuery or at the end of
// the connection ("EOF").
func answersToEnd(t *testing.T, size int, steps []reviewStep) ([]string, *gateway) {
	t.Helper()
	up := Upstream{Address: needPG(t).Addr(), Database: "orders", User: "orders_rw", Password: rwPassword, TLSMode: "disable", StatementCache: size}
	g := startGateway(t, gatewayOptions{plainClients: true, upstream: &up})
	rc := dialRaw(t, g, true, nil)
	waitReadyAfterLogin(t, rc)
	var out []string
	for _, st := range steps {
		if _, err := rc.conn.Write(encode(t, st.msgs...)); err != nil {
			out = append(out, "EOF")
			continue
		}
		var got []string
		for range max(st.ready, 1) {
			a, ended := readStep(rc, true)
			got = append(got, a)
			if ended {
				break
			}
		}
		out = append(out, strings.Join(got, " | "))
	}
	return out, g
}

// More of what the statement cache must not change; each test failed
// before its fix.

// TestStatementCacheRevokeAfterDeallocateAll: revoke marks the entries in
// the cache's map, but a DEALLOCATE ALL run through the extended protocol
// (clear) has emptied the map while the client's unnamed statement still
// names its entry. An opaque statement (DO) then PREPAREs the freed cache
// name, the entry escapes the revocation, and a Bind of the unnamed
// statement runs the DO block's text while the audit names the checked one.
func TestStatementCacheRevokeAfterDeallocateAll(t *testing.T) {
	const q = "SELECT 'checked'"
	run := msgs{&P{Query: q}, &B{}, &E{}, &S{}}
	got, g := answersToEnd(t, 100, []reviewStep{
		{"miss", run, 1},
		{"hit-deallocate-do", msgs{
			&P{Query: q}, // a hit: the unnamed statement names gatectl.1
			&P{Name: "d", Query: "DEALLOCATE ALL"}, &B{DestinationPortal: "d", PreparedStatement: "d"}, &E{Portal: "d"},
			&P{Name: "x", Query: `DO $$BEGIN EXECUTE 'PREP' || 'ARE "gatectl.1" AS SELECT ''unchecked'''; END$$`},
			&B{DestinationPortal: "x", PreparedStatement: "x"}, &E{Portal: "x"},
			&S{},
		}, 1},
		{"bind", msgs{&B{}, &E{}, &S{}}, 1},
	})
	if strings.Contains(got[2], "D:") {
		var last StatementEvent
		for _, e := range g.rec.statements() {
			if e.Kind == KindExecute {
				last = e
			}
		}
		t.Errorf("the Bind of the unnamed statement ran the DO block's statement (%q); audited as %q", got, last.Text)
	}
}

// TestStatementCacheSettingRolledBack: a setting that changes how a text
// is analyzed and that the target does not report (transform_null_equals,
// timezone_abbreviations, array_nulls, …) changes back when the
// transaction that SET it rolls back (or a SET LOCAL ends): until the
// transaction ends, every ReadyForQuery starts a new cache generation.
func TestStatementCacheSettingRolledBack(t *testing.T) {
	const q = "SELECT coalesce((2 = NULL)::text, 'null')"
	run := msgs{&P{Query: q}, &B{}, &E{}, &S{}}
	compareWithAndWithoutCache(t, []reviewStep{
		{"begin", msgs{&Q{String: "BEGIN"}}, 1},
		{"set-in-transaction", msgs{&Q{String: "SET transform_null_equals = on"}}, 1},
		{"miss-transformed", run, 1},
		{"rollback", msgs{&Q{String: "ROLLBACK"}}, 1},
		{"hit-after-rollback", run, 1},
	})
}

// TestStatementCacheSetPreparedEarlier: a SET runs at its Execute, which
// may come long after its Parse: the generation moves at both.
func TestStatementCacheSetPreparedEarlier(t *testing.T) {
	const q = "SELECT coalesce((2 = NULL)::text, 'null')"
	run := msgs{&P{Query: q}, &B{}, &E{}, &S{}}
	compareWithAndWithoutCache(t, []reviewStep{
		{"prepare-set", msgs{&P{Name: "on", Query: "SET transform_null_equals = on"}, &S{}}, 1},
		{"miss", run, 1},
		{"run-set", msgs{&B{PreparedStatement: "on"}, &E{}, &S{}}, 1},
		{"hit-after-set", run, 1},
	})
}

// TestStatementCacheSetConfig: set_config() changes a setting as SET
// does, in a statement tagged SELECT: it counts as a change too.
func TestStatementCacheSetConfig(t *testing.T) {
	const q = "SELECT coalesce((2 = NULL)::text, 'null')"
	run := msgs{&P{Query: q}, &B{}, &E{}, &S{}}
	compareWithAndWithoutCache(t, []reviewStep{
		{"miss", run, 1},
		{"set-config", msgs{&Q{String: "SELECT set_config('transform_null_equals', 'on', false)"}}, 1},
		{"hit-after-set-config", run, 1},
	})
}

// libpqScript runs lib/pq's usual calls on one connection to a gateway
// with the statement cache of size, and returns what each returned.
func libpqScript(t *testing.T, size int) []string {
	t.Helper()
	up := Upstream{Address: needPG(t).Addr(), Database: "orders", User: "orders_rw", Password: rwPassword, TLSMode: "disable", StatementCache: size}
	g := startGateway(t, gatewayOptions{plainClients: true, upstream: &up})
	db, err := sql.Open("postgres", g.dsn(goodToken, "disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out []string
	note := func(what string, err error, v ...any) {
		code := ""
		var pe *pq.Error
		if errors.As(err, &pe) {
			code = string(pe.Code)
		} else if err != nil {
			code = err.Error()
		}
		out = append(out, fmt.Sprintf("%s: %v %s", what, v, code))
	}
	one := func(what, q string, args ...any) {
		var s sql.NullString
		err := conn.QueryRowContext(ctx, q, args...).Scan(&s)
		note(what, err, s.String)
	}
	exec := func(what, q string, args ...any) {
		_, err := conn.ExecContext(ctx, q, args...)
		note(what, err)
	}
	exec("create", "CREATE TEMP TABLE libpq_review (a int, b text)")
	for i := range 3 {
		exec("insert", "INSERT INTO libpq_review VALUES ($1, $2)", i, fmt.Sprint("v", i))
		one("select", "SELECT b FROM libpq_review WHERE a = $1", i)
	}
	one("missing-table", "SELECT b FROM no_such_table WHERE a = $1", 1)
	one("after-error", "SELECT b FROM libpq_review WHERE a = $1", 1)
	exec("begin", "BEGIN")
	one("div0", "SELECT 1/$1::int", 0)
	one("in-failed-tx", "SELECT b FROM libpq_review WHERE a = $1", 1)
	exec("rollback", "ROLLBACK")
	one("after-rollback", "SELECT b FROM libpq_review WHERE a = $1", 2)
	exec("alter", "ALTER TABLE libpq_review DROP COLUMN b")
	one("dropped-column", "SELECT b FROM libpq_review WHERE a = $1", 1)
	one("dropped-column-again", "SELECT b FROM libpq_review WHERE a = $1", 1)
	exec("add", "ALTER TABLE libpq_review ADD COLUMN b text DEFAULT 'new'")
	one("added-back", "SELECT b FROM libpq_review WHERE a = $1", 1)
	// COPY through lib/pq: a simple Query, then a prepared statement.
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := tx.Prepare(pq.CopyIn("libpq_review", "a", "b"))
	note("copy-prepare", err)
	if err == nil {
		for i := range 3 {
			_, err := st.Exec(10+i, "c")
			note("copy-row", err)
		}
		_, err = st.Exec()
		note("copy-end", err)
		note("copy-close", st.Close())
	}
	note("commit", tx.Commit())
	one("count", "SELECT count(*)::text FROM libpq_review WHERE a >= $1", 0)
	// A named statement, bound many times.
	ps, err := conn.PrepareContext(ctx, "SELECT b FROM libpq_review WHERE a = $1")
	note("prepare", err)
	if err == nil {
		for i := range 3 {
			var s sql.NullString
			err := ps.QueryRowContext(ctx, 10+i).Scan(&s)
			note("prepared", err, s.String)
		}
		ps.Close()
	}
	return out
}

// TestStatementCacheLibPQ: lib/pq's calls get the same answers with the
// cache on and off.
func TestStatementCacheLibPQ(t *testing.T) {
	off, on := libpqScript(t, 0), libpqScript(t, 100)
	for i := range max(len(off), len(on)) {
		var a, b string
		if i < len(off) {
			a = off[i]
		}
		if i < len(on) {
			b = on[i]
		}
		if a != b {
			t.Errorf("step %d: with the cache %q, without %q", i, b, a)
		}
	}
	t.Logf("%q", on)
}

// TestStatementCachePgbench: pgbench's TPC-B-like script, in extended
// mode and pipelined, through the cache.
func TestStatementCachePgbench(t *testing.T) {
	pgbench, err := exec.LookPath("pgbench")
	if err != nil {
		t.Skip("pgbench is not installed")
	}
	pg := needPG(t)
	host, port, _ := net.SplitHostPort(pg.Addr())
	init := exec.Command(pgbench, "-i", "-s", "1", "-q", "-h", host, "-p", port, "-U", "orders_rw", "orders")
	init.Env = append(os.Environ(), "PGPASSWORD="+rwPassword)
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	g := startGateway(t, gatewayOptions{plainClients: true})
	ghost, gport, _ := net.SplitHostPort(g.addr)
	script := t.TempDir() + "/pipeline.sql"
	if err := os.WriteFile(script, []byte(`\set aid random(1, 100000)
\set delta random(-5000, 5000)
\startpipeline
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
\endpipeline
BEGIN;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid + 1;
END;
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-M", "extended", "-c", "2", "-t", "300", "-n"},
		{"-M", "extended", "-c", "2", "-t", "300", "-n", "-f", script},
		{"-M", "prepared", "-c", "2", "-t", "100", "-n", "-f", script},
	} {
		cmd := exec.Command(pgbench, append(args, "-h", ghost, "-p", gport, "-U", "alice", "orders")...)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+goodToken, "PGSSLMODE=disable")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "number of failed transactions: 0") {
			t.Errorf("pgbench %q: %v\n%s", args, err, out)
		}
	}
}

// TestStatementCacheDeallocateAllPreparedEarlier: a DEALLOCATE ALL
// prepared once and run later drops the statements the cache prepared in
// between: the cache forgets its entries at the Execute too, not only at
// the Parse, so the next run of each is prepared afresh rather than
// failing (26000) where PostgreSQL runs it.
func TestStatementCacheDeallocateAllPreparedEarlier(t *testing.T) {
	const q = "SELECT 42"
	run := msgs{&P{Query: q}, &B{}, &E{}, &S{}}
	compareWithAndWithoutCache(t, []reviewStep{
		{"prepare-deallocate", msgs{&P{Name: "d", Query: "DEALLOCATE ALL"}, &S{}}, 1},
		{"miss", run, 1},
		{"run-deallocate", msgs{&B{PreparedStatement: "d"}, &E{}, &S{}}, 1},
		{"run-after-deallocate", run, 1},
	})
}

// TestSkippedParseOfUnnamedTwice: a Parse of the unnamed statement that
// the target skipped makes the gateway forget the unnamed statement (the
// revert of one puts nothing back), although the target still holds the
// one from before. A later Parse of it then had no record before it and
// was not uncertain, so if the target skipped it too, a Bind pipelined
// into the next step ran the statement from before while the audit named
// the new one; it is refused now (session.unnamedLost). With the cache
// on, texts it does not keep (VALUES, or any Parse while a Sync is
// unanswered) went the same way.
func TestSkippedParseOfUnnamedTwice(t *testing.T) {
	for _, size := range []int{0, 100} {
		up := Upstream{Address: needPG(t).Addr(), Database: "orders", User: "orders_rw", Password: rwPassword, TLSMode: "disable", StatementCache: size}
		g := startGateway(t, gatewayOptions{plainClients: true, upstream: &up})
		rc := dialRaw(t, g, true, nil)
		waitReadyAfterLogin(t, rc)
		for _, st := range []msgs{
			{&P{Query: "VALUES ('first')"}, &B{}, &E{}, &S{}},
			{&P{Name: "bad", Query: "SELECT * FROM no_such_table"}, &P{Query: "VALUES ('skipped')"}, &S{}},
		} {
			if _, err := rc.conn.Write(encode(t, st...)); err != nil {
				t.Fatal(err)
			}
			readAnswers(t, rc)
		}
		if _, err := rc.conn.Write(encode(t, &P{Name: "bad", Query: "SELECT * FROM no_such_table"}, &P{Query: "VALUES ('second')"}, &S{},
			&B{}, &E{}, &S{})); err != nil {
			t.Fatal(err)
		}
		rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			msg, err := rc.fe.Receive()
			if err != nil {
				break
			}
			if d, ok := msg.(*pgproto3.DataRow); ok {
				t.Errorf("cache %d: the Bind after two skipped Parses of the unnamed statement ran %q", size, d.Values[0])
			}
			if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
				if _, err := rc.conn.Write(encode(t, &pgproto3.Terminate{})); err != nil {
					break
				}
			}
		}
		for _, e := range g.rec.statements() {
			if e.Kind == KindExecute && e.Executed && e.Text == "VALUES ('second')" {
				t.Errorf("cache %d: audited %q as run (%d rows); the target never parsed it", size, e.Text, e.Rows)
			}
		}
	}
}

// TestStatementCacheShadowedTable: PostgreSQL looks names up at every
// Parse of the unnamed statement. A statement the cache kept would go on
// reading the table it found first after a temporary table of the same
// name shadows it: CREATE, ALTER and DROP start a new generation.
func TestStatementCacheShadowedTable(t *testing.T) {
	const q = "SELECT count(*)::text FROM items"
	run := msgs{&P{Query: q}, &B{}, &E{}, &S{}}
	compareWithAndWithoutCache(t, []reviewStep{
		{"temp-schema", msgs{&Q{String: "CREATE TEMP TABLE other (a int)"}}, 1},
		{"miss", run, 1},
		{"hit", run, 1},
		{"shadow", msgs{&Q{String: "CREATE TEMP TABLE items (a int)"}}, 1},
		{"hit-after-shadow", run, 1},
	})
}

// TestCloseUnnamedThenParsePipelined: a Close of the unnamed statement
// leaves a mark that makes the next Parse of it uncertain (a Bind in a
// later step before the answers is refused), unless the Close starts its
// pipeline step, where nothing before it can fail: a Close and a Parse,
// a Sync, and a Bind pipelined behind them run as PostgreSQL runs them.
func TestCloseUnnamedThenParsePipelined(t *testing.T) {
	for _, size := range []int{0, 100} {
		got, _ := answersToEnd(t, size, []reviewStep{
			{"first", msgs{&P{Query: "SELECT 'first'"}, &B{}, &E{}, &S{}}, 1},
			{"close-parse-then-bind", msgs{&Cl{ObjectType: 'S'}, &P{Query: "SELECT 'second'"}, &S{}, &B{}, &E{}, &S{}}, 2},
		})
		if want := "1 2 D:first C Z|3 1 Z | 2 D:second C Z"; strings.Join(got, "|") != want {
			t.Errorf("cache %d, pipelined: %q, want %q", size, got, want)
		}
		got, _ = answersToEnd(t, size, []reviewStep{
			{"first", msgs{&P{Query: "SELECT 'first'"}, &B{}, &E{}, &S{}}, 1},
			{"answered-close-parse", msgs{&Cl{ObjectType: 'S'}, &P{Query: "SELECT 'third'"}, &S{}}, 1},
			{"bind-after-answer", msgs{&B{}, &E{}, &S{}}, 1},
			{"close-parse-bind-one-step", msgs{&Cl{ObjectType: 'S'}, &P{Query: "SELECT 'fourth'"}, &B{}, &E{}, &S{}}, 1},
		})
		if want := "1 2 D:first C Z|3 1 Z|2 D:third C Z|3 1 2 D:fourth C Z"; strings.Join(got, "|") != want {
			t.Errorf("cache %d, answered: %q, want %q", size, got, want)
		}
	}
}
