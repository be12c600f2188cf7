package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestVerifyEdDSAIssuer runs a small issuer of its own: discovery plus a JWKS
// holding an Ed25519 key, next to a symmetric key that must never be used.
func TestVerifyEdDSAIssuer(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var failKeys atomic.Bool
	var issuer string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			writeJSON(w, http.StatusOK, map[string]string{"issuer": issuer, "jwks_uri": issuer + "/jwks"})
		case "/jwks":
			if failKeys.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
				{Key: pub, KeyID: "ed", Algorithm: "EdDSA", Use: "sig"},
				{Key: []byte(strings.Repeat("k", 32)), KeyID: "hmac", Algorithm: "HS256"},
			}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	issuer = srv.URL

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: "ed"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, err := jwt.Signed(signer).Claims(claimsAt(issuer, "alice", "gatectl", now, now.Add(time.Hour))).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	v := NewVerifier(Options{HTTPClient: srv.Client(), Now: clk.Now, Logger: quiet})
	got, err := v.Verify(context.Background(), ciPolicy(issuer), raw)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.Name != "alice" {
		t.Errorf("principal: got %q, want %q", got.Name, "alice")
	}

	// With the key set endpoint down, a new key id cannot be verified, but
	// the cached key still verifies.
	failKeys.Store(true)
	clk.Advance(minRefetchInterval)
	unknown := replaceKid(t, raw, "rotated")
	_, err = v.Verify(context.Background(), ciPolicy(issuer), unknown)
	mustAuthError(t, err, "signing keys of issuer "+issuer+" could not be fetched; try again later", unknown)
	if _, err := v.Verify(context.Background(), ciPolicy(issuer), raw); err != nil {
		t.Errorf("Verify with the cached key: %v", err)
	}
}

// replaceKid rewrites the kid header of a compact JWS (which breaks its
// signature, which is beside the point: the key lookup comes first).
func replaceKid(t *testing.T, raw, kid string) string {
	t.Helper()
	head, rest, _ := cutDot(raw)
	var header map[string]any
	if err := decodeSegment(head, &header); err != nil {
		t.Fatal(err)
	}
	header["kid"] = kid
	return segment(t, header) + "." + rest
}

func TestParseJWKS(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: "sig", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: "enc", Use: "enc"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		body    string
		wantIDs string
		wantErr bool
	}{
		{name: "signature-key", body: `{"keys":[` + string(sig) + `]}`, wantIDs: "sig"},
		{name: "skips-encryption-key", body: `{"keys":[` + string(enc) + `,` + string(sig) + `]}`, wantIDs: "sig"},
		{name: "skips-symmetric-key", body: `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"},` + string(sig) + `]}`, wantIDs: "sig"},
		{name: "skips-unknown-type", body: `{"keys":[{"kty":"XYZ","kid":"x"},` + string(sig) + `]}`, wantIDs: "sig"},
		{name: "only-symmetric", body: `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`, wantErr: true},
		{name: "empty", body: `{"keys":[]}`, wantErr: true},
		{name: "not-json", body: `<html>`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := parseJWKS([]byte(tt.body))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %d keys, want an error", len(keys))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, k := range keys {
				ids = append(ids, k.KeyID)
			}
			if got := strings.Join(ids, ","); got != tt.wantIDs {
				t.Errorf("got %q, want %q", got, tt.wantIDs)
			}
		})
	}
}
