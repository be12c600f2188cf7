package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// protocolModes are the pgx query modes every refusal is tried in: the
// default extended protocol (named prepared statements) and the simple one.
var protocolModes = []struct {
	name string
	mode pgx.QueryExecMode
}{
	{"extended", pgx.QueryExecModeCacheStatement},
	{"simple", pgx.QueryExecModeSimpleProtocol},
}

func TestReadGrantCanSelect(t *testing.T) {
	for _, pm := range protocolModes {
		t.Run(pm.name, func(t *testing.T) {
			cfg := pgConfig(t, etl)
			cfg.DefaultQueryExecMode = pm.mode
			conn := connect(t, cfg)
			ctx := testCtx(t)
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM customers WHERE id <= $1", 10).Scan(&n); err != nil {
				t.Fatalf("select through the gateway: %v", err)
			}
			if got, want := n, 10; got != want {
				t.Errorf("got count %d, want %d", got, want)
			}
			var user string
			if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil {
				t.Fatalf("select current_user: %v", err)
			}
			// The read grant picks the read credential.
			if got, want := user, "orders_ro"; got != want {
				t.Errorf("got upstream user %q, want %q", got, want)
			}
		})
	}
}

// refusalCases are statements the gateway must refuse (DESIGN.md §7.3),
// with the text the refusal must contain and the rule the audit event must
// name (empty when a grant's access level refuses).
var refusalCases = []struct {
	name string
	as   who
	sql  string
	want string
	rule string
	// copy sends sql with the COPY FROM STDIN sub-protocol.
	copy bool
}{
	{name: "insert", as: etl, sql: "INSERT INTO orders (customer_id, amount, status) VALUES (1, 1, 'e2e')", want: "INSERT needs write"},
	{name: "update", as: etl, sql: "UPDATE orders SET status = 'e2e' WHERE id = 1", want: "UPDATE needs write"},
	{name: "delete", as: etl, sql: "DELETE FROM orders WHERE id = 1", want: "DELETE needs write"},
	{name: "merge", as: etl, sql: "MERGE INTO orders o USING (SELECT 1 AS id) s ON o.id = s.id WHEN MATCHED THEN DELETE", want: "needs write"},
	{name: "delete-in-cte", as: etl, sql: "WITH d AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM d", want: "DELETE changes data"},
	{name: "write-as-second-statement", as: etl, sql: "SELECT 1; DELETE FROM orders", want: "DELETE needs write"},
	{name: "do-block", as: etl, sql: "DO $$ BEGIN EXECUTE 'DELETE FROM orders'; END $$", want: "DO needs admin"},
	{name: "set-role", as: etl, sql: "SET ROLE orders_admin", want: `"etl-orders-read"`},
	{name: "set-session-authorization", as: etl, sql: "SET SESSION AUTHORIZATION orders_admin", want: `"etl-orders-read"`},
	{name: "set-config-role", as: etl, sql: "SELECT set_config('role', 'orders_admin', false)", want: `"etl-orders-read"`},
	{name: "copy-from-stdin", as: etl, sql: "COPY orders (customer_id, amount, status) FROM STDIN", want: "needs write", copy: true},
	{name: "copy-to-program", as: etl, sql: "COPY orders TO PROGRAM 'cat > /dev/null'", want: `"etl-orders-read"`},
	{name: "lo-import", as: etl, sql: "SELECT lo_import('/etc/passwd')", want: `"etl-orders-read"`},
	{name: "sql-prepare-execute", as: etl, sql: "PREPARE p AS DELETE FROM orders; EXECUTE p", want: `"etl-orders-read"`},
	{name: "sql-prepare-delete", as: etl, sql: "PREPARE p2 AS DELETE FROM orders", want: "DELETE"},
	{name: "sql-execute-unknown", as: etl, sql: "EXECUTE p3", want: "EXECUTE"},
	{name: "explain-analyze-delete", as: etl, sql: "EXPLAIN ANALYZE DELETE FROM orders", want: "DELETE"},
	{name: "select-into", as: etl, sql: "SELECT * INTO orders_copy FROM orders", want: `"etl-orders-read"`},
	{name: "alter-system", as: etl, sql: "ALTER SYSTEM SET work_mem = '1MB'", want: `"etl-orders-read"`},
	{name: "block-comment-mixed-case", as: etl, sql: "SELECT 1; /* innocent */ dElEtE FROM orders", want: "DELETE needs write"},
	{name: "line-comment", as: etl, sql: "-- only a select\nDELETE FROM orders", want: "DELETE needs write"},
	{name: "nested-comment", as: etl, sql: "/* outer /* inner */ still a comment */ DELETE FROM orders", want: "DELETE needs write"},
	{name: "quoted-identifiers", as: etl, sql: `DELETE FROM "public"."orders"`, want: "DELETE needs write"},
	{name: "unicode-escaped-identifier", as: etl, sql: `DELETE FROM U&"\006Frders"`, want: "DELETE needs write"},
	{name: "dollar-quote-then-write", as: etl, sql: "SELECT $q$ ; $q$; DELETE FROM orders", want: "DELETE needs write"},
	{name: "string-then-write", as: etl, sql: "SELECT 'it''s; fine'; UPDATE orders SET status = 'x'", want: "UPDATE needs write"},
	{name: "unclassifiable", as: etl, sql: "SELEC broken", want: `grant "etl-orders-read" gives read access to "orders"; the statement could not be classified, so it is denied: syntax error at or near "SELEC"; check the statement's syntax`},
	{name: "forbidden-setting", as: etl, sql: "SET standard_conforming_strings = off", want: `grant "etl-orders-read" gives read access to "orders"; SET is refused: changing standard_conforming_strings: it would make PostgreSQL read later statements differently`},
	{name: "drop-table", as: alice, sql: "DROP TABLE orders", want: `denied by rule "no-drop"`, rule: "no-drop"},
	{name: "truncate", as: alice, sql: "TRUNCATE orders", want: `denied by rule "no-drop"`, rule: "no-drop"},
	{name: "drop-as-second-statement", as: alice, sql: `SELECT 1; drop TABLE "orders"`, want: `denied by rule "no-drop"`, rule: "no-drop"},
	{name: "update-held", as: alice, sql: "UPDATE orders SET status = 'e2e' WHERE id = 1", want: `held by rule "prod-deletes"`, rule: "prod-deletes"},
	// Rules match data changes wherever they are in a statement. These
	// delete nothing even if they ran, so a gap cannot spoil other tests.
	{name: "delete-in-cte-held", as: alice, sql: "WITH d AS (DELETE FROM orders WHERE id = -1 RETURNING *) SELECT * FROM d", want: `held by rule "prod-deletes"`, rule: "prod-deletes"},
	{name: "explain-analyze-delete-held", as: alice, sql: "EXPLAIN ANALYZE DELETE FROM orders WHERE id = -1", want: `held by rule "prod-deletes"`, rule: "prod-deletes"},
	{name: "sql-prepare-delete-held", as: alice, sql: "PREPARE pd AS DELETE FROM orders WHERE id = -1", want: `held by rule "prod-deletes"`, rule: "prod-deletes"},
	{name: "merge-delete-held", as: alice, sql: "MERGE INTO orders o USING (SELECT -1 AS id) s ON o.id = s.id WHEN MATCHED THEN DELETE", want: `held by rule "prod-deletes"`, rule: "prod-deletes"},
	{name: "upsert-update-held", as: alice, sql: "INSERT INTO orders (id, customer_id, amount, status) VALUES (-1, 1, 1, 'e2e') ON CONFLICT (id) DO UPDATE SET status = 'e2e'", want: `held by rule "prod-deletes"`, rule: "prod-deletes"},
	{name: "drop-column-for-admin", as: carol, sql: "ALTER TABLE IF EXISTS e2e_absent DROP COLUMN x", want: `denied by rule "no-drop"`, rule: "no-drop"},
	{name: "drop-for-admin", as: carol, sql: "DROP TABLE IF EXISTS e2e_absent", want: `denied by rule "no-drop"`, rule: "no-drop"},
	{name: "drop-in-do-block-for-admin", as: carol, sql: "DO $$ BEGIN EXECUTE 'DROP TABLE IF EXISTS e2e_absent'; END $$", want: "DO"},
	{name: "create-table", as: alice, sql: "CREATE TABLE e2e_t (id int)", want: "CREATE TABLE needs admin"},
}

