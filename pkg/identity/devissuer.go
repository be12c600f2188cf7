package identity

import (
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// DevAudience is the audience of every token the dev issuer mints, and the
// audience expected from the policy issuer named "dev" when it sets none.
const DevAudience = "gatectl"

// MaxDevTTL bounds the lifetime of a dev token.
const MaxDevTTL = 24 * time.Hour

// DevIssuer is the embedded OIDC issuer of `gatectl gateway --dev`. It mints a
// token for any subject it is asked for, so the gateway must serve it only in
// dev mode and only on loopback; a Verifier trusts it only when it is given
// the DevIssuer in Options.Dev.
type DevIssuer struct {
	url    string
	key    crypto.Signer
	keyID  string
	alg    jose.SignatureAlgorithm
	signer jose.Signer
}

// NewDevIssuer returns the dev issuer named by issuerURL (an https URL, e.g.
// "https://127.0.0.1:8443/dev"; a trailing slash is dropped) that signs with
// the key stored at keyPath. The key is an ECDSA P-256 or RSA key in a PEM
// PKCS #8 file; when the file does not exist a P-256 key is created there
// with mode 0600, so tokens survive a restart of the gateway.
func NewDevIssuer(issuerURL, keyPath string) (*DevIssuer, error) {
	u, err := url.Parse(issuerURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("dev issuer URL %q must be an https URL without query or fragment, e.g. https://127.0.0.1:8443/dev", issuerURL)
	}
	if keyPath == "" {
		return nil, errors.New("dev issuer needs a key path: pass a file under the gateway's data dir")
	}
	key, err := loadOrCreateKey(keyPath)
	if err != nil {
		return nil, err
	}
	kid, err := keyID(key)
	if err != nil {
		return nil, err
	}
	alg := signingAlgorithm(key)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return nil, fmt.Errorf("dev issuer signer: %w", err)
	}
	return &DevIssuer{
		url:    strings.TrimSuffix(issuerURL, "/"),
		key:    key,
		keyID:  kid,
		alg:    alg,
		signer: signer,
	}, nil
}

// URL is the issuer URL, the `iss` of every token it mints.
func (d *DevIssuer) URL() string { return d.url }

// devClaims are the claims of a dev token.
type devClaims struct {
	jwt.Claims
	Groups []string `json:"groups"`
}

// Mint returns a signed token for sub in groups, valid from now for ttl
// (at most MaxDevTTL), with audience DevAudience and the key id in its
// header.
func (d *DevIssuer) Mint(sub string, groups []string, ttl time.Duration) (string, error) {
	if sub == "" {
		return "", errors.New("mint dev token: the subject is empty: pass --sub")
	}
	if ttl <= 0 || ttl > MaxDevTTL {
		return "", fmt.Errorf("mint dev token: lifetime %s is outside (0, %s]", ttl, MaxDevTTL)
	}
	for _, g := range groups {
		if g == "" {
			return "", errors.New("mint dev token: a group name is empty")
		}
	}
	if groups == nil {
		groups = []string{}
	}
	now := time.Now()
	return d.sign(devClaims{
		Claims: jwt.Claims{
			Issuer:    d.url,
			Subject:   sub,
			Audience:  jwt.Audience{DevAudience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			Expiry:    jwt.NewNumericDate(now.Add(ttl)),
			ID:        randomID(),
		},
		Groups: groups,
	})
}

// sign serializes claims as a compact JWS signed with the issuer's key.
func (d *DevIssuer) sign(claims any) (string, error) {
	raw, err := jwt.Signed(d.signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign dev token: %w", err)
	}
	return raw, nil
}

// publicKeys is the issuer's JSON Web Key Set.
func (d *DevIssuer) publicKeys() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key:       d.key.Public(),
		KeyID:     d.keyID,
		Algorithm: string(d.alg),
		Use:       "sig",
	}}}
}

func randomID() string {
	b := make([]byte, 16)
	// crypto/rand.Read never returns an error (Go 1.24+); it aborts instead.
	rand.Read(b)
	return hex.EncodeToString(b)
}
