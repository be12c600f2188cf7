package gateway_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestSessionEndsWhenTokenExpires: a token proves who the caller is until
// it expires, so a session it opened runs no statement after that, on the
// event loop (plaintext) and on goroutines (TLS) alike. The client gets
// FATAL 28000 saying to reconnect with a fresh token.
func TestSessionEndsWhenTokenExpires(t *testing.T) {
	const ttl = 3 * time.Second
	body, _ := json.Marshal(map[string]any{"sub": alice.sub, "groups": alice.groups, "ttl": ttl.String()})
	resp, err := apiClient.Post(env.Ready.API+"/dev/token", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil || out.AccessToken == "" {
		t.Fatalf("mint a %s token: %v", ttl, err)
	}
	expires := time.Now().Add(ttl)
	var conns []*pgx.Conn
	for _, sslmode := range []string{"disable", "verify-full"} {
		cfg := pgConfigMode(t, alice, sslmode)
		cfg.Password = out.AccessToken
		conn := connect(t, cfg)
		if _, err := conn.Exec(testCtx(t), "SELECT 1"); err != nil {
			t.Fatalf("sslmode=%s: a statement before the token expired: %v", sslmode, err)
		}
		conns = append(conns, conn)
	}
	time.Sleep(time.Until(expires) + 500*time.Millisecond)
	for i, conn := range conns {
		_, err := conn.Exec(testCtx(t), "SELECT 1")
		pe := pgErrorOf(t, err)
		if pe.Code != "28000" || pe.Severity != "FATAL" || !strings.Contains(pe.Message, "token expired") {
			t.Errorf("conn %d: got %s %s %q, want FATAL 28000 saying the token expired", i, pe.Severity, pe.Code, pe.Message)
		}
		if !conn.IsClosed() {
			t.Errorf("conn %d is still open after its token expired", i)
		}
	}
	// session.end says why, apart from other refusals.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ends := 0
		for _, e := range auditEvents(t, url.Values{"action": {"session.end"}, "principal": {alice.principal}}) {
			if e.Reason == "token-expired" {
				ends++
			}
		}
		if ends >= len(conns) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d session.end events say token-expired, want the %d expired sessions", ends, len(conns))
		}
	}
}
