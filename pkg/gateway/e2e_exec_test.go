package gateway_test

// `gatectl exec` in-process against the shared demo environment: what it
// prints for each kind of result, COPY both ways, and the exit codes that
// tell the gateway's refusals from the target's errors.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/cli"
	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
	pgproxy "github.com/gatectl/gatectl/pkg/proxy/postgres"
)

// gatectlAs runs the gatectl CLI in-process as w, with stdin, and returns
// its exit code and output.
func gatectlAs(t *testing.T, ctx context.Context, w who, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("GATECTL_GATEWAY", env.Ready.API)
	t.Setenv("GATECTL_CA", env.Ready.CAFile)
	t.Setenv("GATECTL_TOKEN", token(t, w))
	var out bytes.Buffer
	// connect's listener reports a refused local client on stderr while
	// the client it runs writes there too.
	var errOut syncBuffer
	code = cli.Run(ctx, cmdutil.Test(strings.NewReader(stdin), &out, &errOut), args)
	return code, out.String(), errOut.String()
}

func TestExecZeroRowsKeepTheirColumns(t *testing.T) {
	ctx := testCtx(t)
	const sql = "SELECT id, status FROM orders WHERE false"
	code, out, errOut := gatectlAs(t, ctx, etl, "", "exec", "orders", "-o", "csv", "-c", sql)
	if code != 0 || out != "id,status\n" || !strings.Contains(errOut, "(0 rows)") {
		t.Errorf("csv: exit %d, stdout %q, stderr %q; want the header and (0 rows)", code, out, errOut)
	}
	code, out, _ = gatectlAs(t, ctx, etl, "", "exec", "orders", "-o", "json", "-c", sql)
	var res []struct {
		Columns []string
		Rows    []map[string]any
		Command string
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 {
		t.Fatalf("json: exit %d, %v:\n%s", code, err, out)
	}
	if len(res) != 1 || strings.Join(res[0].Columns, ",") != "id,status" || res[0].Rows == nil || res[0].Command != "SELECT 0" {
		t.Errorf("json: %+v", res)
	}
}

// TestExecJSONKeepsEveryColumn: rows are objects, so columns that share a
// name (a join's two ids) need distinct keys; and values keep their JSON
// types.
func TestExecJSONKeepsEveryColumn(t *testing.T) {
	code, out, errOut := gatectlAs(t, testCtx(t), etl, "", "exec", "orders", "-o", "json", "-c",
		`SELECT o.id, c.id, o.amount, o.amount > 0 AS paid, NULL::text AS none, '{"k": [1]}'::jsonb AS doc
		   FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id LIMIT 1`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res []struct {
		Columns []string
		Rows    []map[string]json.RawMessage
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if got := strings.Join(res[0].Columns, ","); got != "id,id_2,amount,paid,none,doc" {
		t.Errorf("columns %s", got)
	}
	row := res[0].Rows[0]
	want := psqlUpstream(t, `SELECT o.id || ',' || c.id || ',' || o.amount FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id LIMIT 1`)
	if got := string(row["id"]) + "," + string(row["id_2"]) + "," + string(row["amount"]); got != want {
		t.Errorf("id, id_2, amount: %s, want the numbers %s", got, want)
	}
	if string(row["paid"]) != "true" || string(row["none"]) != "null" || string(row["doc"]) != `{"k": [1]}` {
		t.Errorf("paid %s, none %s, doc %s", row["paid"], row["none"], row["doc"])
	}
}

func TestExecCopy(t *testing.T) {
	ctx := testCtx(t)
	psqlUpstream(t, "DROP TABLE IF EXISTS exec_copy_in; CREATE TABLE exec_copy_in (id int, note text); GRANT ALL ON exec_copy_in TO orders_rw")
	t.Cleanup(func() { psqlUpstream(t, "DROP TABLE IF EXISTS exec_copy_in") })

	code, out, errOut := gatectlAs(t, ctx, etl, "", "exec", "orders", "-c", "COPY (SELECT id, name FROM customers WHERE id <= 2 ORDER BY id) TO STDOUT WITH (FORMAT csv)")
	if want := "1,Customer 1\n2,Customer 2\n"; code != 0 || out != want || !strings.Contains(errOut, "COPY 2") {
		t.Errorf("COPY TO STDOUT: exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
	}

	rows := "1\tfirst\n2\t\\N\n3\twith\\ttab\n"
	code, _, errOut = gatectlAs(t, ctx, alice, rows, "exec", "orders", "-c", "COPY exec_copy_in FROM STDIN")
	if code != 0 || !strings.Contains(errOut, "COPY 3") {
		t.Fatalf("COPY FROM STDIN: exit %d, stderr %q", code, errOut)
	}
	if got := psqlUpstream(t, "SELECT string_agg(id || '=' || coalesce(note, 'NULL'), ' ' ORDER BY id) FROM exec_copy_in"); got != "1=first 2=NULL 3=with\ttab" {
		t.Errorf("loaded %q", got)
	}

	// A read grant cannot load: the gateway refuses the COPY before any
	// data is read.
	code, _, errOut = gatectlAs(t, ctx, etl, rows, "exec", "orders", "-c", "COPY exec_copy_in FROM STDIN")
	if code != 3 || !strings.Contains(errOut, "COPY needs write") {
		t.Errorf("COPY FROM STDIN with a read grant: exit %d, stderr %q; want 3", code, errOut)
	}

	// COPY data has one stream: a COPY must be the request's only
	// statement, and FROM STDIN cannot take its statement from stdin too.
	code, _, errOut = gatectlAs(t, ctx, alice, rows, "exec", "orders", "-c", "SELECT 1; COPY exec_copy_in FROM STDIN")
	if code != 2 || !strings.Contains(errOut, "must be the only statement") {
		t.Errorf("COPY in a batch: exit %d, stderr %q; want a usage error", code, errOut)
	}
	code, _, errOut = gatectlAs(t, ctx, alice, "COPY exec_copy_in FROM STDIN", "exec", "orders", "-f", "-")
	if code != 2 || !strings.Contains(errOut, "cannot come from it too") {
		t.Errorf("COPY FROM STDIN with -f -: exit %d, stderr %q; want a usage error", code, errOut)
	}
	if got := psqlUpstream(t, "SELECT count(*) FROM exec_copy_in"); got != "3" {
		t.Errorf("%s rows after the refused loads, want 3", got)
	}
}

// TestExecTargetPermissionErrorIsNotARefusal: the target's own 42501 is an
// error of the target (exit 1), not a decision of the policy (exit 3).
func TestExecTargetPermissionErrorIsNotARefusal(t *testing.T) {
	code, _, errOut := gatectlAs(t, testCtx(t), etl, "", "exec", "orders", "-c", "SELECT rolpassword FROM pg_authid")
	if code != 1 || !strings.Contains(errOut, "the target refused: permission denied") || !strings.Contains(errOut, "SQLSTATE 42501") {
		t.Errorf("exit %d, stderr %q; want exit 1 naming the target's refusal", code, errOut)
	}
	code, _, errOut = gatectlAs(t, testCtx(t), etl, "", "exec", "orders", "-c", "DELETE FROM orders")
	if code != 3 || !strings.Contains(errOut, "DELETE needs write") {
		t.Errorf("gateway refusal: exit %d, stderr %q; want 3", code, errOut)
	}
}

// TestExecBatchFailureSaysWhatWasRolledBack: -f runs as one request, so a
// failing statement rolls back the ones before it, and exec says so.
func TestExecBatchFailureSaysWhatWasRolledBack(t *testing.T) {
	mark := fmt.Sprintf("exec-batch-%d", time.Now().UnixNano())
	t.Cleanup(func() { psqlUpstream(t, "DELETE FROM orders WHERE status = '"+mark+"'") })
	file := filepath.Join(t.TempDir(), "batch.sql")
	sql := fmt.Sprintf("INSERT INTO orders (customer_id, amount, status) VALUES (1, 1, '%s');\nSELECT 1/0;\n", mark)
	if err := os.WriteFile(file, []byte(sql), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := gatectlAs(t, testCtx(t), alice, "", "exec", "orders", "-f", file)
	if code != 1 || !strings.Contains(errOut, "division by zero") || !strings.Contains(errOut, "statement 2 of the request failed") ||
		!strings.Contains(errOut, "were rolled back") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if n := psqlUpstream(t, "SELECT count(*) FROM orders WHERE status = '"+mark+"'"); n != "0" {
		t.Errorf("%s rows of the rolled-back INSERT", n)
	}
}

// TestExecAsksForUTF8: a target whose role defaults to another encoding
// must still get and return text as UTF-8.
func TestExecAsksForUTF8(t *testing.T) {
	psqlUpstream(t, "ALTER ROLE orders_ro SET client_encoding = 'LATIN1'")
	t.Cleanup(func() { psqlUpstream(t, "ALTER ROLE orders_ro RESET client_encoding") })
	code, out, errOut := gatectlAs(t, testCtx(t), etl, "", "exec", "orders", "-o", "csv", "-c",
		"SELECT length('Zoë') AS n, 'Zoë' AS s, current_setting('client_encoding') AS enc")
	if want := "n,s,enc\n3,Zoë,UTF8\n"; code != 0 || out != want {
		t.Errorf("exit %d, stdout %q (stderr %q); want %q", code, out, errOut, want)
	}
}

// TestExecInterruptCancelsTheStatement: cancelling exec's context (what
// Ctrl-C does) cancels the statement on the target and returns promptly.
// testscripts/testdata/exec-interrupt.txtar sends a real SIGINT.
func TestExecInterruptCancelsTheStatement(t *testing.T) {
	mark := fmt.Sprintf("execsleep%d", time.Now().UnixNano())
	ctx, cancel := context.WithCancel(testCtx(t))
	running := make(chan struct{})
	go func() {
		defer close(running)
		for range 100 {
			if psqlUpstream(t, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%"+mark+"' AND query NOT LIKE '%pg_stat_activity%'") == "1" {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	go func() { <-running; cancel() }()
	start := time.Now()
	code, _, errOut := gatectlAs(t, ctx, etl, "", "exec", "orders", "-c", "SELECT pg_sleep(30) -- "+mark)
	if code != 1 || !strings.Contains(errOut, "canceling statement due to user request") {
		t.Errorf("exit %d, stderr %q; want the target's cancellation", code, errOut)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("exec returned after %v", d)
	}
}

// TestExecReasonTooLong: a --reason that cannot fit in the startup packet
// is a usage error naming the limit, not a broken pipe; so is a --port
// that is no port.
func TestExecReasonTooLong(t *testing.T) {
	code, _, errOut := gatectlAs(t, testCtx(t), etl, "", "exec", "orders", "-c", "SELECT 1", "--reason", strings.Repeat("why ", 2500))
	if code != 2 || !strings.Contains(errOut, "--reason is 10000 bytes; at most 4096 fit") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = gatectlAs(t, testCtx(t), etl, "", "connect", "orders", "--reason", strings.Repeat("why ", 2500), "--", "true")
	if code != 2 || !strings.Contains(errOut, "at most 4096 fit") {
		t.Errorf("connect: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = gatectlAs(t, testCtx(t), etl, "", "connect", "orders", "--port", "99999", "--", "true")
	if code != 2 || !strings.Contains(errOut, "--port 99999 is not a TCP port") {
		t.Errorf("connect --port 99999: exit %d, stderr %q", code, errOut)
	}
}

// TestExecShowsNotices: the target's notices and warnings reach stderr.
func TestExecShowsNotices(t *testing.T) {
	code, _, errOut := gatectlAs(t, testCtx(t), etl, "", "exec", "orders", "-c", "COMMIT")
	if code != 0 || !strings.Contains(errOut, "WARNING:  there is no transaction in progress") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// TestExecGatewayMisconfigurationIsNotARefusal: a credential the gateway
// cannot load is for an admin to fix, not a policy decision, so exec exits
// 1, not 3, and the message says where to look.
func TestExecGatewayMisconfigurationIsNotARefusal(t *testing.T) {
	t.Setenv("ORDERS_RO_PASSWORD", "")
	code, _, errOut := gatectlAs(t, testCtx(t), etl, "", "exec", "orders", "-c", "SELECT 1")
	if code != 1 || !strings.Contains(errOut, "cannot use its credential") || strings.Contains(errOut, "refused by the gatectl gateway") {
		t.Errorf("exit %d, stderr %q; want exit 1 saying the gateway cannot use its credential", code, errOut)
	}
}

// execJSON is what `gatectl exec --output json` prints.
type execJSON []struct {
	Columns []string
	Rows    []map[string]json.RawMessage
	Command *string
	Error   *struct{ Code, Message string }
}

// TestExecJSONCarriesTheError: a statement that fails after some of its
// rows arrived leaves JSON that says so next to those rows (as well as the
// error on stderr and exit 1), so that a script reading stdout does not
// take them for the whole result; one that fails before any row has an
// object of its own.
func TestExecJSONCarriesTheError(t *testing.T) {
	ctx := testCtx(t)
	code, out, errOut := gatectlAs(t, ctx, etl, "", "exec", "orders", "-o", "json", "-c",
		"SELECT 1 AS a; SELECT 1/(3-g) AS q FROM generate_series(1,5) g")
	var res execJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if code != 1 || !strings.Contains(errOut, "division by zero (SQLSTATE 22012)") {
		t.Errorf("exit %d, stderr %q; want exit 1 and the error", code, errOut)
	}
	if len(res) != 2 || res[0].Command == nil || *res[0].Command != "SELECT 1" || res[0].Error != nil {
		t.Fatalf("got %s, want the first result complete and the second failed", out)
	}
	if f := res[1]; len(f.Rows) != 2 || string(f.Rows[1]["q"]) != "1" || f.Command != nil ||
		f.Error == nil || f.Error.Code != "22012" || f.Error.Message != "division by zero" {
		t.Errorf("got %s, want the 2 rows that arrived and error 22012 in place of a command", out)
	}

	code, out, _ = gatectlAs(t, ctx, etl, "", "exec", "orders", "-o", "json", "-c", "SELECT 1/0")
	res = nil
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if len(res) != 1 || res[0].Columns != nil || res[0].Error == nil || res[0].Error.Code != "22012" {
		t.Errorf("got %s, want one object holding the error", out)
	}
}

// TestExecSeparatesResults: the results of a multi-statement request are
// told apart by a blank line in table and CSV output.
func TestExecSeparatesResults(t *testing.T) {
	const sql = "SELECT 1 AS a; SELECT 'x' AS b, 'y' AS c"
	for format, want := range map[string]string{
		"table": "a\n1\n\nb  c\nx  y\n",
		"csv":   "a\n1\n\nb,c\nx,y\n",
	} {
		code, out, errOut := gatectlAs(t, testCtx(t), etl, "", "exec", "orders", "-o", format, "-c", sql)
		if code != 0 || out != want {
			t.Errorf("%s: exit %d, stdout %q (stderr %q); want %q", format, code, out, errOut, want)
		}
	}
}

// TestExecTableEscapesValues: a value with a newline cannot add a line to
// a table, which would fake a row.
func TestExecTableEscapesValues(t *testing.T) {
	code, out, errOut := gatectlAs(t, testCtx(t), etl, "", "exec", "orders", "-o", "table", "-c",
		`SELECT 1 AS id, E'ok\n2   forged' AS U&"st\0007tus"`)
	if want := "id  st\\x07tus\n1   ok\\n2   forged\n"; code != 0 || out != want {
		t.Errorf("exit %d, stdout %q (stderr %q); want %q", code, out, errOut, want)
	}
}

// TestExecStatementOverTheGatewayLimit: the gateway answers a message over
// its size limit with a FATAL error and closes while exec is still sending
// it; exec must report that error, as psql does, not the reset of the
// connection its write meets.
func TestExecStatementOverTheGatewayLimit(t *testing.T) {
	// Well past what the gateway drains before it closes, so that the
	// write is cut short by a reset.
	sql := "SELECT '" + strings.Repeat("a", 2*pgproxy.DefaultMaxMessageSize) + "'"
	code, out, errOut := gatectlAs(t, testCtx(t), etl, "", "exec", "orders", "-o", "json", "-c", sql)
	if code != 1 || !strings.Contains(errOut, "exceeds the gateway's limit of 33554432 bytes (SQLSTATE 54000)") ||
		strings.Contains(errOut, "reset") {
		t.Errorf("exit %d, stderr %q; want exit 1 with the gateway's error", code, errOut)
	}
	var res execJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 1 || res[0].Error == nil || res[0].Error.Code != "54000" {
		t.Errorf("stdout %q (%v); want the gateway's error", out, err)
	}
}
