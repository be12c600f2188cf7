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
	"github.com/jackc/pgx/v5/pgproto3"
)

// preparedOnTarget lists the statements the session's backend holds
// prepared, as "name: text", asked with the simple protocol (which the
// statement cache leaves alone).
func preparedOnTarget(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT name || ': ' || statement FROM pg_prepared_statements ORDER BY name", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestStatementCacheKeepsPrepared: a query sent again and again as the
// unnamed statement (pgx's exec and describe-exec modes, as libpq's
// PQexecParams) is prepared once on the target, under the cache's name,
// and answers as before: each run with its own parameters, the audit
// naming the client's text.
func TestStatementCacheKeepsPrepared(t *testing.T) { forTransports(t, testStatementCacheKeepsPrepared) }

func testStatementCacheKeepsPrepared(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	conn := g.connect(t, nil)
	ctx := context.Background()
	const add, label = "SELECT $1::int + 1", "SELECT 'n' || $1::text"
	for i := range 4 {
		var n int
		if err := conn.QueryRow(ctx, add, pgx.QueryExecModeExec, i).Scan(&n); err != nil || n != i+1 {
			t.Fatalf("run %d of %q: got %d, %v; want %d", i, add, n, err, i+1)
		}
		var s string
		if err := conn.QueryRow(ctx, label, pgx.QueryExecModeDescribeExec, fmt.Sprint(i)).Scan(&s); err != nil || s != fmt.Sprint("n", i) {
			t.Fatalf("run %d of %q: got %q, %v", i, label, s, err)
		}
	}
	want := []string{cachePrefix + "1: " + add, cachePrefix + "2: " + label}
	if got := preparedOnTarget(t, conn); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("prepared on the target: got %q, want %q", got, want)
	}
	runs := 0
	for _, e := range g.rec.statements() {
		if e.Kind == KindExecute && (e.Text == add || e.Text == label) && e.Executed && e.CommandTag == "SELECT" && e.Rows == 1 {
			runs++
		}
	}
	if runs != 8 {
		t.Errorf("audited %d runs of the two texts, want 8: %+v", runs, g.rec.statements())
	}
}

// TestStatementCacheOff: with Upstream.StatementCache 0 nothing is
// prepared on the target behind the client's back.
func TestStatementCacheOff(t *testing.T) {
	up := Upstream{Address: needPG(t).Addr(), Database: "orders", User: "orders_rw", Password: rwPassword, TLSMode: "disable"}
	g := startGateway(t, gatewayOptions{plainClients: true, upstream: &up})
	conn := g.connect(t, nil)
	for i := range 3 {
		if _, err := conn.Exec(context.Background(), "SELECT $1::int", pgx.QueryExecModeExec, i); err != nil {
			t.Fatal(err)
		}
	}
	if got := preparedOnTarget(t, conn); len(got) != 0 {
		t.Errorf("prepared on the target with the cache off: %q", got)
	}
}

// TestStatementCacheAnswersAsPostgres reads the raw answers to the
// unnamed statement's uses where the cache rewrites what the target gets:
// each is what PostgreSQL alone answers.
func TestStatementCacheAnswersAsPostgres(t *testing.T) {
	forTransports(t, testStatementCacheAnswersAsPostgres)
}

func testStatementCacheAnswersAsPostgres(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	rc := dialRaw(t, g, plain, nil)
	waitReadyAfterLogin(t, rc)
	const one = "SELECT 1"
	steps := []struct {
		name string
		msgs []pgproto3.FrontendMessage
		want string
	}{
		{"miss", msgs{&P{Query: one}, &B{}, &E{}, &S{}}, "1 2 D C Z"},
		{"hit", msgs{&P{Query: one}, &B{}, &E{}, &S{}}, "1 2 D C Z"},
		{"describe-of-a-hit", msgs{&P{Query: one}, &D{ObjectType: 'S'}, &S{}}, "1 t T Z"},
		{"bind-in-the-next-step", msgs{&B{}, &D{ObjectType: 'P'}, &E{}, &S{}}, "2 T D C Z"},
		{"describe-in-the-next-step", msgs{&D{ObjectType: 'S'}, &S{}}, "t T Z"},
		// A simple Query drops the unnamed statement.
		{"query", msgs{&Q{String: "SELECT 2"}}, "T D C Z"},
		{"bind-after-a-query", msgs{&B{}, &E{}, &S{}}, "E26000 Z"},
		// A Parse that fails drops the unnamed statement too.
		{"hit-again", msgs{&P{Query: one}, &B{}, &E{}, &S{}}, "1 2 D C Z"},
		{"failed-parse", msgs{&P{Query: "SELECT * FROM no_such_table"}, &S{}}, "E42P01 Z"},
		{"bind-after-a-failed-parse", msgs{&B{}, &E{}, &S{}}, "E26000 Z"},
		// In a failed transaction the Parse itself fails, not a Bind
		// after a ParseComplete.
		{"begin", msgs{&Q{String: "BEGIN"}}, "C Z"},
		{"fail", msgs{&Q{String: "SELECT 1/0"}}, "E22012 Z"},
		{"parse-in-a-failed-transaction", msgs{&P{Query: one}, &B{}, &E{}, &S{}}, "E25P02 Z"},
		{"rollback", msgs{&Q{String: "ROLLBACK"}}, "C Z"},
		{"hit-after-rollback", msgs{&P{Query: one}, &B{}, &E{}, &S{}}, "1 2 D C Z"},
		// A named statement is the client's own, never the cache's.
		{"named", msgs{&P{Name: "mine", Query: one}, &B{PreparedStatement: "mine"}, &E{}, &S{}}, "1 2 D C Z"},
	}
	for _, st := range steps {
		if _, err := rc.conn.Write(encode(t, st.msgs...)); err != nil {
			t.Fatal(err)
		}
		if got := readTypes(t, rc); got != st.want {
			t.Errorf("%s: got %q, want %q", st.name, got, st.want)
		}
	}
}

