package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"

	"github.com/gatectl/gatectl/pkg/policy"
)

// notBeforeLeeway is the clock skew go-oidc allows on a token's nbf.
const notBeforeLeeway = 5 * time.Minute

// Options configure a Verifier.
type Options struct {
	// HTTPClient fetches issuers' discovery documents and key sets, e.g. a
	// client that trusts the dev CA. Nil means http.DefaultClient.
	HTTPClient *http.Client
	// Dev is the embedded dev issuer, set only in --dev. When it is nil,
	// tokens from the policy's issuer named "dev" are refused.
	Dev *DevIssuer
	// Now is the clock for expiry and not-before checks. Nil means time.Now.
	Now func() time.Time
	// Logger receives key-fetch events and failures. Nil means slog.Default().
	Logger *slog.Logger
}

// Verifier verifies tokens against the issuers a policy trusts and maps them
// to principals. It caches each issuer's discovery and signing keys by URL,
// so one Verifier serves every policy commit the gateway loads. It is safe
// for concurrent use.
type Verifier struct {
	client  *http.Client
	dev     *DevIssuer
	devKeys *keySet
	now     func() time.Time
	log     *slog.Logger

	mu        sync.Mutex
	remotes   map[string]*keySet // by issuer URL
	discovery singleflight.Group
	// failed holds when each issuer's last discovery failed, until one
	// succeeds: within minRefetchInterval of a failure no token makes the
	// gateway ask again, or anyone could make it hammer an ailing issuer.
	failed map[string]time.Time
}

