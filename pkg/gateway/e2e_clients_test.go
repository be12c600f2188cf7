package gateway_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
)

// TestLibPQ uses lib/pq through database/sql with sslmode=verify-full: its
// simple protocol (no arguments) and its extended protocol (arguments).
func TestLibPQ(t *testing.T) {
	host, port := gatewayHostPort(t)
	dsn := fmt.Sprintf("host=%s port=%s dbname=orders user=etl password=%s sslmode=verify-full sslrootcert=%s connect_timeout=20",
		host, port, token(t, etl), env.Ready.CAFile)
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer db.Close()
	// One connection, so the refusals and the queries after them share it.
	db.SetMaxOpenConns(1)
	ctx := testCtx(t)

	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM customers").Scan(&n); err != nil {
		t.Fatalf("select through the gateway: %v", err)
	}
	if got, want := n, 1000; got != want {
		t.Errorf("got %d customers, want %d", got, want)
	}

	before := snapshot(t)
	tests := []struct {
		name string
		sql  string
		args []any
	}{
		{"simple", "DELETE FROM orders WHERE id = 3", nil},
		{"extended", "DELETE FROM orders WHERE id = $1", []any{3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.ExecContext(ctx, tc.sql, tc.args...)
			var pe *pq.Error
			if !errors.As(err, &pe) {
				t.Fatalf("got error %v (%T), want a *pq.Error", err, err)
			}
			if got, want := string(pe.Code), "42501"; got != want {
				t.Errorf("got SQLSTATE %s (%s), want %s", got, pe.Message, want)
			}
			if !strings.Contains(pe.Message, `grant "etl-orders-read"`) {
				t.Errorf("got message %q, want it to name grant etl-orders-read", pe.Message)
			}
			noteRefusal(etl, tc.sql, "")
			if err := db.QueryRowContext(ctx, "SELECT count(*) FROM customers WHERE id <= $1", 5).Scan(&n); err != nil {
				t.Fatalf("session after the refusal: %v", err)
			}
			if got, want := n, 5; got != want {
				t.Errorf("got %d, want %d", got, want)
			}
		})
	}
	if got, want := snapshot(t), before; got != want {
		t.Errorf("the target changed:\ngot  %s\nwant %s", got, want)
	}
}

// clientEnv is the environment for libpq programs (psql, pgbench) reaching
// the gateway as w with sslmode: the caller's PG* variables are dropped and
// the token is the password.
func clientEnv(t *testing.T, w who, sslmode string) []string {
	t.Helper()
	host, port := gatewayHostPort(t)
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			out = append(out, kv)
		}
	}
	return append(out,
		"PGHOST="+host, "PGPORT="+port, "PGDATABASE=orders", "PGUSER="+w.sub,
		"PGPASSWORD="+token(t, w), "PGSSLMODE="+sslmode, "PGSSLROOTCERT="+env.Ready.CAFile,
		"PGCONNECT_TIMEOUT=20",
	)
}

// runClient runs a PostgreSQL client program and returns its exit code,
// stdout and stderr. It fails the test when the program is missing.
func runClient(t *testing.T, environ []string, name string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (make deps): %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = environ
	// A client that hangs is a bug in the gateway: show where every
	// goroutine of the in-process gateway stands before killing it.
	cmd.Cancel = func() error {
		var dump bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&dump, 1)
		t.Logf("%s did not finish in time; gateway goroutines:\n%s", name, dump.String())
		return cmd.Process.Kill()
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", name, err)
	}
	return code, out.String(), errb.String()
}

// TestPsql runs the psql binary with the token in PGPASSWORD.
func TestPsql(t *testing.T) {
	tests := []struct {
		name    string
		sslmode string
		sql     string
		code    int
		stdout  string // exact, trimmed
		stderr  string // substring
	}{
		{name: "select-verify-full", sslmode: "verify-full", sql: "SELECT count(*) FROM customers", stdout: "1000"},
		{name: "refusal-names-grant", sslmode: "verify-full", sql: "DELETE FROM orders WHERE id = 4",
			code: 1, stderr: `ERROR:  grant "etl-orders-read" gives read access to "orders"; DELETE needs write`},
		// The gateway allows plaintext from loopback only (AllowPlaintext
		// is isLoopbackAddr): a client on the same host gains nothing from
		// TLS it could not get by reading the process's memory.
		{name: "plaintext-from-loopback", sslmode: "disable", sql: "SELECT 'plain'", stdout: "plain"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runClient(t, clientEnv(t, etl, tc.sslmode), "psql", "-X", "-A", "-t", "-c", tc.sql)
			if code != tc.code {
				t.Errorf("got exit code %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			if got := strings.TrimSpace(stdout); got != tc.stdout {
				t.Errorf("got stdout %q, want %q", got, tc.stdout)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("got stderr %q, want it to contain %q", stderr, tc.stderr)
			}
			if tc.code != 0 {
				noteRefusal(etl, tc.sql, "")
			}
		})
	}
}

// TestPgbench runs pgbench's select-only script through the gateway in the
// extended, prepared and simple protocols, over TLS (sessions relayed on
// goroutines) and in plaintext from loopback (on the event loop): every
// transaction must succeed.
func TestPgbench(t *testing.T) {
	code, _, stderr := runClient(t, os.Environ(), "pgbench", "-i", "-s", "1", "-q",
		"-h", env.PG.SocketDir, "-p", strconv.Itoa(env.PG.Port), "-U", "postgres", "orders")
	if code != 0 {
		t.Fatalf("pgbench -i on the target: exit code %d: %s", code, stderr)
	}
	psqlUpstream(t, "GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO orders_ro")

	processed := regexp.MustCompile(`number of transactions actually processed: (\d+)/(\d+)`)
	failed := regexp.MustCompile(`number of failed transactions: (\d+)`)
	for _, run := range []struct{ mode, sslmode string }{
		{"extended", "verify-full"}, {"prepared", "verify-full"}, {"simple", "verify-full"},
		{"extended", "disable"}, {"prepared", "disable"}, {"simple", "disable"},
	} {
		t.Run(run.mode+"-"+run.sslmode, func(t *testing.T) {
			code, stdout, stderr := runClient(t, clientEnv(t, etl, run.sslmode), "pgbench",
				"-n", "-S", "-M", run.mode, "-c", "4", "-j", "2", "-t", "200", "orders")
			if code != 0 {
				t.Fatalf("got exit code %d, want 0\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			m := processed.FindStringSubmatch(stdout)
			if m == nil {
				t.Fatalf("no processed count in pgbench output:\n%s", stdout)
			}
			if got, want := m[1], "800"; got != want {
				t.Errorf("got %s transactions processed, want %s", got, want)
			}
			if m := failed.FindStringSubmatch(stdout); m == nil || m[1] != "0" {
				t.Errorf("got failed transactions %q, want 0\n%s", m, stdout)
			}
		})
	}
}
