package postgres

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/pgserver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Roles of the auth and TLS targets, one per pg_hba.conf method, and their
// passwords; the tests grep for the passwords in everything a client
// received, everything logged and everything sent to a plaintext target.
const (
	scramPassword = "scram-S3cret-Hv93"
	md5Password   = "md5-S3cret-Jw64"
	trustPassword = "trust-S3cret-Pc58" // configured, never asked for
	clearPassword = "clear-S3cret-Nb17"
)

var authPasswords = map[string]string{
	"scram_user": scramPassword,
	"md5_user":   md5Password,
	"trust_user": trustPassword,
	"clear_user": clearPassword,
}

// Authentication request codes of the target's first AuthenticationXxx
// message, telling which pg_hba.conf method it applied.
const (
	authOK        = 0
	authCleartext = 3
	authMD5       = 5
	authSASL      = 10
)

// startAuthPG starts a PostgreSQL for one test with a role per
// authentication method: scram_user (scram-sha-256, the default), md5_user
// (an md5-stored password and an md5 line), trust_user (a trust line) and
// clear_user (a password line: the cleartext password). hostType is "host"
// or "hostssl"; with ssl, TCP logins without TLS are rejected outright.
func startAuthPG(t *testing.T, ssl bool) *pgserver.Server {
	t.Helper()
	needPG(t)
	hostType := "host"
	var hba []string
	if ssl {
		hostType = "hostssl"
		hba = append(hba, "hostnossl all all 127.0.0.1/32 reject")
	}
	hba = append(hba,
		hostType+" all md5_user 127.0.0.1/32 md5",
		hostType+" all trust_user 127.0.0.1/32 trust",
		hostType+" all clear_user 127.0.0.1/32 password",
		hostType+" all all 127.0.0.1/32 scram-sha-256",
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := pgserver.Start(ctx, pgserver.Options{SSL: ssl, HBA: hba})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Error(err)
		}
	})
	roles := `
CREATE ROLE scram_user LOGIN PASSWORD '` + scramPassword + `';
SET password_encryption = 'md5';
CREATE ROLE md5_user LOGIN PASSWORD '` + md5Password + `';
RESET password_encryption;
CREATE ROLE trust_user LOGIN PASSWORD '` + trustPassword + `';
CREATE ROLE clear_user LOGIN PASSWORD '` + clearPassword + `';
`
	if out, err := pg.Psql(ctx, "postgres", roles); err != nil {
		t.Fatal(err, out)
	}
	return pg
}

// authUpstream is the Upstream for role on addr.
func authUpstream(addr, role, tlsMode string) Upstream {
	return Upstream{Address: addr, Database: "postgres", User: role, Password: authPasswords[role], TLSMode: tlsMode}
}

// loginResult is what a client saw logging in through a gateway to up, and
// what the gateway logged.
type loginResult struct {
	err     error
	role    string // current_user on the target, on success
	ssl     bool   // whether the target saw TLS, on success
	client  string // every byte the client received
	logs    string
	upUser  string
	upToken string
}

// loginThrough starts a gateway planning sessions to up, logs in through it
// with pgx and asks the target who and how it is.
func loginThrough(t *testing.T, up Upstream) loginResult {
	t.Helper()
	var g *gateway
	// Registered first so it runs last, after the gateway has shut down and
	// logged the session's end.
	t.Cleanup(func() {
		if g != nil && strings.Contains(g.logs.String(), up.Password) {
			t.Errorf("gateway log contains the target password of %s", up.User)
		}
	})
	g = startGateway(t, gatewayOptions{upstream: &up})
	got := &syncBuffer{}
	r := loginResult{upUser: up.User, upToken: up.Password}
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, g.pgxConfig(t, goodToken, "require", got))
	if err == nil {
		err = conn.QueryRow(ctx, "SELECT current_user::text, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&r.role, &r.ssl)
		conn.Close(ctx)
	}
	r.err = err
	r.client = got.String()
	// A failed login is logged before the client is told; a successful
	// session's log lines are not needed.
	r.logs = g.logs.String()
	return r
}

// checkNoSecret fails t if the upstream password reached the client or the
// log.
func (r loginResult) checkNoSecret(t *testing.T) {
	t.Helper()
	errText := ""
	if r.err != nil {
		errText = r.err.Error()
	}
	for where, text := range map[string]string{"client bytes": r.client, "client error": errText, "gateway log": r.logs} {
		if strings.Contains(text, r.upToken) {
			t.Errorf("%s contain the target password of %s", where, r.upUser)
		}
	}
}