// NewVerifier returns a Verifier configured by opts.
func NewVerifier(opts Options) *Verifier {
	v := &Verifier{
		client:  opts.HTTPClient,
		dev:     opts.Dev,
		now:     opts.Now,
		log:     opts.Logger,
		remotes: make(map[string]*keySet),
		failed:  make(map[string]time.Time),
	}
	if v.client == nil {
		v.client = http.DefaultClient
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	if v.dev != nil {
		// The dev issuer lives in this process: its keys are read directly
		// rather than over HTTP.
		dev := v.dev
		v.devKeys = &keySet{
			issuer: dev.URL(),
			fetch: func(context.Context) ([]jose.JSONWebKey, error) {
				return dev.publicKeys().Keys, nil
			},
			now: v.now,
			log: v.log,
		}
	}
	return v
}

// Verify checks raw against the issuers that pol trusts and returns the
// principal it names. The token must be a compact JWS signed with an
// allowed asymmetric algorithm by a current key of the issuer named by its
// `iss` claim; its audience must include the issuer's audience, and it must
// be within its not-before (5 minutes' leeway, go-oidc's) and expiry times.
//
// A service account of that issuer whose every match claim equals the
// token's claim (glob patterns as in path.Match, where * does not match /)
// makes the principal that service account; otherwise the principal is the
// user named by `sub`. A token that matches two service accounts is refused.
// Groups come from the issuer's groups_claim ("groups" for the dev issuer
// when unset; none for other issuers when unset).
//
// Every failure is an *AuthError: the token is refused (fail closed), also
// when the issuer cannot be reached to fetch its keys.
func (v *Verifier) Verify(ctx context.Context, pol *policy.Policy, raw string) (policy.Principal, error) {
	if pol == nil {
		// Fail closed: without a policy no issuer is trusted.
		return policy.Principal{}, refuse("no policy is loaded")
	}
	tok, aerr := parseUnverified(raw)
	if aerr != nil {
		return policy.Principal{}, aerr
	}
	iss, ok := stringClaim(tok.claims, "iss")
	if !ok || iss == "" {
		return policy.Principal{}, refuse(reasonMalformed)
	}
	issuer, aerr := v.trustedIssuer(pol, iss)
	if aerr != nil {
		return policy.Principal{}, aerr
	}
	audience := issuer.Audience
	if audience == "" && issuer.Name == policy.DevIssuer {
		audience = DevAudience
	}
	if audience == "" {
		// Fail closed: an issuer without an audience would accept tokens
		// minted for any other service.
		return policy.Principal{}, refuse(fmt.Sprintf("issuer %q has no audience in identity.toml", issuer.Name))
	}
	keys, aerr := v.keysFor(ctx, iss)
	if aerr != nil {
		return policy.Principal{}, aerr
	}

	rep := &verifyReport{}
	idv := oidc.NewVerifier(iss, keys, &oidc.Config{
		ClientID:             audience,
		SupportedSigningAlgs: allowedAlgorithmNames,
		Now:                  v.now,
	})
	idt, err := idv.Verify(context.WithValue(ctx, verifyReportKey{}, rep), raw)
	if err != nil {
		return policy.Principal{}, v.classify(err, rep, tok, iss, audience)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return policy.Principal{}, refuse(reasonMalformed)
	}
	p, err := principalFor(pol, issuer, claims)
	p.Expires = idt.Expiry
	return p, err
}

// trustedIssuer finds the policy issuer whose URL is iss. The issuer named
// "dev" stands for Options.Dev and is skipped when there is none.
func (v *Verifier) trustedIssuer(pol *policy.Policy, iss string) (policy.Issuer, *AuthError) {
	for _, is := range pol.Issuers {
		if is.Name == policy.DevIssuer {
			if v.dev != nil && iss == v.dev.URL() {
				return is, nil
			}
			if v.dev == nil && is.URL != "" && iss == is.URL {
				// Fail closed: the dev issuer mints any identity.
				return policy.Issuer{}, refuse("the dev issuer is trusted only when the gateway runs with --dev")
			}
			continue
		}
		if is.URL == iss {
			return is, nil
		}
	}
	// Fail closed: an issuer the policy does not name is not trusted.
	return policy.Issuer{}, refuse(fmt.Sprintf("issuer %s is not trusted by the policy", printable(iss)))
}

// keysFor returns the key set of the issuer at iss, discovering it on first
// use.
func (v *Verifier) keysFor(ctx context.Context, iss string) (*keySet, *AuthError) {
	if v.dev != nil && iss == v.dev.URL() {
		return v.devKeys, nil
	}
	unreachable := refuse(fmt.Sprintf("issuer %s could not be reached to verify the token; try again later", printable(iss)))
	v.mu.Lock()
	ks := v.remotes[iss]
	failedAt, failed := v.failed[iss]
	v.mu.Unlock()
	if ks != nil {
		return ks, nil
	}
	if failed && v.now().Sub(failedAt) < minRefetchInterval {
		return nil, unreachable
	}
	got, err, _ := v.discovery.Do(iss, func() (any, error) {
		ks, err := v.discover(ctx, iss)
		v.mu.Lock()
		defer v.mu.Unlock()
		if err != nil {
			v.failed[iss] = v.now()
			return nil, err
		}
		delete(v.failed, iss)
		v.remotes[iss] = ks
		return ks, nil
	})
	if err != nil {
		// Fail closed: without the issuer's keys nothing verifies. The
		// next token after minRefetchInterval tries again.
		v.log.Warn("discover issuer", "issuer", iss, "err", err)
		return nil, unreachable
	}
	return got.(*keySet), nil
}

// discover reads the issuer's discovery document and returns its key set.
func (v *Verifier) discover(ctx context.Context, iss string) (*keySet, error) {
	if !strings.HasPrefix(iss, "https://") {
		return nil, errors.New("issuer URL is not https")
	}
	// Shared by concurrent callers: one caller's cancellation must not fail
	// the others; the timeout bounds it instead.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	provider, err := oidc.NewProvider(oidc.ClientContext(dctx, v.client), iss)
	if err != nil {
		return nil, err
	}
	var meta struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := provider.Claims(&meta); err != nil {
		return nil, fmt.Errorf("decode discovery document: %w", err)
	}
	if !strings.HasPrefix(meta.JWKSURL, "https://") {
		return nil, fmt.Errorf("jwks_uri %q is not an https URL", meta.JWKSURL)
	}
	return &keySet{
		issuer: iss,
		fetch:  remoteKeys(v.client, meta.JWKSURL),
		now:    v.now,
		log:    v.log,
	}, nil
}

// classify turns a go-oidc failure into the refusal to report. go-oidc
// checks the signature first; once the signature is known to be good, the
// claims decoded before verification are the verified ones, and they tell
// which of go-oidc's later checks failed.
func (v *Verifier) classify(err error, rep *verifyReport, tok *unverified, iss, audience string) *AuthError {
	switch {
	case errors.Is(rep.err, errUnknownKey):
		return refuse(reasonUnknownKey)
	case errors.Is(rep.err, errBadSignature):
		return refuse(reasonBadSignature)
	case rep.err != nil:
		return refuse(fmt.Sprintf("signing keys of issuer %s could not be fetched; try again later", printable(iss)))
	}
	if _, ok := errors.AsType[*oidc.TokenExpiredError](err); ok {
		return refuse(reasonExpired)
	}
	if !slices.Contains(audiences(tok.claims), audience) {
		return refuse(fmt.Sprintf("token audience does not include %q", audience))
	}
	if nbf, ok := numericDate(tok.claims, "nbf"); ok && nbf.After(v.now().Add(notBeforeLeeway)) {
		return refuse(reasonNotYetValid)
	}
	// Fail closed on anything else go-oidc refuses. Its error names claims
	// and times, never the token or a key.
	v.log.Warn("token refused", "issuer", iss, "err", err)
	return refuse(reasonMalformed)
}
