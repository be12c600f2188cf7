package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// minRefetchInterval is the least time between two JWKS fetches of one
// issuer. A token with an unknown key id makes the key set refetch, so
// without it anyone could make the gateway hammer the issuer.
const minRefetchInterval = 10 * time.Second

// maxKeyAge is how long fetched keys are used before they are fetched
// again. An issuer retires a key by leaving it out of its set; without a
// refetch on age, a retired key would verify tokens for as long as the
// gateway runs.
const maxKeyAge = time.Hour

// maxJWKSSize bounds a JWKS document.
const maxJWKSSize = 1 << 20

var (
	errUnknownKey   = errors.New("unknown signing key")
	errBadSignature = errors.New("signature does not verify")
)

// keySet is an issuer's signing keys, cached and refetched when a token
// names a key id the cache does not hold, which is how issuers rotate keys.
// It implements go-oidc's KeySet. It only ever verifies with public
// asymmetric keys.
type keySet struct {
	issuer string // for logs
	fetch  func(ctx context.Context) ([]jose.JSONWebKey, error)
	now    func() time.Time
	log    *slog.Logger

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	fetched   bool      // keys holds the result of a successful fetch
	fetchedAt time.Time // when that fetch ended
	lastAt    time.Time // when the last fetch ended, successful or not
	lastErr   error     // the last fetch's error
	flight    singleflight.Group
}

// verifyReport carries the precise reason of a signature failure past
// go-oidc, which flattens the KeySet's error into a string.
type verifyReport struct{ err error }

type verifyReportKey struct{}

// VerifySignature verifies raw's signature with the issuer's keys and
// returns its payload. A key id missing from the cache triggers one refetch
// (at most every minRefetchInterval); a key id still missing is refused.
func (ks *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	payload, err := ks.verify(ctx, raw)
	if rep, ok := ctx.Value(verifyReportKey{}).(*verifyReport); ok {
		rep.err = err
	}
	return payload, err
}

func (ks *keySet) verify(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, allowedAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errors.New("malformed token")
	}
	header := jws.Signatures[0].Header
	keys, err := ks.cached(ctx)
	if err != nil {
		return nil, err
	}
	payload, found, err := verifyWith(jws, keys, header.KeyID, header.Algorithm)
	if err == nil {
		return payload, nil
	}
	// A key id we do not know may be a rotated key: refetch. A token with
	// no key id is tried against every key, so refetch for it too.
	if !found || header.KeyID == "" {
		keys, refreshed, ferr := ks.refresh(ctx)
		if ferr != nil {
			return nil, ferr
		}
		if refreshed {
			payload, found, err = verifyWith(jws, keys, header.KeyID, header.Algorithm)
			if err == nil {
				return payload, nil
			}
		}
	}
	// Fail closed: no key verified the signature.
	if !found {
		return nil, errUnknownKey
	}
	return nil, errBadSignature
}

// verifyWith tries the keys that match kid (all keys when kid is empty).
// found reports whether any key matched kid.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid, alg string) (payload []byte, found bool, err error) {
	for _, k := range keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		found = true
		// A key published for one algorithm is not used with another.
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if payload, err := jws.Verify(k); err == nil {
			return payload, true, nil
		}
	}
	return nil, found, errBadSignature
}

// cached returns the cached keys, fetching them on first use and again
// once they are maxKeyAge old. Keys that are too old stay in use while the
// issuer cannot be reached: its outage must not lock everyone out.
func (ks *keySet) cached(ctx context.Context) ([]jose.JSONWebKey, error) {
	ks.mu.Lock()
	keys, fetched, age := ks.keys, ks.fetched, ks.now().Sub(ks.fetchedAt)
	ks.mu.Unlock()
	if fetched && age < maxKeyAge {
		return keys, nil
	}
	fresh, _, err := ks.refresh(ctx)
	if err != nil && fetched {
		return keys, nil // refresh logged the failure
	}
	return fresh, err
}

// refresh fetches the keys unless the last fetch ended less than
// minRefetchInterval ago; refreshed reports whether a fetch happened.
// Concurrent callers share one fetch.
func (ks *keySet) refresh(ctx context.Context) (keys []jose.JSONWebKey, refreshed bool, err error) {
	ks.mu.Lock()
	recent := !ks.lastAt.IsZero() && ks.now().Sub(ks.lastAt) < minRefetchInterval
	keys, fetched, lastErr := ks.keys, ks.fetched, ks.lastErr
	ks.mu.Unlock()
	if recent {
		if !fetched {
			// Fail closed: no keys yet, and it is too soon to ask again.
			return nil, false, fmt.Errorf("the last fetch of the signing keys failed: %w", lastErr)
		}
		return keys, false, nil
	}
	v, err, _ := ks.flight.Do("fetch", func() (any, error) {
		// One caller's cancellation must not fail the others sharing the
		// fetch; the timeout bounds it instead.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		keys, err := ks.fetch(fctx)
		ks.mu.Lock()
		defer ks.mu.Unlock()
		ks.lastAt, ks.lastErr = ks.now(), err
		if err != nil {
			// Fail closed: keep the old keys, but verify nothing new.
			ks.log.Warn("fetch issuer signing keys", "issuer", ks.issuer, "err", err)
			return nil, err
		}
		ks.keys, ks.fetched, ks.fetchedAt = keys, true, ks.lastAt
		ks.log.Info("fetched issuer signing keys", "issuer", ks.issuer, "keys", len(keys))
		return keys, nil
	})
	if err != nil {
		return nil, false, err
	}
	return v.([]jose.JSONWebKey), true, nil
}

// remoteKeys returns a fetch function for the JWKS at jwksURL.
func remoteKeys(client *http.Client, jwksURL string) func(context.Context) ([]jose.JSONWebKey, error) {
	return func(ctx context.Context) ([]jose.JSONWebKey, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, jwksURL, nil)
		if err != nil {
			return nil, fmt.Errorf("fetch signing keys from %s: %w", jwksURL, err)
		}
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetch signing keys: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("fetch signing keys from %s: %s", jwksURL, resp.Status)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
		if err != nil {
			return nil, fmt.Errorf("fetch signing keys from %s: %w", jwksURL, err)
		}
		if len(body) > maxJWKSSize {
			return nil, fmt.Errorf("fetch signing keys from %s: the key set is larger than %d bytes", jwksURL, maxJWKSSize)
		}
		return parseJWKS(body)
	}
}

// parseJWKS decodes a JWKS and keeps the public signature keys of supported
// types, skipping the rest (an issuer may publish encryption keys or key
// types this package does not use). Symmetric keys are never kept.
func parseJWKS(body []byte) ([]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decode signing keys: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			if k.Valid() {
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("the issuer publishes no usable signing keys")
	}
	return keys, nil
}
