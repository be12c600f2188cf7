package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatectl/gatectl/pkg/policy"
)

func TestDevIssuerKeySurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "dev.key")
	first, err := NewDevIssuer("https://127.0.0.1:8443/dev/", path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("key file mode: got %v, want %v", got, want)
	}
	if got, want := first.URL(), "https://127.0.0.1:8443/dev"; got != want {
		t.Errorf("URL: got %q, want %q", got, want)
	}
	raw := mint(t, first, "alice")

	second, err := NewDevIssuer("https://127.0.0.1:8443/dev", path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := second.keyID, first.keyID; got != want {
		t.Errorf("key id after restart: got %q, want %q", got, want)
	}
	pol := &policy.Policy{Issuers: []policy.Issuer{{Name: policy.DevIssuer}}}
	if _, err := NewVerifier(Options{Dev: second, Logger: quiet}).Verify(context.Background(), pol, raw); err != nil {
		t.Errorf("token minted before the restart: %v", err)
	}
}

func TestDevIssuerRSAKey(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	path := writeKey(t, key, 0o600)
	s := newIssuerServer(t)
	d, err := NewDevIssuer(s.url, path)
	if err != nil {
		t.Fatal(err)
	}
	s.serve(d)
	raw := mint(t, d, "alice")
	tok, err := jwt.ParseSigned(raw, allowedAlgorithms)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.Headers[0].Algorithm, "RS256"; got != want {
		t.Errorf("alg: got %q, want %q", got, want)
	}
	if _, err := NewVerifier(Options{HTTPClient: s.srv.Client(), Logger: quiet}).Verify(context.Background(), ciPolicy(s.url), raw); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func writeKey(t *testing.T, key any, mode os.FileMode) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dev.key")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestNewDevIssuerRefuses(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	good, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(t.TempDir(), "dev.key")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		url     string
		keyPath string
		want    string
	}{
		{name: "http-url", url: "http://127.0.0.1:8443/dev", keyPath: filepath.Join(t.TempDir(), "k"), want: "must be an https URL"},
		{name: "relative-url", url: "/dev", keyPath: filepath.Join(t.TempDir(), "k"), want: "must be an https URL"},
		{name: "no-key-path", url: "https://127.0.0.1:8443/dev", want: "needs a key path"},
		{name: "key-readable-by-others", url: "https://127.0.0.1:8443/dev", keyPath: writeKey(t, good, 0o644), want: "run chmod 600"},
		{name: "small-rsa-key", url: "https://127.0.0.1:8443/dev", keyPath: writeKey(t, small, 0o600), want: "at least 2048 bits"},
		{name: "not-pem", url: "https://127.0.0.1:8443/dev", keyPath: garbage, want: "delete it to have a new one created"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewDevIssuer(tt.url, tt.keyPath)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestMintRefuses(t *testing.T) {
	d, err := NewDevIssuer("https://127.0.0.1:8443/dev", filepath.Join(t.TempDir(), "dev.key"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		sub    string
		groups []string
		ttl    time.Duration
	}{
		{name: "empty-subject", ttl: time.Hour},
		{name: "zero-ttl", sub: "alice"},
		{name: "ttl-too-long", sub: "alice", ttl: MaxDevTTL + time.Second},
		{name: "empty-group", sub: "alice", groups: []string{"dba", ""}, ttl: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if raw, err := d.Mint(tt.sub, tt.groups, tt.ttl); err == nil {
				t.Errorf("Mint = %s, want an error", Fingerprint(raw))
			}
		})
	}
}

func TestMintClaims(t *testing.T) {
	d, err := NewDevIssuer("https://127.0.0.1:8443/dev", filepath.Join(t.TempDir(), "dev.key"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := d.Mint("alice", []string{"dba"}, 90*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseSigned(raw, allowedAlgorithms)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.Headers[0].KeyID, d.keyID; got != want || got == "" {
		t.Errorf("kid: got %q, want %q", got, want)
	}
	var c devClaims
	if err := tok.Claims(d.key.Public(), &c); err != nil {
		t.Fatal(err)
	}
	if c.Issuer != d.URL() || c.Subject != "alice" || !c.Audience.Contains(DevAudience) || strings.Join(c.Groups, ",") != "dba" {
		t.Errorf("claims: got %+v", c)
	}
	if c.IssuedAt == nil || c.NotBefore == nil || c.Expiry == nil {
		t.Fatalf("claims: iat, nbf and exp must be set, got %+v", c)
	}
	if got, want := c.Expiry.Time().Sub(c.IssuedAt.Time()), 90*time.Minute; got != want {
		t.Errorf("lifetime: got %v, want %v", got, want)
	}
}

func TestDevIssuerHandler(t *testing.T) {
	s := newIssuerServer(t)
	client := s.srv.Client()
	v := NewVerifier(Options{HTTPClient: client, Logger: quiet})

	t.Run("discovery", func(t *testing.T) {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
			Token   string `json:"token_endpoint"`
		}
		getJSON(t, client, s.url+"/.well-known/openid-configuration", &doc)
		if doc.Issuer != s.url || doc.JWKSURI != s.url+"/keys" || doc.Token != s.url+"/token" {
			t.Errorf("discovery: got %+v, want issuer %s with /keys and /token", doc, s.url)
		}
	})
	t.Run("keys-are-public", func(t *testing.T) {
		resp, err := client.Get(s.url + "/keys")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
			t.Fatal(err)
		}
		if len(set.Keys) != 1 {
			t.Fatalf("keys: got %d, want 1", len(set.Keys))
		}
		if _, private := set.Keys[0]["d"]; private {
			t.Errorf("the key set publishes the private key")
		}
	})

	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		want        policy.Principal
		wantTTL     time.Duration
	}{
		{name: "form", contentType: "application/x-www-form-urlencoded",
			body:       url.Values{"sub": {"alice"}, "group": {"dba"}, "groups": {"eng"}, "ttl": {"30m"}}.Encode(),
			wantStatus: http.StatusOK, wantTTL: 30 * time.Minute,
			want: policy.Principal{Kind: policy.KindUser, Name: "alice", Subject: "alice", Issuer: "ci", Groups: []string{"dba", "eng"}}},
		{name: "json", contentType: "application/json",
			body:       `{"sub": "bob", "groups": ["ops"], "ttl": 120}`,
			wantStatus: http.StatusOK, wantTTL: 2 * time.Minute,
			want: policy.Principal{Kind: policy.KindUser, Name: "bob", Subject: "bob", Issuer: "ci", Groups: []string{"ops"}}},
		{name: "json-default-ttl", contentType: "application/json; charset=utf-8",
			body:       `{"sub": "carol"}`,
			wantStatus: http.StatusOK, wantTTL: defaultDevTTL,
			want: policy.Principal{Kind: policy.KindUser, Name: "carol", Subject: "carol", Issuer: "ci", Groups: []string{}}},
		{name: "no-subject", contentType: "application/json", body: `{"groups": ["dba"]}`, wantStatus: http.StatusBadRequest},
		{name: "unknown-field", contentType: "application/json", body: `{"sub": "a", "admin": true}`, wantStatus: http.StatusBadRequest},
		{name: "bad-ttl", contentType: "application/x-www-form-urlencoded", body: "sub=a&ttl=forever", wantStatus: http.StatusBadRequest},
		{name: "ttl-too-long", contentType: "application/json", body: `{"sub": "a", "ttl": "48h"}`, wantStatus: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.Post(s.url+"/token", tt.contentType, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := resp.StatusCode; got != tt.wantStatus {
				t.Fatalf("status: got %d, want %d", got, tt.wantStatus)
			}
			if tt.wantStatus != http.StatusOK {
				return
			}
			var out struct {
				AccessToken string `json:"access_token"`
				IDToken     string `json:"id_token"`
				TokenType   string `json:"token_type"`
				ExpiresIn   int64  `json:"expires_in"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
			if got, want := time.Duration(out.ExpiresIn)*time.Second, tt.wantTTL; got != want {
				t.Errorf("expires_in: got %v, want %v", got, want)
			}
			if out.TokenType != "Bearer" || out.IDToken != out.AccessToken {
				t.Errorf("token_type %q, id_token equal to access_token %v: want Bearer, true", out.TokenType, out.IDToken == out.AccessToken)
			}
			got, err := v.Verify(context.Background(), ciPolicy(s.url), out.AccessToken)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !samePrincipal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}

	t.Run("token-needs-post", func(t *testing.T) {
		resp, err := client.Get(s.url + "/token?sub=alice")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, want := resp.StatusCode, http.StatusMethodNotAllowed; got != want {
			t.Errorf("status: got %d, want %d", got, want)
		}
	})
}

func getJSON(t *testing.T, client *http.Client, u string, v any) {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
