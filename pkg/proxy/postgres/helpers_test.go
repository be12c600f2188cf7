package postgres

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/pgserver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Credentials of the test target; tests grep for them in everything a
// client received and everything logged.
const (
	rwPassword    = "rw-S3cret-Zq81"
	roPassword    = "ro-S3cret-Kp27"
	goodToken     = "good-token"
	badUpPassword = "wrong-S3cret-Lm55"
)

// testPG is the PostgreSQL server shared by the package's tests; nil when
// PostgreSQL is not installed.
var testPG *pgserver.Server

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if _, ok := pgserver.Installed(); !ok {
		// Tests that need it fail (needPG); the unit tests still run.
		fmt.Fprintln(os.Stderr, "postgres proxy tests: PostgreSQL is not installed (make deps)")
		return m.Run()
	}
	ctx := context.Background()
	pg, err := pgserver.Start(ctx, pgserver.Options{
		// Lets the target notice a client (the gateway) gone mid-query.
		Settings: []string{"client_connection_check_interval = '100ms'"},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start PostgreSQL:", err)
		return 1
	}
	defer pg.Stop()
	setup := fmt.Sprintf(`
CREATE ROLE orders_rw LOGIN PASSWORD '%s';
CREATE ROLE orders_ro LOGIN PASSWORD '%s';
CREATE DATABASE orders OWNER orders_rw;
`, rwPassword, roPassword)
	if out, err := pg.Psql(ctx, "postgres", setup); err != nil {
		fmt.Fprintln(os.Stderr, "set up roles:", err, out)
		return 1
	}
	tables := `
SET ROLE orders_rw;
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g;
CREATE TABLE scratch (id int, note text);
GRANT SELECT ON items TO orders_ro;
`
	if out, err := pg.Psql(ctx, "orders", tables); err != nil {
		fmt.Fprintln(os.Stderr, "set up tables:", err, out)
		return 1
	}
	testPG = pg
	return m.Run()
}

func needPG(t testing.TB) *pgserver.Server {
	t.Helper()
	if testPG == nil {
		t.Fatal("PostgreSQL is not installed (make deps)")
	}
	return testPG
}

// testChecker refuses statements starting with DROP or DELETE and function
// calls other than pg_backend_pid (oid 2026), and reports the cursors that
// DECLARE opens and FETCH or MOVE reads.
type testChecker struct{}

func (c testChecker) TryCheck(sql string) (Verdict, bool) {
	return c.Check(context.Background(), sql), true
}