// TestRefusals sends every refusal case in both protocols, each on a fresh
// session, and checks the SQLSTATE and message, that the session is still
// usable, and on the target itself that nothing changed.
func TestRefusals(t *testing.T) {
	for _, pm := range protocolModes {
		t.Run(pm.name, func(t *testing.T) {
			for _, tc := range refusalCases {
				t.Run(tc.name, func(t *testing.T) {
					before := snapshot(t)
					cfg := pgConfig(t, tc.as)
					cfg.DefaultQueryExecMode = pm.mode
					conn := connect(t, cfg)
					ctx := testCtx(t)
					var err error
					if tc.copy {
						_, err = conn.PgConn().CopyFrom(ctx, strings.NewReader("1\t1.00\te2e\n"), tc.sql)
					} else {
						_, err = conn.Exec(ctx, tc.sql)
					}
					wantRefusal(t, err, tc.want)
					noteRefusal(tc.as, tc.sql, tc.rule)
					var one int
					if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
						t.Errorf("session after the refusal: %v", err)
					}
					if got, want := snapshot(t), before; got != want {
						t.Errorf("the target changed:\ngot  %s\nwant %s", got, want)
					}
				})
			}
		})
	}
}

// TestRefusalOfParameterizedStatement refuses a statement with parameters
// at Parse in every pgx mode of the extended protocol (some send Bind and
// Execute in the same round trip as the Parse), and the session goes on.
func TestRefusalOfParameterizedStatement(t *testing.T) {
	modes := []struct {
		name string
		mode pgx.QueryExecMode
	}{
		{"cache-statement", pgx.QueryExecModeCacheStatement},
		{"cache-describe", pgx.QueryExecModeCacheDescribe},
		{"describe-exec", pgx.QueryExecModeDescribeExec},
		{"exec", pgx.QueryExecModeExec},
	}
	const sql = "DELETE FROM orders WHERE id = $1 AND status = $2"
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			before := snapshot(t)
			cfg := pgConfig(t, etl)
			cfg.DefaultQueryExecMode = m.mode
			conn := connect(t, cfg)
			ctx := testCtx(t)
			var want int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&want); err != nil {
				t.Fatalf("count orders: %v", err)
			}
			for i := range 2 {
				_, err := conn.Exec(ctx, sql, int32(2), "paid")
				wantRefusal(t, err, "DELETE needs write")
				noteRefusal(etl, sql, "")
				var got int
				if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE id > $1", int32(0)).Scan(&got); err != nil {
					t.Fatalf("round %d: session after the refusal: %v", i, err)
				}
				if got != want {
					t.Errorf("round %d: got %d orders, want %d", i, got, want)
				}
			}
			if got, want := snapshot(t), before; got != want {
				t.Errorf("the target changed:\ngot  %s\nwant %s", got, want)
			}
		})
	}
	t.Run("named-prepare", func(t *testing.T) {
		conn := connect(t, pgConfig(t, etl))
		ctx := testCtx(t)
		_, err := conn.Prepare(ctx, "e2e_delete", sql)
		wantRefusal(t, err, "DELETE needs write")
		noteRefusal(etl, sql, "")
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n); err != nil {
			t.Fatalf("session after the refused Prepare: %v", err)
		}
		if got, want := n, 1000; got != want {
			t.Errorf("got %d customers, want %d", got, want)
		}
	})
}

