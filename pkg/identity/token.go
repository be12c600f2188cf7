package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// maxTokenSize bounds the tokens Verify looks at; real ID tokens are a few
// kilobytes.
const maxTokenSize = 16 << 10

// allowedAlgorithms are the signature algorithms a token may use: asymmetric
// ones only, so a token "signed" with alg none, or with HMAC keyed by an
// issuer's public key, never verifies.
var allowedAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.ES256, jose.ES384, jose.EdDSA,
}

// allowedAlgorithmNames is allowedAlgorithms for go-oidc's Config.
var allowedAlgorithmNames = func() []string {
	names := make([]string, len(allowedAlgorithms))
	for i, a := range allowedAlgorithms {
		names[i] = string(a)
	}
	return names
}()

// knownAlgorithms are the JOSE names a refusal may repeat; any other alg
// header is reported as "unrecognised" so a Reason never echoes arbitrary
// attacker text.
var knownAlgorithms = []string{
	"none", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA", "Ed25519", "Ed448",
}

// unverified is what Verify reads from a token before checking its
// signature: enough to pick the issuer and to explain a refusal. Nothing in
// it may be trusted until the signature has been verified.
type unverified struct {
	alg    string
	kid    string
	claims map[string]any
}

// parseUnverified splits a compact JWS and decodes its header and claims.
// The error is the refusal to return.
func parseUnverified(raw string) (*unverified, *AuthError) {
	if raw == "" {
		return nil, refuse(reasonNoToken)
	}
	if len(raw) > maxTokenSize {
		return nil, refuse(reasonMalformed)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, refuse(reasonMalformed)
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return nil, refuse(reasonMalformed)
	}
	if !slices.Contains(allowedAlgorithms, jose.SignatureAlgorithm(header.Alg)) {
		name := header.Alg
		if !slices.Contains(knownAlgorithms, name) {
			name = "unrecognised"
		}
		return nil, refuse(fmt.Sprintf("token signed with an algorithm that is not allowed (%s)", name))
	}
	var claims map[string]any
	if err := decodeSegment(parts[1], &claims); err != nil || claims == nil {
		return nil, refuse(reasonMalformed)
	}
	// A strict parse with the allow-list, the same one go-oidc does: it
	// refuses what the loose split above let through (extra header
	// fields, a bad signature encoding).
	if _, err := jose.ParseSignedCompact(raw, allowedAlgorithms); err != nil {
		return nil, refuse(reasonMalformed)
	}
	return &unverified{alg: header.Alg, kid: header.Kid, claims: claims}, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// stringClaim returns claim name when it is a string.
func stringClaim(claims map[string]any, name string) (string, bool) {
	s, ok := claims[name].(string)
	return s, ok
}

// numericDate returns claim name as a time when it is a JSON number.
func numericDate(claims map[string]any, name string) (time.Time, bool) {
	n, ok := claims[name].(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// audiences returns the aud claim, a string or a list of strings.
func audiences(claims map[string]any) []string {
	switch v := claims["aud"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
