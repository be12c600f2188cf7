package postgres

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestTLSLoginWithPgx(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	got := &syncBuffer{}
	conn := g.connect(t, got)
	var user string
	var ssl bool
	if err := conn.QueryRow(context.Background(), "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&user, &ssl); err != nil {
		t.Fatal(err)
	}
	if user != "orders_rw" {
		t.Errorf("got upstream user %q, want orders_rw", user)
	}
	if _, isTLS := conn.PgConn().Conn().(*recordingConn).Conn.(*tls.Conn); !isTLS || ssl {
		t.Errorf("got TLS to gateway %v, to target %v; want TLS to the gateway and none to the target", isTLS, ssl)
	}
	conn.Close(context.Background())
	if strings.Contains(got.String(), rwPassword) {
		t.Error("client received the target password")
	}
	stats := <-g.rec.ends
	if stats.Reason != reasonTerminate || !stats.TLS || stats.Principal != "user:alice" {
		t.Errorf("got session end %+v, want a TLS session of user:alice ended by Terminate", stats)
	}
}

func TestPsqlWithSSLModeRequire(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql is not installed (make deps)")
	}
	g := startGateway(t, gatewayOptions{})
	host, port, _ := net.SplitHostPort(g.addr)
	cmd := exec.Command(psql, "-X", "-A", "-t", "-h", host, "-p", port, "-U", "alice", "-d", "orders",
		"-c", "SELECT count(*) FROM items", "-c", "DROP TABLE items")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+goodToken, "PGSSLMODE=require")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("psql succeeded, want the DROP refused:\n%s", out)
	}
	text := string(out)
	if !strings.Contains(text, "1000") || !strings.Contains(text, "destructive DDL is not allowed") {
		t.Errorf("got psql output %q, want the count and the refusal", text)
	}
	if strings.Contains(text, rwPassword) {
		t.Error("psql output contains the target password")
	}
}