// TestStatementCacheErrorsNameTheClientsStatement: the target's error for
// a Describe or Bind of an unnamed statement that is gone names no
// statement of the gateway's.
func TestStatementCacheErrorsNameTheClientsStatement(t *testing.T) {
	g := startGateway(t, gatewayOptions{plainClients: true})
	rc := dialRaw(t, g, true, nil)
	waitReadyAfterLogin(t, rc)
	// The Describe and the Bind come before the Parse's answer: the
	// gateway names the statement the Parse would have prepared.
	if _, err := rc.conn.Write(encode(t, &P{Query: "SELECT * FROM no_such_table"}, &S{}, &D{ObjectType: 'S'}, &S{}, &B{}, &E{}, &S{})); err != nil {
		t.Fatal(err)
	}
	rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var errs []string
	for ready := 0; ready < 3; {
		msg, err := rc.fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			errs = append(errs, m.Message)
		case *pgproto3.ReadyForQuery:
			ready++
		}
	}
	if len(errs) != 3 || !strings.Contains(errs[1], "unnamed prepared statement does not exist") || !strings.Contains(errs[2], "unnamed prepared statement does not exist") ||
		strings.Contains(strings.Join(errs, " "), cachePrefix) {
		t.Errorf("got errors %q, want the missing table's and the unnamed statement's twice, naming nothing of the cache", errs)
	}
}

// TestStatementCacheAfterDeallocate: DEALLOCATE ALL and DISCARD ALL drop
// the cache's statements on the target, and the cache with them: the
// texts are prepared again, not bound under names that are gone.
func TestStatementCacheAfterDeallocate(t *testing.T) {
	g := startGateway(t, gatewayOptions{plainClients: true})
	conn := g.connect(t, nil)
	ctx := context.Background()
	for _, drop := range []string{"DEALLOCATE ALL", "DISCARD ALL"} {
		for i := range 2 {
			var n int
			if err := conn.QueryRow(ctx, "SELECT $1::int", pgx.QueryExecModeExec, i).Scan(&n); err != nil || n != i {
				t.Fatalf("before %s, run %d: got %d, %v", drop, i, n, err)
			}
		}
		if _, err := conn.Exec(ctx, drop, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT $1::int", pgx.QueryExecModeExec, 7).Scan(&n); err != nil || n != 7 {
			t.Fatalf("after %s: got %d, %v; want 7", drop, n, err)
		}
	}
}

// TestStatementCacheAfterTableChange: a cached SELECT * fails once after
// another session adds a column ("cached plan must not change result
// type", as for any prepared statement), and the next run prepares the
// text afresh and returns the new column.
func TestStatementCacheAfterTableChange(t *testing.T) {
	admin := adminConn(t)
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "DROP TABLE IF EXISTS cache_change; CREATE TABLE cache_change (a int); INSERT INTO cache_change VALUES (1); GRANT SELECT ON cache_change TO orders_rw"); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, gatewayOptions{plainClients: true})
	conn := g.connect(t, nil)
	const all = "SELECT * FROM cache_change WHERE a = $1"
	columns := func() (int, error) {
		rows, err := conn.Query(ctx, all, pgx.QueryExecModeExec, 1)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		n := len(rows.FieldDescriptions())
		for rows.Next() {
		}
		return n, rows.Err()
	}
	for range 2 {
		if n, err := columns(); err != nil || n != 1 {
			t.Fatalf("before the change: got %d columns, %v", n, err)
		}
	}
	if _, err := admin.Exec(ctx, "ALTER TABLE cache_change ADD COLUMN b int"); err != nil {
		t.Fatal(err)
	}
	_, err := columns()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeFeatureNotSupported {
		t.Fatalf("first run after the change: got %v, want 0A000 (cached plan must not change result type)", err)
	}
	if n, err := columns(); err != nil || n != 2 {
		t.Fatalf("second run after the change: got %d columns, %v; want 2", n, err)
	}
}

