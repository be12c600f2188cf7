package gateway_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestStatementCacheThroughTheGateway: with the gateway's default
// configuration, a query a driver sends again and again as the unnamed
// statement is prepared once on the target; what PostgreSQL does not plan
// (SHOW) and what the grant refuses are not.
func TestStatementCacheThroughTheGateway(t *testing.T) {
	conn := connect(t, pgConfig(t, etl))
	ctx := testCtx(t)
	const count = "SELECT count(*) FROM customers WHERE id <= $1"
	for i := range 3 {
		var n int
		if err := conn.QueryRow(ctx, count, pgx.QueryExecModeExec, 5+i).Scan(&n); err != nil || n != 5+i {
			t.Fatalf("run %d: got %d, %v; want %d", i, n, err, 5+i)
		}
		var path string
		if err := conn.QueryRow(ctx, "SHOW search_path", pgx.QueryExecModeExec).Scan(&path); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "DELETE FROM orders WHERE id = $1", pgx.QueryExecModeExec, -1); err == nil {
			t.Fatal("a read grant deleted through the gateway")
		}
	}
	prepared := func() string {
		rows, err := conn.Query(ctx, "SELECT name || ': ' || statement FROM pg_prepared_statements", pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, "\n")
	}
	if got, want := prepared(), "gatectl.1: "+count; got != want {
		t.Errorf("prepared on the target: got %q, want %q", got, want)
	}
	// A SET may change how the target reads a statement: the text is
	// prepared afresh, and the statement from before closed.
	if _, err := conn.Exec(ctx, "SET TIME ZONE 'Asia/Tokyo'", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, count, pgx.QueryExecModeExec, 3).Scan(&n); err != nil || n != 3 {
		t.Fatalf("after SET: got %d, %v", n, err)
	}
	if got, want := prepared(), "gatectl.2: "+count; got != want {
		t.Errorf("prepared on the target after SET: got %q, want %q", got, want)
	}
}