// TestTransactionStaysInStep: a refused statement inside a transaction
// aborts it on the target too, as PostgreSQL's own errors do, so COMMIT
// rolls back and nothing from inside the transaction is kept.
func TestTransactionStaysInStep(t *testing.T) {
	for _, pm := range protocolModes {
		t.Run(pm.name, func(t *testing.T) {
			cfg := pgConfig(t, alice)
			cfg.DefaultQueryExecMode = pm.mode
			conn := connect(t, cfg)
			ctx := testCtx(t)
			marker := "e2e-tx-" + pm.name
			t.Cleanup(func() { psqlUpstream(t, "DELETE FROM orders WHERE status LIKE 'e2e-tx-%'") })
			insert := fmt.Sprintf("INSERT INTO orders (customer_id, amount, status) VALUES (1, 1.00, '%s')", marker)

			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatalf("begin: %v", err)
			}
			if _, err := tx.Exec(ctx, insert); err != nil {
				t.Fatalf("insert in the transaction: %v", err)
			}
			_, err = tx.Exec(ctx, "DROP TABLE orders")
			wantRefusal(t, err, `denied by rule "no-drop"`)
			noteRefusal(alice, "DROP TABLE orders", "no-drop")
			if got, want := conn.PgConn().TxStatus(), byte('E'); got != want {
				t.Errorf("got transaction status %q after the refusal, want %q (failed transaction)", got, want)
			}
			_, err = tx.Exec(ctx, "SELECT 1")
			if pe := pgErrorOf(t, err); pe.Code != "25P02" {
				t.Errorf("got SQLSTATE %s for a statement in the aborted transaction, want 25P02", pe.Code)
			}
			if err := tx.Commit(ctx); !errors.Is(err, pgx.ErrTxCommitRollback) {
				t.Errorf("got commit error %v, want %v", err, pgx.ErrTxCommitRollback)
			}
			if got := psqlUpstream(t, fmt.Sprintf("SELECT count(*) FROM orders WHERE status = '%s'", marker)); got != "0" {
				t.Errorf("got %s rows from the aborted transaction on the target, want 0", got)
			}

			// A refusal then ROLLBACK leaves a working session whose next
			// transaction commits.
			if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
				t.Fatalf("begin: %v", err)
			}
			_, err = conn.Exec(ctx, "TRUNCATE orders")
			wantRefusal(t, err, `denied by rule "no-drop"`)
			noteRefusal(alice, "TRUNCATE orders", "no-drop")
			if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
				t.Fatalf("rollback: %v", err)
			}
			if got, want := conn.PgConn().TxStatus(), byte('I'); got != want {
				t.Errorf("got transaction status %q after ROLLBACK, want %q", got, want)
			}
			tx, err = conn.Begin(ctx)
			if err != nil {
				t.Fatalf("begin after rollback: %v", err)
			}
			if _, err := tx.Exec(ctx, insert); err != nil {
				t.Fatalf("insert after rollback: %v", err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatalf("commit after rollback: %v", err)
			}
			if got := psqlUpstream(t, fmt.Sprintf("SELECT count(*) FROM orders WHERE status = '%s'", marker)); got != "1" {
				t.Errorf("got %s committed rows on the target, want 1", got)
			}
		})
	}
}