// checkGenericFailure fails t unless the login failed with the gateway's
// generic message, revealing nothing about the target's reason, and the
// operator's log holds the reason (wantLog).
func (r loginResult) checkGenericFailure(t *testing.T, wantLog string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("login through the gateway as %s: got success (role %q, ssl %v), want a failure", r.upUser, r.role, r.ssl)
	}
	if got, want := pgCode(r.err), codeCannotConnect; got != want {
		t.Errorf("SQLSTATE: got %q (%v), want %q", got, r.err, want)
	}
	if got, want := r.err.Error(), `gateway could not log in to target "orders"`; !strings.Contains(got, want) {
		t.Errorf("client error: got %q, want it to contain %q", got, want)
	}
	for _, leak := range []string{r.upUser, "x509", "certificate", "pg_hba", "TLS", "require_auth", "authentication"} {
		if strings.Contains(r.client, leak) || strings.Contains(r.err.Error(), leak) {
			t.Errorf("client saw %q in %q", leak, r.err)
		}
	}
	// The target (or the gateway's configuration) refused: not down, so
	// trying again later does not help.
	if pe := (*pgconn.PgError)(nil); errors.As(r.err, &pe) && (strings.Contains(pe.Hint, "did not answer") || strings.Contains(pe.Hint, "try again later")) {
		t.Errorf("hint %q, want one that does not blame an unreachable target", pe.Hint)
	}
	if !strings.Contains(r.logs, "target login failed") || !strings.Contains(r.logs, wantLog) {
		t.Errorf("gateway log: got %s, want the login failure with %q", r.logs, wantLog)
	}
}

// TestUpstreamTLS logs in through the gateway to a target that accepts TCP
// logins over TLS only, in each upstream TLS mode.
func TestUpstreamTLS(t *testing.T) {
	pg := startAuthPG(t, true)
	_, freshCA := testCert(t)
	tests := []struct {
		name    string
		up      Upstream
		wantErr string // the reason in the gateway log; "" for success
	}{
		{"require", authUpstream(pg.Addr(), "scram_user", "require"), ""},
		{"verify-full", withRoots(authUpstream(pg.Addr(), "scram_user", "verify-full"), pg), ""},
		{"verify-full-md5", withRoots(authUpstream(pg.Addr(), "md5_user", "verify-full"), pg), ""},
		{"verify-full-trust", withRoots(authUpstream(pg.Addr(), "trust_user", "verify-full"), pg), ""},
		{"cleartext-password-over-verify-full-allowed", allowCleartext(withRoots(authUpstream(pg.Addr(), "clear_user", "verify-full"), pg)), ""},
		// The policy chooses the address; a server there must not get the
		// password in clear unless gateway.toml allows it, and nobody may
		// over TLS that is not verified.
		{"cleartext-password-over-require-allowed-refused", allowCleartext(authUpstream(pg.Addr(), "clear_user", "require")), "only over verified TLS"},
		{"cleartext-password-over-require-refused", authUpstream(pg.Addr(), "clear_user", "require"), "allow_cleartext_password = true"},
		{"cleartext-password-over-verify-full-refused", withRoots(authUpstream(pg.Addr(), "clear_user", "verify-full"), pg), "allow_cleartext_password = true"},
		{"verify-full-wrong-ca", withPool(authUpstream(pg.Addr(), "scram_user", "verify-full"), freshCA), "certificate signed by unknown authority"},
		{"verify-full-system-roots", authUpstream(pg.Addr(), "scram_user", "verify-full"), "certificate signed by unknown authority"},
		{"disable-to-hostssl-only", authUpstream(pg.Addr(), "scram_user", "disable"), "no encryption"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := loginThrough(t, tt.up)
			r.checkNoSecret(t)
			if tt.wantErr != "" {
				r.checkGenericFailure(t, tt.wantErr)
				return
			}
			if r.err != nil {
				t.Fatalf("login through the gateway: %v\ngateway log: %s", r.err, r.logs)
			}
			if r.role != tt.up.User || !r.ssl {
				t.Errorf("target saw role %q, ssl %v; want %q over TLS", r.role, r.ssl, tt.up.User)
			}
		})
	}
}

// TestUpstreamAuthMethods logs in through the gateway to a plaintext target
// with each pg_hba.conf method, watching the wire between gateway and
// target: the target's first authentication request proves which method ran,
// and the password never crosses that wire in the clear. A cleartext
// password request over a plaintext connection is refused (fail closed).
func TestUpstreamAuthMethods(t *testing.T) {
	pg := startAuthPG(t, false)
	tests := []struct {
		name     string
		role     string
		tlsMode  string
		wantAuth int    // the target's first authentication request; -1: none
		wantErr  string // the reason in the gateway log; "" for success
	}{
		{"scram", "scram_user", "disable", authSASL, ""},
		{"md5", "md5_user", "disable", authMD5, ""},
		{"trust", "trust_user", "disable", authOK, ""},
		{"cleartext-password-refused", "clear_user", "disable", authCleartext, "never sends a password unencrypted"},
		{"require-to-server-without-tls", "scram_user", "require", -1, "server refused TLS"},
		{"verify-full-to-server-without-tls", "clear_user", "verify-full", -1, "server refused TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := startTap(t, pg.Addr())
			r := loginThrough(t, authUpstream(tp.addr, tt.role, tt.tlsMode))
			r.checkNoSecret(t)
			if tt.wantErr != "" {
				r.checkGenericFailure(t, tt.wantErr)
			} else if r.err != nil {
				t.Fatalf("login through the gateway: %v\ngateway log: %s", r.err, r.logs)
			} else if r.role != tt.role || r.ssl {
				t.Errorf("target saw role %q, ssl %v; want %q without TLS", r.role, r.ssl, tt.role)
			}
			if got := firstAuthRequest(tp.fromTarget.String()); got != tt.wantAuth {
				t.Errorf("target's first authentication request: got %d, want %d", got, tt.wantAuth)
			}
			if strings.Contains(tp.toTarget.String(), authPasswords[tt.role]) {
				t.Errorf("the gateway sent the password of %s to the target in the clear", tt.role)
			}
		})
	}
}

