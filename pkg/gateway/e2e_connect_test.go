package gateway_test

// `gatectl connect` in-process against the shared demo environment: it
// checks with the gateway that the caller may reach the target before it
// listens, and its listener reaches that target only.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatectl/gatectl/pkg/cli"
	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
)

// TestConnectChecksReachability: connect asks the gateway which targets
// the caller may reach before it listens or runs the client, and exits as
// exec does (3 denied, 4 authentication, 1 no answer) instead of with the
// client's code. A target without a grant and one that does not exist get
// the same message, as GET /v1/targets tells them apart no more.
func TestConnectChecksReachability(t *testing.T) {
	badToken := filepath.Join(t.TempDir(), "bad.tok")
	if err := os.WriteFile(badToken, []byte("not-a-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	psql := []string{"--", "psql", "-X", "-A", "-t", "-c", "SELECT 'reached'"}
	tests := []struct {
		name   string
		as     who
		args   []string
		code   int
		stderr string // substring
	}{
		{name: "no-grant", as: bob, args: append([]string{"connect", "orders"}, psql...), code: 3,
			stderr: `gatectl: you may not reach target "orders": no active grant gives you access to a target of that name; run ` + "`gatectl targets`"},
		{name: "unknown-target", as: etl, args: append([]string{"connect", "nosuch"}, psql...), code: 3,
			stderr: `gatectl: you may not reach target "nosuch": no active grant gives you access to a target of that name; run ` + "`gatectl targets`"},
		{name: "bad-token", as: etl, args: append([]string{"connect", "orders", "--token-file", badToken}, psql...), code: 4,
			stderr: "authentication failed"},
		{name: "gateway-unreachable", as: etl, args: append([]string{"connect", "orders", "--gateway", "https://127.0.0.1:1"}, psql...), code: 1,
			stderr: "gateway unreachable"},
		{name: "granted", as: etl, args: append([]string{"connect", "orders"}, psql...), code: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := gatectlAs(t, testCtx(t), tc.as, "", tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and stderr containing %q", code, errOut, tc.code, tc.stderr)
			}
			reached := strings.TrimSpace(out) == "reached"
			if tc.code == 0 && !reached {
				t.Errorf("stdout %q, want the client's result", out)
			}
			if tc.code != 0 && (reached || strings.Contains(errOut, "psql:")) {
				t.Errorf("the client ran (stdout %q, stderr %q); want connect to stop before it", out, errOut)
			}
		})
	}
}

// TestConnectRefusesOtherDatabase: the listener reaches its target only.
// A local client that names another database gets FATAL 3D000 saying so,
// and no session, rather than landing on the target; no database, or the
// target's name, reaches the target.
func TestConnectRefusesOtherDatabase(t *testing.T) {
	// Run by connect -- psql, which sets PGDATABASE to the target: -d
	// overrides it.
	code, out, errOut := gatectlAs(t, testCtx(t), etl, "", "connect", "orders", "--", "psql", "-X", "-A", "-t", "-d", "postgres", "-c", "SELECT current_database()")
	if code != 2 || !strings.Contains(errOut, `this listener reaches only target "orders", not "postgres"; to reach another target, run gatectl connect OTHER`) {
		t.Errorf("psql -d postgres: exit %d, stdout %q, stderr %q; want psql's exit 2 and the listener's refusal", code, out, errOut)
	}
	code, out, errOut = gatectlAs(t, testCtx(t), etl, "", "connect", "orders", "--", "psql", "-X", "-A", "-t", "-c", "SELECT 'reached'")
	if code != 0 || strings.TrimSpace(out) != "reached" {
		t.Errorf("psql with connect's PGDATABASE: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// connect --port: any local client, here pgx.
	port := startConnect(t, etl, "orders")
	tests := []struct {
		name     string
		database string
		refused  bool
	}{
		{name: "other-database", database: "postgres", refused: true},
		{name: "target-name", database: "orders"},
		{name: "no-database", database: ""},
		// libpq sends the user name when the client names no database.
		{name: "user-name", database: "etl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=etl sslmode=disable connect_timeout=20", port))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Database = tc.database
			conn, err := pgx.ConnectConfig(testCtx(t), cfg)
			if !tc.refused {
				if err != nil {
					t.Fatalf("connect to the listener with database %q: %v", tc.database, err)
				}
				defer conn.Close(context.Background())
				var db string
				if err := conn.QueryRow(testCtx(t), "SELECT current_database()").Scan(&db); err != nil || db != "orders" {
					t.Errorf("current_database() = %q, %v; want the target's database", db, err)
				}
				return
			}
			if err == nil {
				conn.Close(context.Background())
				t.Fatalf("database %q reached the target, want a refusal", tc.database)
			}
			pe := pgErrorOf(t, err)
			if pe.Code != "3D000" || pe.Severity != "FATAL" || !strings.Contains(pe.Message, `reaches only target "orders"`) || !strings.Contains(pe.Message, "gatectl connect OTHER") {
				t.Errorf("got %s %s %q; want FATAL 3D000 naming the target and how to reach another", pe.Severity, pe.Code, pe.Message)
			}
		})
	}
}

// startConnect runs `gatectl connect target --port N` as w in-process
// until the test ends, and returns N once the listener accepts.
func startConnect(t *testing.T, w who, target string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	t.Setenv("GATECTL_GATEWAY", env.Ready.API)
	t.Setenv("GATECTL_CA", env.Ready.CAFile)
	t.Setenv("GATECTL_TOKEN", token(t, w))
	ctx, cancel := context.WithCancel(context.Background())
	var errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, cmdutil.Test(nil, &bytes.Buffer{}, &errOut), []string{"connect", target, "--port", strconv.Itoa(port)})
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("connect --port: exit %d, stderr %q", code, errOut.String())
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("connect --port exited %d before listening: %s", code, errOut.String())
		default:
		}
		if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			c.Close()
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect --port did not listen on %d in time", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