// TestStatementCacheNamesAreReserved: a client may not prepare, by Parse
// or SQL PREPARE, nor close a statement under a name the cache uses: a
// Bind the gateway rewrote would run the client's statement, not the one
// it checked and audits.
func TestStatementCacheNamesAreReserved(t *testing.T) {
	g := startGateway(t, gatewayOptions{plainClients: true})
	for _, m := range []msgs{
		{&P{Name: cachePrefix + "1", Query: "SELECT 1"}, &S{}},
		{&Q{String: `PREPARE "` + cachePrefix + `1" AS SELECT 2`}},
		{&Cl{ObjectType: 'S', Name: cachePrefix + "1"}, &S{}},
	} {
		rc := dialRaw(t, g, true, nil)
		waitReadyAfterLogin(t, rc)
		if _, err := rc.conn.Write(encode(t, m...)); err != nil {
			t.Fatal(err)
		}
		rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		msg, err := rc.fe.Receive()
		e, ok := msg.(*pgproto3.ErrorResponse)
		if err != nil || !ok || e.Code != codeFeatureNotSupported || e.Severity != "FATAL" || !strings.Contains(e.Message, "reserved") {
			t.Errorf("%T: got %#v, %v; want FATAL 0A000 saying the name is reserved", m[0], msg, err)
		}
	}
}

// TestStatementCacheEvicts: a full cache gives up its oldest statement for
// a new text, and closes it on the target, which then holds no more than
// the cache's size; every run answers as without the cache.
func TestStatementCacheEvicts(t *testing.T) {
	up := Upstream{Address: needPG(t).Addr(), Database: "orders", User: "orders_rw", Password: rwPassword, TLSMode: "disable", StatementCache: 2}
	g := startGateway(t, gatewayOptions{plainClients: true, upstream: &up})
	conn := g.connect(t, nil)
	ctx := context.Background()
	texts := []string{"SELECT $1::int + 1", "SELECT $1::int + 2", "SELECT $1::int + 3"}
	for round := range 3 {
		for i, q := range texts {
			var n int
			if err := conn.QueryRow(ctx, q, pgx.QueryExecModeExec, round).Scan(&n); err != nil || n != round+i+1 {
				t.Fatalf("round %d, %q: got %d, %v; want %d", round, q, n, err, round+i+1)
			}
		}
		if got := preparedOnTarget(t, conn); len(got) != 2 {
			t.Errorf("round %d: prepared on the target: %q, want the cache's 2", round, got)
		}
	}
	// Three texts in turn through a cache of two: each Parse misses and
	// gives up the oldest, and the last two prepared remain.
	want := []string{cachePrefix + "8: " + texts[1], cachePrefix + "9: " + texts[2]}
	if got := preparedOnTarget(t, conn); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("prepared on the target at the end: got %q, want %q", got, want)
	}
}

// TestStatementCacheEvictsAsPostgres: with room for one statement, texts
// in turn evict each other, between a Parse and the Describe and Bind of
// the next step and within pipelined steps, and every answer is
// PostgreSQL's.
func TestStatementCacheEvictsAsPostgres(t *testing.T) {
	a, b := msgs{&P{Query: "SELECT 'a'"}, &D{ObjectType: 'S'}, &S{}}, msgs{&P{Query: "SELECT 'b'"}, &D{ObjectType: 'S'}, &S{}}
	run := msgs{&D{ObjectType: 'S'}, &B{}, &E{}, &S{}}
	steps := []reviewStep{
		{"parse-a", a, 1}, {"run-a", run, 1},
		{"parse-b", b, 1}, {"run-b", run, 1},
		{"parse-a-again", a, 1}, {"run-a-again", run, 1},
		// A Bind in a later step than a Parse that replaced the unnamed
		// statement is refused until the Parse is answered (uncertain),
		// so pipelined steps each parse what they bind.
		{"pipelined", msgs{&P{Query: "SELECT 'b'"}, &D{ObjectType: 'S'}, &B{}, &E{}, &S{}, &P{Query: "SELECT 'a'"}, &B{}, &E{}, &S{},
			&P{Query: "SELECT 'b'"}, &B{}, &E{}, &S{}}, 3},
	}
	without, _ := answersWithCache(t, 0, steps)
	with, _ := answersWithCache(t, 1, steps)
	for i, st := range steps {
		if with[i] != without[i] {
			t.Errorf("%s: with a cache of one %q, without %q", st.name, with[i], without[i])
		}
	}
}