func (testChecker) Check(_ context.Context, sql string) Verdict {
	s := strings.ToUpper(strings.TrimSpace(sql))
	switch {
	case strings.HasPrefix(s, "DROP"):
		return Verdict{Message: "destructive DDL is not allowed through the gateway", Tag: "DROP", Rule: "no-drop"}
	case strings.HasPrefix(s, "DELETE"):
		return Verdict{Message: "deletes need an approval", Tag: "DELETE", Rule: "no-delete"}
	case strings.HasPrefix(s, "FUNCTION CALL") && s != "FUNCTION CALL 2026":
		return Verdict{Message: "fast-path function calls are not allowed", Tag: "FUNCTION CALL", Rule: "no-fastpath"}
	case strings.Contains(s, "COPY") && strings.Contains(s, "FROM STDIN"):
		return Verdict{Allow: true, Tag: "COPY", CopyIn: true}
	case strings.HasPrefix(s, "DECLARE "):
		name, _, _ := strings.Cut(s[len("DECLARE "):], " ")
		v := Verdict{Allow: true, Tag: "DECLARE CURSOR", Declares: []string{strings.ToLower(name)}}
		if strings.Contains(s, " WITH HOLD ") {
			v.Holds = v.Declares
		}
		return v
	case strings.HasPrefix(s, "FETCH ") || strings.HasPrefix(s, "MOVE "):
		// FETCH|MOVE [direction] FROM|IN name, the gateway's classifier
		// in brief.
		f := strings.Fields(s)
		return Verdict{Allow: true, Tag: f[0], Fetches: []string{strings.ToLower(f[len(f)-1])}}
	case strings.Contains(s, "PREPARE "):
		name, _, _ := strings.Cut(strings.TrimSpace(s[strings.Index(s, "PREPARE ")+len("PREPARE "):]), " ")
		return Verdict{Allow: true, Tag: "PREPARE", Prepares: []string{strings.Trim(strings.ToLower(name), `"`)}}
	case strings.HasPrefix(s, "DEALLOCATE ALL") || s == "DISCARD ALL":
		return Verdict{Allow: true, Tag: "DEALLOCATE", DropsPrepared: true, ChangesAnalysis: s == "DISCARD ALL"}
	case strings.HasPrefix(s, "SET ") || strings.HasPrefix(s, "RESET ") || strings.HasPrefix(s, "CREATE ") ||
		strings.HasPrefix(s, "ALTER ") || strings.Contains(s, "SET_CONFIG("):
		return Verdict{Allow: true, Tag: "OTHER", ChangesAnalysis: true}
	case strings.HasPrefix(s, "DO "):
		return Verdict{Allow: true, Tag: "OTHER", Opaque: true}
	}
	// One SELECT, INSERT or UPDATE is what the statement cache may keep.
	word, _, _ := strings.Cut(s, " ")
	one := !strings.Contains(strings.TrimSuffix(s, ";"), ";")
	return Verdict{Allow: true, Tag: "OTHER", Cacheable: one && (word == "SELECT" || word == "INSERT" || word == "UPDATE")}
}

// recorder is an Observer that keeps every event.
type recorder struct {
	mu     sync.Mutex
	starts []SessionInfo
	stmts  []StatementEvent
	ends   chan SessionStats
	// loginFailures are "session id: reason" of TargetLoginFailed.
	loginFailures []string
}

func newRecorder() *recorder { return &recorder{ends: make(chan SessionStats, 64)} }

func (r *recorder) SessionStart(i SessionInfo) {
	r.mu.Lock()
	r.starts = append(r.starts, i)
	r.mu.Unlock()
}

func (r *recorder) Statement(e StatementEvent) {
	r.mu.Lock()
	r.stmts = append(r.stmts, e)
	r.mu.Unlock()
}

func (r *recorder) SessionEnd(s SessionStats) { r.ends <- s }

func (r *recorder) TargetLoginFailed(i SessionInfo, reason string) {
	r.mu.Lock()
	r.loginFailures = append(r.loginFailures, i.ID+": "+reason)
	r.mu.Unlock()
}

func (r *recorder) statements() []StatementEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]StatementEvent(nil), r.stmts...)
}

// testAuth accepts goodToken and plans a session to upstream.
type testAuth struct {
	upstream Upstream
	checker  StatementChecker // testChecker{} when nil
	observer Observer
	n        atomic.Int64
}

func (a *testAuth) Authenticate(_ context.Context, req AuthRequest) (*Session, error) {
	if req.Token != goodToken {
		return nil, &AuthError{Msg: "invalid token: signature check failed"}
	}
	if req.Database != "orders" {
		return nil, &AccessError{Msg: fmt.Sprintf("no grant for target %q", req.Database)}
	}
	id := a.n.Add(1)
	return &Session{
		ID: fmt.Sprintf("s-%d", id), Principal: "user:alice", Target: "orders", GrantID: "alice-orders", Access: "write",
		Upstream: a.upstream, Checker: a.checkerOrDefault(), Observer: a.observer,
	}, nil
}