func TestAuthFailures(t *testing.T) {
	pg := needPG(t)
	counter := startCountingForwarder(t, pg.Addr())
	up := Upstream{Address: counter.addr, Database: "orders", User: "orders_rw", Password: rwPassword, TLSMode: "disable"}
	g := startGateway(t, gatewayOptions{upstream: &up})
	tests := []struct {
		name, token, db, wantCode, wantText string
	}{
		{"bad-token", "bad-token", "orders", "28P01", "invalid token"},
		{"empty-token", "", "orders", "28P01", "invalid token"},
		{"no-grant", goodToken, "payroll", "42501", `no grant for target "payroll"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := g.pgxConfig(t, tt.token, "require", nil)
			cfg.Database = tt.db
			_, err := pgx.ConnectConfig(context.Background(), cfg)
			if got := pgCode(err); got != tt.wantCode {
				t.Fatalf("got SQLSTATE %q (%v), want %s", got, err, tt.wantCode)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("got error %q, want it to mention %q", err, tt.wantText)
			}
		})
	}
	if got := counter.n.Load(); got != 0 {
		t.Fatalf("got %d upstream connections after refused logins, want 0", got)
	}
	g.connect(t, nil)
	if got := counter.n.Load(); got != 1 {
		t.Errorf("got %d upstream connections after one login, want 1", got)
	}
}

func TestPlaintext(t *testing.T) {
	tests := []struct {
		name     string
		allow    bool
		wantCode string
	}{
		{"refused", false, "28000"},
		{"allowed-on-loopback", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := startGateway(t, gatewayOptions{plaintext: tt.allow})
			conn, err := pgx.ConnectConfig(context.Background(), g.pgxConfig(t, goodToken, "disable", nil))
			if got := pgCode(err); got != tt.wantCode {
				t.Fatalf("got SQLSTATE %q (%v), want %q", got, err, tt.wantCode)
			}
			if err == nil {
				defer conn.Close(context.Background())
				var one int
				if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
					t.Errorf("got %d, %v; want 1", one, err)
				}
			} else if !strings.Contains(err.Error(), "requires TLS") {
				t.Errorf("got %q, want a message that TLS is required", err)
			}
		})
	}
}

// TestTargetLoginFailureHints: the hint says what to do about the
// target's refusal, by its SQLSTATE, not always "check the credential";
// and the observer hears of it under the session id the client is shown.
func TestTargetLoginFailureHints(t *testing.T) {
	pg := needPG(t)
	up := Upstream{Address: pg.Addr(), Database: "no_such_database", User: "orders_rw", Password: rwPassword, TLSMode: "disable"}
	g := startGateway(t, gatewayOptions{upstream: &up})
	_, err := pgx.ConnectConfig(context.Background(), g.pgxConfig(t, goodToken, "require", &syncBuffer{}))
	pe := (*pgconn.PgError)(nil)
	if !errors.As(err, &pe) || pe.Code != codeCannotConnect || !strings.Contains(pe.Hint, "database does not exist") {
		t.Fatalf("got %v, want 08001 with a hint that the target's database does not exist", err)
	}
	g.rec.mu.Lock()
	failures := g.rec.loginFailures
	g.rec.mu.Unlock()
	if len(failures) != 1 || !strings.Contains(pe.Hint, "(session "+strings.SplitN(failures[0], ":", 2)[0]+")") ||
		!strings.Contains(failures[0], "database does not exist") {
		t.Errorf("observer heard %q; want one failure under the session id of hint %q", failures, pe.Hint)
	}
}

func TestTargetLoginFailureIsGeneric(t *testing.T) {
	pg := needPG(t)
	up := Upstream{Address: pg.Addr(), Database: "orders", User: "orders_rw", Password: badUpPassword, TLSMode: "disable"}
	g := startGateway(t, gatewayOptions{upstream: &up})
	got := &syncBuffer{}
	_, err := pgx.ConnectConfig(context.Background(), g.pgxConfig(t, goodToken, "require", got))
	if code := pgCode(err); code != codeCannotConnect {
		t.Fatalf("got SQLSTATE %q (%v), want %s", code, err, codeCannotConnect)
	}
	if !strings.Contains(err.Error(), `gateway could not log in to target "orders"`) {
		t.Errorf("got %q, want the generic login failure", err)
	}
	if pe := (*pgconn.PgError)(nil); !errors.As(err, &pe) || !strings.Contains(pe.Hint, "refused the gateway's login") {
		t.Errorf("got %v, want a hint that the target refused the login", err)
	}
	for _, s := range []string{badUpPassword, "orders_rw", "password authentication"} {
		if strings.Contains(got.String(), s) || strings.Contains(err.Error(), s) {
			t.Errorf("client saw %q", s)
		}
	}
	if !strings.Contains(g.logs.String(), "target login failed") {
		t.Errorf("log lacks the login failure:\n%s", g.logs.String())
	}
}

// countingForwarder is a TCP forwarder in front of the target that counts
// connections, proving when the gateway dialed.
type countingForwarder struct {
	addr string
	n    atomic.Int64
}

func startCountingForwarder(t *testing.T, target string) *countingForwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f := &countingForwarder{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.n.Add(1)
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { pipe(u, c) }()
				pipe(c, u)
			}()
		}
	}()
	return f
}

func pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// TestDirectTLSWithPgx logs in with PostgreSQL 17's direct TLS negotiation
// (no SSLRequest; the ClientHello comes first), which pgx speaks with
// sslnegotiation=direct. Like PostgreSQL, the gateway requires the ALPN
// protocol "postgresql", and it says so inside TLS to a client without it.
func TestDirectTLSWithPgx(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	cfg, err := pgx.ParseConfig(g.dsn(goodToken, "require") + " sslnegotiation=direct")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connect with direct TLS: %v", err)
	}
	defer conn.Close(context.Background())
	if _, isTLS := conn.PgConn().Conn().(*tls.Conn); !isTLS {
		t.Fatalf("got %T, want a TLS connection", conn.PgConn().Conn())
	}
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
		t.Fatalf("query over direct TLS: got %d, %v; want 42", n, err)
	}
	conn.Close(context.Background())
	if stats := <-g.rec.ends; !stats.TLS {
		t.Errorf("got session end %+v, want a TLS session", stats)
	}

	cfg, err = pgx.ParseConfig(g.dsn(goodToken, "require") + " sslnegotiation=direct")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSConfig.NextProtos = nil
	_, err = pgx.ConnectConfig(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), `ALPN protocol "postgresql"`) {
		t.Fatalf("direct TLS without ALPN: got %v, want an error naming the missing ALPN protocol", err)
	}
}

// TestTargetDownIsNotARefusedLogin: a target that does not answer and one
// that refuses the gateway's login need different people; the hint says
// which it is.
func TestTargetDownIsNotARefusedLogin(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing listens there now
	up := Upstream{Address: down, Database: "orders", User: "orders_rw", Password: badUpPassword, TLSMode: "disable"}
	g := startGateway(t, gatewayOptions{upstream: &up})
	_, err = pgx.ConnectConfig(context.Background(), g.pgxConfig(t, goodToken, "require", nil))
	if pe := (*pgconn.PgError)(nil); !errors.As(err, &pe) || pe.Code != codeCannotConnect || !strings.Contains(pe.Hint, "did not answer") {
		t.Errorf("got %v, want 08001 with a hint that the target did not answer", err)
	}
}

// TestStartupsAreBounded: each connection that has not logged in holds
// buffers and a goroutine for up to a minute; past MaxStartups of them a
// new one is refused at once, and a logged-in session frees its place.
func TestStartupsAreBounded(t *testing.T) {
	g := startGateway(t, gatewayOptions{maxStartups: 2})
	var idle []net.Conn
	for _, ip := range []string{"127.0.0.3", "127.0.0.4"} { // one address may hold only half
		c, err := dialFrom(ip).Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	waitFor(t, "the idle connections to be accepted", func() bool { return g.srv.starting.Load() == 2 })
	if _, err := pgx.ConnectConfig(context.Background(), g.pgxConfig(t, goodToken, "require", nil)); err == nil || !strings.Contains(err.Error(), "53300") {
		t.Errorf("a third connection while two log in: %v, want FATAL 53300", err)
	}
	for _, c := range idle {
		c.Close()
	}
	waitFor(t, "the idle connections to go", func() bool { return g.srv.starting.Load() == 0 })
	// Logged-in sessions do not count, from the moment the client is
	// told it is logged in: one connection after another from one
	// address (whose share is one) all log in.
	for range 30 {
		conn, err := pgx.ConnectConfig(context.Background(), g.pgxConfig(t, goodToken, "require", nil))
		if err != nil {
			t.Fatalf("after the idle connections went: %v", err)
		}
		defer conn.Close(context.Background())
	}
}

// TestStartupsAreBoundedPerSource: connections from one address that never
// finish logging in took every login slot, and everyone else got FATAL
// 53300 for up to a minute, again and again. One address now holds at
// most half of them; another logs in meanwhile.
func TestStartupsAreBoundedPerSource(t *testing.T) {
	g := startGateway(t, gatewayOptions{maxStartups: 4})
	for range 4 {
		c, err := dialFrom("127.0.0.1").Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	// Two take slots; the two past the address's share take none.
	waitFor(t, "the idle connections to be accepted", func() bool {
		g.srv.startMu.Lock()
		defer g.srv.startMu.Unlock()
		return g.srv.startingFrom["127.0.0.1"] == 4
	})
	if n := g.srv.starting.Load(); n != 2 {
		t.Errorf("%d connections take login slots, want the address's share, 2", n)
	}
	cfg := g.pgxConfig(t, goodToken, "require", nil)
	if _, err := pgx.ConnectConfig(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "53300") || !strings.Contains(err.Error(), "from your address") {
		t.Errorf("a login from the idle connections' address: %v, want FATAL 53300 naming the address", err)
	}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialFrom("127.0.0.2").DialContext(ctx, network, addr)
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("a login from another address while the first holds its share: %v", err)
	}
	conn.Close(context.Background())
}

// dialFrom dials from ip, an address of the loopback network (Linux
// answers for all of 127.0.0.0/8).
func dialFrom(ip string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
}
