package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"
)

// defaultDevTTL is the lifetime of a dev token when the request names none.
const defaultDevTTL = time.Hour

// Handler serves the issuer's endpoints relative to its URL's path; the
// gateway mounts it there with http.StripPrefix:
//
//	GET  /.well-known/openid-configuration   discovery document
//	GET  /keys                               JSON Web Key Set
//	POST /token                              mint a token
//
// /token takes a form (sub, group or groups repeated, ttl) or a JSON object
// {"sub": "...", "groups": ["..."], "ttl": "1h" | seconds} and answers
// {"access_token", "id_token", "token_type", "expires_in"}; both tokens are
// the same JWT. It asks for no credentials: the dev issuer mints any
// identity, which is why dev mode listens on loopback only.
func (d *DevIssuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", d.serveDiscovery)
	mux.HandleFunc("GET /keys", d.serveKeys)
	mux.HandleFunc("POST /token", d.serveToken)
	return mux
}

func (d *DevIssuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                d.url,
		"jwks_uri":                              d.url + "/keys",
		"token_endpoint":                        d.url + "/token",
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{string(d.alg)},
		"grant_types_supported":                 []string{"client_credentials"},
		"claims_supported":                      []string{"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "groups"},
	})
}

func (d *DevIssuer) serveKeys(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, d.publicKeys())
}

// tokenRequest is the body of POST /token.
type tokenRequest struct {
	Sub    string          `json:"sub"`
	Groups []string        `json:"groups"`
	TTL    json.RawMessage `json:"ttl"`
}

func (d *DevIssuer) serveToken(w http.ResponseWriter, r *http.Request) {
	sub, groups, ttl, err := parseTokenRequest(w, r)
	if err != nil {
		writeOAuthError(w, err.Error())
		return
	}
	raw, err := d.Mint(sub, groups, ttl)
	if err != nil {
		writeOAuthError(w, err.Error())
		return
	}
	slog.Info("dev issuer minted a token", "sub", sub, "groups", groups, "ttl", ttl, "token", Fingerprint(raw))
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": raw,
		"id_token":     raw,
		"token_type":   "Bearer",
		"expires_in":   int64(ttl / time.Second),
	})
}

// parseTokenRequest reads a form or JSON token request.
func parseTokenRequest(w http.ResponseWriter, r *http.Request) (sub string, groups []string, ttl time.Duration, err error) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	ttl = defaultDevTTL
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "application/json" {
		var req tokenRequest
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return "", nil, 0, fmt.Errorf("decode token request: %w", err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return "", nil, 0, errors.New("decode token request: trailing data after the JSON object")
		}
		if len(req.TTL) > 0 {
			if ttl, err = parseTTL(req.TTL); err != nil {
				return "", nil, 0, err
			}
		}
		return req.Sub, req.Groups, ttl, nil
	}
	if err := r.ParseForm(); err != nil {
		return "", nil, 0, fmt.Errorf("decode token request: %w", err)
	}
	groups = append(r.PostForm["group"], r.PostForm["groups"]...)
	if s := r.PostForm.Get("ttl"); s != "" {
		if ttl, err = parseTTLString(s); err != nil {
			return "", nil, 0, err
		}
	}
	return r.PostForm.Get("sub"), groups, ttl, nil
}

// parseTTL accepts a JSON duration string ("90m") or a number of seconds.
func parseTTL(raw json.RawMessage) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return parseTTLString(s)
	}
	var secs int64
	if err := json.Unmarshal(raw, &secs); err != nil || secs <= 0 || secs > int64(MaxDevTTL/time.Second) {
		return 0, fmt.Errorf("ttl must be a duration such as \"1h\" or a number of seconds up to %d", int64(MaxDevTTL/time.Second))
	}
	return time.Duration(secs) * time.Second, nil
}

func parseTTLString(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil && secs > 0 && secs <= int64(MaxDevTTL/time.Second) {
		return time.Duration(secs) * time.Second, nil
	}
	return 0, fmt.Errorf("ttl %q must be a duration such as \"1h\" or a number of seconds", printable(s))
}

func writeOAuthError(w http.ResponseWriter, description string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{
		"error":             "invalid_request",
		"error_description": description,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