// TestCancel cancels a running query through the gateway with a
// CancelRequest (pgx sends one when the context is cancelled): the client
// gets 57014 and the session goes on.
func TestCancel(t *testing.T) {
	for _, pm := range protocolModes {
		t.Run(pm.name, func(t *testing.T) {
			cfg := pgConfig(t, etl)
			cfg.DefaultQueryExecMode = pm.mode
			cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
				// Without a forwarded cancel the deadline breaks the
				// connection instead, and the test sees no 57014.
				return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 20 * time.Second}
			}
			conn := connect(t, cfg)
			sql := "SELECT pg_sleep(30) /* e2e-cancel-" + pm.name + " */"
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := conn.Exec(ctx, sql)
				done <- err
			}()
			// Cancel only once the target runs the query.
			waitFor(t, done, fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '%s'", sql))
			cancel()
			err := <-done
			if pe := pgErrorOf(t, err); pe.Code != "57014" {
				t.Errorf("got SQLSTATE %s (%s), want 57014", pe.Code, pe.Message)
			}
			var n int
			if err := conn.QueryRow(testCtx(t), "SELECT 41 + 1").Scan(&n); err != nil {
				t.Fatalf("session after the cancel: %v", err)
			}
			if got, want := n, 42; got != want {
				t.Errorf("got %d, want %d", got, want)
			}
		})
	}
}

// waitFor polls the target until countSQL returns a non-zero count. It
// fails the test when done delivers first (the query ended early) or
// after a generous bound, so a broken gateway fails instead of hanging.
func waitFor(t *testing.T, done <-chan error, countSQL string) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		select {
		case err := <-done:
			t.Fatalf("the query ended before it was seen on the target: %v", err)
		default:
		}
		if got := psqlUpstream(t, countSQL); got != "0" {
			return
		}
	}
	t.Fatalf("the query never showed up on the target (%s)", countSQL)
}

// TestSQLPrepareOverAProtocolStatement: with the real classifier, SQL
// PREPARE of a name a protocol Parse created makes the gateway forget that
// name, so a Bind of it ends the session rather than run the PREPAREd text
// under the recorded one's check and audit.
func TestSQLPrepareOverAProtocolStatement(t *testing.T) {
	ctx := testCtx(t)
	conn := connect(t, pgConfig(t, alice))
	pc := conn.PgConn()
	if _, err := pc.Prepare(ctx, "x", "SELECT 'recorded text'", nil); err != nil {
		t.Fatal(err)
	}
	if err := pc.Exec(ctx, "DEALLOCATE x; PREPARE x AS SELECT 'prepared by SQL'").Close(); err != nil {
		t.Fatal(err)
	}
	res := pc.ExecPrepared(ctx, "x", nil, nil, nil).Read()
	if res.Err == nil {
		t.Fatalf("Bind of x ran and returned %q; want the session refused", res.Rows)
	}
	if pe := pgErrorOf(t, res.Err); pe.Code != "42501" || pe.Severity != "FATAL" {
		t.Errorf("got %s %s %q, want FATAL 42501", pe.Severity, pe.Code, pe.Message)
	}
}