// TestUnknownUpstreamTLSModeNotDialed checks that a TLS mode the gateway
// does not know is refused before anything is dialed: it must not fall back
// to plaintext or to libpq's "prefer".
func TestUnknownUpstreamTLSModeNotDialed(t *testing.T) {
	pg := needPG(t)
	tests := []struct{ name, mode string }{
		{"empty", ""},
		{"prefer", "prefer"},
		{"allow", "allow"},
		{"verify-ca", "verify-ca"},
		{"upper-case", "VERIFY-FULL"},
		{"leading-space", " require"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := startTap(t, pg.Addr())
			up := Upstream{Address: tp.addr, Database: "orders", User: "orders_rw", Password: rwPassword, TLSMode: tt.mode}
			r := loginThrough(t, up)
			r.checkNoSecret(t)
			r.checkGenericFailure(t, "is not one of disable, require, verify-full")
			if got := tp.conns.Load(); got != 0 {
				t.Errorf("connections to the target: got %d, want 0", got)
			}
		})
	}
}

// TestUpstreamConfigIgnoresEnvironment checks that libpq environment
// variables of the gateway's process cannot loosen the upstream connection:
// pgconn.ParseConfig reads them, upstreamConfig must override them.
func TestUpstreamConfigIgnoresEnvironment(t *testing.T) {
	t.Setenv("PGREQUIREAUTH", "password")
	t.Setenv("PGCHANNELBINDING", "disable")
	t.Setenv("PGSSLMODE", "disable")
	t.Setenv("PGSSLCERTMODE", "require")
	t.Setenv("PGOPTIONS", "-c role=postgres")
	tests := []struct {
		mode            string
		allowCleartext  bool
		wantTLS         bool
		wantRequireAuth string
	}{
		{"disable", false, false, "!password"},
		{"disable", true, false, "!password"},
		{"require", false, true, "!password"},
		{"require", true, true, "!password"},
		{"verify-full", false, true, "!password"},
		{"verify-full", true, true, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s-cleartext-%t", tt.mode, tt.allowCleartext), func(t *testing.T) {
			cfg, err := upstreamConfig(Upstream{Address: "127.0.0.1:5432", User: "u", Password: "p", TLSMode: tt.mode, AllowCleartextPassword: tt.allowCleartext}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.TLSConfig != nil; got != tt.wantTLS {
				t.Errorf("TLS: got %v, want %v", got, tt.wantTLS)
			}
			if got, want := cfg.RequireAuth, tt.wantRequireAuth; got != want {
				t.Errorf("RequireAuth: got %q, want %q", got, want)
			}
			if got, want := cfg.ChannelBinding, "prefer"; got != want {
				t.Errorf("ChannelBinding: got %q, want %q", got, want)
			}
			if got, want := cfg.SSLCertMode, "allow"; got != want {
				t.Errorf("SSLCertMode: got %q, want %q", got, want)
			}
			// Only the pinned parameters: PGOPTIONS and the like add none.
			if got, want := cfg.RuntimeParams, pinnedParams; !maps.Equal(got, want) {
				t.Errorf("RuntimeParams: got %v, want %v", got, want)
			}
		})
	}
}

func allowCleartext(u Upstream) Upstream {
	u.AllowCleartextPassword = true
	return u
}

func withRoots(u Upstream, pg *pgserver.Server) Upstream {
	u.RootCAs = pg.CertPool()
	return u
}

func withPool(u Upstream, pool *x509.CertPool) Upstream {
	u.RootCAs = pool
	return u
}

// firstAuthRequest returns the code of the first message of a target's
// login answer if it is an AuthenticationXxx message, or -1.
func firstAuthRequest(fromTarget string) int {
	if len(fromTarget) < 9 || fromTarget[0] != 'R' {
		return -1
	}
	return int(binary.BigEndian.Uint32([]byte(fromTarget[5:9])))
}

// tap is a TCP forwarder in front of a target that counts connections and
// records the bytes each way. A byte is recorded before it is forwarded, so
// once the gateway has answered its client, the tap holds all it saw.
type tap struct {
	addr                 string
	conns                atomic.Int64
	toTarget, fromTarget syncBuffer
}

func startTap(t *testing.T, target string) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	tp := &tap{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tp.conns.Add(1)
			go tp.forward(c, target)
		}
	}()
	return tp
}

func (tp *tap) forward(c net.Conn, target string) {
	defer c.Close()
	u, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(c, io.TeeReader(u, &tp.fromTarget))
		c.Close()
	}()
	io.Copy(u, io.TeeReader(c, &tp.toTarget))
	u.Close()
	<-done
}
