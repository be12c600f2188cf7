package gateway_test

// End-to-end tests of the gateway's PostgreSQL path and of the security
// invariants of DESIGN.md §7. One demo environment (a throwaway PostgreSQL,
// a policy repo from the template and an in-process --dev gateway) serves
// the whole test binary; the tests reach it with real clients: pgx, lib/pq,
// psql and pgbench.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatectl/gatectl/pkg/api"
	"github.com/gatectl/gatectl/pkg/audit"
	"github.com/gatectl/gatectl/pkg/demo"
	"github.com/gatectl/gatectl/pkg/gateway"
)

// env is the demo environment shared by every test of this binary.
var env *demo.Env

// gatewayLog holds everything the gateway (and anything logging through
// slog's default logger) wrote, at debug level.
var gatewayLog syncBuffer

// apiClient trusts the dev CA of env.
var apiClient *http.Client

// passwordEnv names the variables demo.Start sets to the target credentials.
var passwordEnv = []string{"ORDERS_RO_PASSWORD", "ORDERS_RW_PASSWORD", "ORDERS_ADMIN_PASSWORD"}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	logger := slog.New(slog.NewTextHandler(&gatewayLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	slog.SetDefault(logger)
	dir, err := os.MkdirTemp("", "gatectl-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Tests that flood a listener wait for the counts of refusals.
	gateway.SetRefusalReportEvery(time.Second)
	// TestAPIClosesIdleConnections waits for it.
	gateway.SetAPIIdleTimeout(2 * time.Second)
	env, err = demo.Start(ctx, demo.Options{
		Dir: dir, ListenAPI: "127.0.0.1:0", ListenPostgres: "127.0.0.1:0", Logger: logger, Customers: 1000,
	})
	if err != nil {
		// No PostgreSQL means no end-to-end test: fail loudly rather than
		// skip, so a missing dependency is never mistaken for a pass.
		fmt.Fprintln(os.Stderr, "e2e: start the demo environment (needs PostgreSQL, `make deps`):", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: stop the demo environment:", err)
		}
	}()
	// Connection logging lets tests prove from the target's own log which
	// logins the gateway made (and which it did not).
	if _, err := env.PG.Psql(ctx, "postgres", "ALTER SYSTEM SET log_connections = on; SELECT pg_reload_conf();"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: enable log_connections:", err)
		return 1
	}
	// The reload is asynchronous: wait until a new backend has the setting.
	for i := 0; ; i++ {
		out, err := env.PG.Psql(ctx, "postgres", "SHOW log_connections")
		if err == nil && strings.TrimSpace(out) == "on" {
			break
		}
		if i == 500 || ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "e2e: log_connections never took effect:", out, err)
			return 1
		}
	}
	pem, err := os.ReadFile(env.Ready.CAFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: read the dev CA:", err)
		return 1
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fmt.Fprintln(os.Stderr, "e2e: the dev CA file holds no certificate")
		return 1
	}
	apiClient = &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
	return m.Run()
}

// syncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Principals of the template policy as the tests use them.
type who struct {
	sub    string
	groups []string
	// principal is how the gateway names the caller.
	principal string
}

var (
	etl      = who{sub: "etl", principal: "service:etl"}                                  // read grant
	alice    = who{sub: "alice", groups: []string{"dba"}, principal: "user:alice"}        // write grant
	carol    = who{sub: "carol", groups: []string{"dba-admins"}, principal: "user:carol"} // admin grant
	bob      = who{sub: "bob", principal: "user:bob"}                                     // no grant
	security = who{sub: "sam", groups: []string{"security"}, principal: "user:sam"}       // auditor
)

var (
	tokenMu sync.Mutex
	tokens  = map[string]string{} // by who.principal
)

// token mints (once per principal) a dev token for w.
func token(t testing.TB, w who) string {
	t.Helper()
	tokenMu.Lock()
	defer tokenMu.Unlock()
	if tok, ok := tokens[w.principal]; ok {
		return tok
	}
	body, _ := json.Marshal(map[string]any{"sub": w.sub, "groups": w.groups})
	resp, err := apiClient.Post(env.Ready.API+"/dev/token", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("mint a dev token for %s: %v", w.principal, err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.AccessToken == "" {
		t.Fatalf("mint a dev token for %s: status %d, decode error %v", w.principal, resp.StatusCode, err)
	}
	tokens[w.principal] = out.AccessToken
	return out.AccessToken
}

// mintedTokens returns every token minted so far.
func mintedTokens() []string {
	tokenMu.Lock()
	defer tokenMu.Unlock()
	out := make([]string, 0, len(tokens))
	for _, tok := range tokens {
		out = append(out, tok)
	}
	return out
}

// targetPasswords returns the three target credentials; it fails the test
// if one is empty, since "contains the empty string" would prove nothing.
func targetPasswords(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range passwordEnv {
		pw := os.Getenv(name)
		if len(pw) < 16 {
			t.Fatalf("%s is %d characters; want the random password demo.Start set", name, len(pw))
		}
		out[name] = pw
	}
	return out
}

// gatewayHostPort splits the gateway's PostgreSQL listener address.
func gatewayHostPort(t testing.TB) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(env.Ready.Postgres)
	if err != nil {
		t.Fatalf("gateway PostgreSQL address %q: %v", env.Ready.Postgres, err)
	}
	return host, port
}

// pgConfig is a pgx config for the orders target through the gateway as w,
// over TLS verified against the dev CA (sslmode=verify-full).
func pgConfig(t testing.TB, w who) *pgx.ConnConfig {
	t.Helper()
	return pgConfigMode(t, w, "verify-full")
}

// pgConfigMode is pgConfig with the given sslmode.
func pgConfigMode(t testing.TB, w who, sslmode string) *pgx.ConnConfig {
	t.Helper()
	host, port := gatewayHostPort(t)
	dsn := fmt.Sprintf("host=%s port=%s dbname=orders user=%s sslmode=%s sslrootcert=%s connect_timeout=20",
		host, port, w.sub, sslmode, env.Ready.CAFile)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("parse pgx config: %v", err)
	}
	cfg.Password = token(t, w)
	cfg.Fallbacks = nil
	return cfg
}

