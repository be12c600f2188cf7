package gateway_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestUnauthenticatedRefusalsAreCountedPastTheirRate floods both listeners
// with bad tokens from addresses of their own. Past the per-source burst
// the refusals are counted rather than audited one by one, so the flood
// cannot fill the audit log's disk; yet every refusal is accounted for,
// either as an event, in the unrecorded_before of the source's next event,
// or in a count event of its own.
func TestUnauthenticatedRefusalsAreCountedPastTheirRate(t *testing.T) {
	t.Parallel()
	const n = 60
	const apiSource, pgSource = "127.0.0.77", "127.0.0.78"

	tr := apiClient.Transport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(apiSource)}}).DialContext
	client := &http.Client{Timeout: 30 * time.Second, Transport: tr}
	for i := range n {
		req, err := http.NewRequest(http.MethodGet, env.Ready.API+"/v1/whoami", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer not.a.token")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("request %d: status %d, want 401", i+1, resp.StatusCode)
		}
	}

	cfg := pgConfig(t, bob).Config
	cfg.Password = "not.a.token"
	cfg.DialFunc = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(pgSource)}, Timeout: 20 * time.Second}).DialContext
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		conn, err := pgconn.ConnectConfig(ctx, &cfg)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			t.Fatalf("connection %d with a bad token was accepted", i+1)
		}
		if pe := pgErrorOf(t, err); pe.Code != "28P01" {
			t.Fatalf("connection %d: SQLSTATE %s (%s), want 28P01", i+1, pe.Code, pe.Message)
		}
	}

	// The counts are written every second in these tests (TestMain).
	for _, src := range []string{apiSource, pgSource} {
		var one, carried, counted int
		for deadline := time.Now().Add(30 * time.Second); ; {
			one, carried, counted = 0, 0, 0
			for _, e := range auditEvents(t, url.Values{"action": {"auth.refuse"}}) {
				host, _, _ := net.SplitHostPort(e.Detail["remote"])
				switch {
				case host == src:
					one++
					carried += atoi(t, e.Detail["unrecorded_before"])
				case e.Detail["remote"] == src:
					counted += atoi(t, e.Detail["unrecorded"])
					if !strings.Contains(e.Reason, "counted, not recorded one by one") {
						t.Errorf("count event's reason = %q", e.Reason)
					}
				}
			}
			if one+carried+counted >= n || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if one+carried+counted != n {
			t.Errorf("%s: %d refusals audited one by one, %d carried by later events, %d counted: want %d in all", src, one, carried, counted, n)
		}
		if one >= n {
			t.Errorf("%s: all %d refusals were audited one by one; the rate limit did not apply", src, one)
		}
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a count: %q", s)
	}
	return n
}

// TestRefusedClientsDatabaseNameIsBounded: the database name of a client
// refused before anything was verified is the client's to choose; its event
// keeps a bounded part of it.
func TestRefusedClientsDatabaseNameIsBounded(t *testing.T) {
	t.Parallel()
	const source = "127.0.0.79"
	cfg := pgConfig(t, bob).Config
	cfg.Database = strings.Repeat("orders_", 900)
	cfg.Password = "not.a.token"
	cfg.DialFunc = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 20 * time.Second}).DialContext
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if conn, err := pgconn.ConnectConfig(ctx, &cfg); err == nil {
		conn.Close(context.Background())
		t.Fatal("a bad token was accepted")
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		for _, e := range auditEvents(t, url.Values{"action": {"auth.refuse"}}) {
			if host, _, _ := net.SplitHostPort(e.Detail["remote"]); host == source {
				if len(e.Target) > 200 || !strings.HasPrefix(e.Target, "orders_orders_") {
					t.Errorf("event target is %d bytes (%.40q…), want a bounded prefix of the name", len(e.Target), e.Target)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no auth.refuse event from " + source)
		}
	}
}

// TestAPIClosesIdleConnections: a connection that made one request and
// then says nothing is closed by the gateway (IdleTimeout, 2 s in these
// tests), so nobody can hold API connections open for ever.
func TestAPIClosesIdleConnections(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(env.Ready.API)
	if err != nil {
		t.Fatal(err)
	}
	cfg := apiClient.Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	conn, err := tls.Dial("tcp", u.Host, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start := time.Now()
	conn.SetReadDeadline(start.Add(15 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the gateway sent more after the response")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the idle connection was still open after %s", time.Since(start).Round(time.Second))
	}
}

// TestAcceptedLoginNamesItsIssuer: a user name means one person only with
// the issuer that vouched for it, so auth.accept events name the issuer, on
// both listeners.
func TestAcceptedLoginNamesItsIssuer(t *testing.T) {
	connect(t, pgConfig(t, etl)).Close(context.Background())
	apiGet(t, "/v1/whoami")
	vias := map[string]bool{}
	for _, e := range auditEvents(t, url.Values{"action": {"auth.accept"}}) {
		if e.Principal == "service:etl" || e.Principal == "user:sam" {
			if e.Detail["issuer"] != "dev" {
				t.Errorf("auth.accept of %s over %s: issuer %q, want dev", e.Principal, e.Detail["via"], e.Detail["issuer"])
			}
			vias[e.Detail["via"]] = true
		}
	}
	if !vias["postgres"] || !vias["api"] {
		t.Errorf("auth.accept events seen over %v, want postgres and api", vias)
	}
}