// syncBuffer is a goroutine-safe log sink.
func (a *testAuth) checkerOrDefault() StatementChecker {
	if a.checker != nil {
		return a.checker
	}
	return testChecker{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gateway is a running Server for one test.
type gateway struct {
	srv  *Server
	addr string
	auth *testAuth
	rec  *recorder
	logs *syncBuffer
	ca   *x509.CertPool
	// sslmode is what clients of this gateway use.
	sslmode string
}

type gatewayOptions struct {
	plaintext bool // AllowPlaintext for every address
	// plainClients makes the test's clients connect without TLS (and
	// implies plaintext), so their sessions run on the event loop.
	plainClients bool
	maxMessage   int
	maxStartups  int
	upstream     *Upstream
	checker      StatementChecker
}

func startGateway(t testing.TB, o gatewayOptions) *gateway {
	t.Helper()
	pg := needPG(t)
	g := &gateway{rec: newRecorder(), logs: &syncBuffer{}, sslmode: "require"}
	if o.plainClients {
		o.plaintext, g.sslmode = true, "disable"
	}
	// The statement cache is on, as in the gateway by default.
	up := Upstream{Address: pg.Addr(), Database: "orders", User: "orders_rw", Password: rwPassword, TLSMode: "disable", StatementCache: 100}
	if o.upstream != nil {
		up = *o.upstream
	}
	g.auth = &testAuth{upstream: up, observer: g.rec, checker: o.checker}
	cert, pool := testCert(t)
	g.ca = pool
	g.srv = &Server{
		Auth:           g.auth,
		TLSConfig:      &tls.Config{Certificates: []tls.Certificate{cert}},
		AllowPlaintext: func(net.Addr) bool { return o.plaintext },
		MaxMessageSize: o.maxMessage,
		MaxStartups:    o.maxStartups,
		Logger:         slog.New(slog.NewJSONHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- g.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		g.srv.Shutdown(ctx)
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		for _, secret := range []string{rwPassword, roPassword, badUpPassword, goodToken} {
			if strings.Contains(g.logs.String(), secret) {
				t.Errorf("gateway log contains a secret %q:\n%s", secret[:4], g.logs.String())
			}
		}
	})
	return g
}

// forTransports runs test over TLS, where sessions relay on goroutines,
// and in plaintext, where they relay on the event loop.
func forTransports(t *testing.T, test func(t *testing.T, plain bool)) {
	t.Run("tls", func(t *testing.T) { test(t, false) })
	t.Run("plaintext", func(t *testing.T) { test(t, true) })
}

// dsn is a connection string for the gateway.
func (g *gateway) dsn(token, sslmode string) string {
	host, port, _ := net.SplitHostPort(g.addr)
	return fmt.Sprintf("host=%s port=%s user=alice dbname=orders password=%s sslmode=%s", host, port, token, sslmode)
}

// pgxConfig parses a connection string for the gateway and records every
// byte the client receives (after TLS) into got.
func (g *gateway) pgxConfig(t testing.TB, token, sslmode string, got *syncBuffer) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(g.dsn(token, sslmode))
	if err != nil {
		t.Fatal(err)
	}
	if got != nil {
		cfg.AfterNetConnect = func(_ context.Context, _ *pgconn.Config, c net.Conn) (net.Conn, error) {
			return &recordingConn{Conn: c, got: got}, nil
		}
	}
	return cfg
}

func (g *gateway) connect(t testing.TB, got *syncBuffer) *pgx.Conn {
	t.Helper()
	conn, err := pgx.ConnectConfig(context.Background(), g.pgxConfig(t, goodToken, g.sslmode, got))
	if err != nil {
		t.Fatalf("connect through gateway: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// recordingConn records what is read from Conn.
type recordingConn struct {
	net.Conn
	got *syncBuffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.got.Write(p[:n])
	return n, err
}

// testCert makes a self-signed certificate for 127.0.0.1 and localhost.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gatectl test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// adminConn connects to the target directly as the superuser.
func adminConn(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), needPG(t).SuperuserDSN("orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// waitFor polls cond until it holds; it gives up (failing the test) after a
// minute, a bound on a hang, not a timing assertion.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var _ io.Writer = (*syncBuffer)(nil)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