// connect opens a pgx connection, closed when the test ends.
func connect(t testing.TB, cfg *pgx.ConnConfig) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect through the gateway as %s: %v", cfg.User, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// testCtx is a context bounded well below the test binary's timeout, so a
// hung session fails its test instead of the whole binary.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pgErrorOf returns err's *pgconn.PgError, failing the test when there is none.
func pgErrorOf(t testing.TB, err error) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("got error %v (%T), want a PostgreSQL error", err, err)
	}
	return pe
}

// wantRefusal checks that err is the gateway's refusal: SQLSTATE 42501 at
// severity ERROR (the session goes on), with a message containing want.
func wantRefusal(t testing.TB, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want a refusal (42501) containing %q", want)
	}
	pe := pgErrorOf(t, err)
	if got := pe.Code; got != "42501" {
		t.Errorf("got SQLSTATE %s (%s), want 42501", got, pe.Message)
	}
	if got := pe.Severity; got != "ERROR" {
		t.Errorf("got severity %s, want ERROR", got)
	}
	if !strings.Contains(pe.Message, want) {
		t.Errorf("got message %q, want it to contain %q", pe.Message, want)
	}
}

// refusal is a statement the tests saw refused, for the audit test.
type refusal struct {
	principal, text, rule string
}

var (
	refusalMu sync.Mutex
	refusals  []refusal
)

// noteRefusal remembers a refused statement; TestAuditRecordsRefusals
// checks that each one became an audit event. rule is the rule the audit
// event must name, or empty when a grant's access level refused it.
func noteRefusal(w who, text, rule string) {
	refusalMu.Lock()
	refusals = append(refusals, refusal{principal: w.principal, text: text, rule: rule})
	refusalMu.Unlock()
}

func notedRefusals() []refusal {
	refusalMu.Lock()
	defer refusalMu.Unlock()
	return append([]refusal(nil), refusals...)
}

// psqlUpstream runs sql on the target as the superuser, directly (not
// through the gateway), and returns the trimmed output.
func psqlUpstream(t testing.TB, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := env.PG.Psql(ctx, "orders", sql)
	if err != nil {
		t.Fatalf("upstream psql %q: %v", firstLine(sql), err)
	}
	return strings.TrimSpace(out)
}

// firstLine shortens sql for a failure message.
func firstLine(sql string) string {
	line, _, _ := strings.Cut(sql, "\n")
	return line
}

// snapshotSQL fingerprints everything a refused statement could have
// changed: both tables' contents, large objects, roles and their settings,
// the public schema's relations and the server's configuration file.
const snapshotSQL = `SELECT concat_ws(' | ',
  (SELECT count(*) || ':' || md5(coalesce(string_agg(concat_ws(',', id, customer_id, amount, status), ';' ORDER BY id), '')) FROM orders),
  (SELECT count(*) || ':' || md5(coalesce(string_agg(concat_ws(',', id, name, email, ssn, card), ';' ORDER BY id), '')) FROM customers),
  (SELECT count(*) FROM pg_largeobject_metadata),
  (SELECT md5(string_agg(concat_ws(',', rolname, rolsuper, rolcanlogin, rolpassword), ';' ORDER BY rolname)) FROM pg_authid),
  (SELECT count(*) FROM pg_db_role_setting),
  (SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace),
  (SELECT count(*) FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf' AND name <> 'log_connections'))`

// snapshot returns the fingerprint of snapshotSQL.
func snapshot(t testing.TB) string {
	t.Helper()
	return psqlUpstream(t, snapshotSQL)
}

// auditEvents reads the audit log through the API as an auditor; query is
// the URL query (e.g. "action=statement&decision=deny").
func auditEvents(t testing.TB, query url.Values) []audit.Event {
	t.Helper()
	raw := auditExport(t, query)
	var out []audit.Event
	dec := json.NewDecoder(strings.NewReader(raw))
	for {
		var e audit.Event
		if err := dec.Decode(&e); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("decode audit event: %v", err)
		}
		out = append(out, e)
	}
}

// auditExport returns the raw JSON lines of GET /v1/audit.
func auditExport(t testing.TB, query url.Values) string {
	t.Helper()
	return apiGet(t, "/v1/audit?"+query.Encode())
}

// auditVerify calls GET /v1/audit/verify.
func auditVerify(t testing.TB) api.VerifyReport {
	t.Helper()
	var rep api.VerifyReport
	if err := json.Unmarshal([]byte(apiGet(t, "/v1/audit/verify")), &rep); err != nil {
		t.Fatalf("decode the verify report: %v", err)
	}
	return rep
}

func apiGet(t testing.TB, path string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.Ready.API+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token(t, security))
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got status %d (%s), want 200", path, resp.StatusCode, b)
	}
	return string(b)
}

// upstreamLog returns the target server's log file.
func upstreamLog(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.PG.Dir, "server.log"))
	if err != nil {
		t.Fatalf("read the target's server log: %v", err)
	}
	return string(b)
}
