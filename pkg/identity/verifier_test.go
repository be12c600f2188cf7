package identity

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatectl/gatectl/pkg/policy"
)

// claimsAt are standard claims from iss for sub, valid from nbf until exp.
func claimsAt(iss, sub string, aud any, nbf, exp time.Time) map[string]any {
	return map[string]any{
		"iss": iss, "sub": sub, "aud": aud,
		"iat": nbf.Unix(), "nbf": nbf.Unix(), "exp": exp.Unix(),
	}
}

func segment(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func sign(t *testing.T, d *DevIssuer, claims any) string {
	t.Helper()
	raw, err := d.sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func mint(t *testing.T, d *DevIssuer, sub string, groups ...string) string {
	t.Helper()
	raw, err := d.Mint(sub, groups, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// publicKeyPEM is the issuer's public key as an attacker would download it.
func publicKeyPEM(t *testing.T, d *DevIssuer) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(d.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestVerifyRefuses(t *testing.T) {
	s := newIssuerServer(t)
	now := time.Now()
	tests := []struct {
		name  string
		token func(t *testing.T) string
		clock time.Duration // added to the verifier's clock
		want  string
	}{
		{name: "alg-none", want: "token signed with an algorithm that is not allowed (none)",
			token: func(t *testing.T) string {
				header := map[string]string{"alg": "none", "typ": "JWT", "kid": s.issuer().keyID}
				return segment(t, header) + "." + segment(t, claimsAt(s.url, "mallory", "gatectl", now, now.Add(time.Hour))) + "."
			}},
		{name: "hmac-with-public-key", want: "token signed with an algorithm that is not allowed (HS256)",
			token: func(t *testing.T) string {
				signer, err := jose.NewSigner(
					jose.SigningKey{Algorithm: jose.HS256, Key: publicKeyPEM(t, s.issuer())},
					(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", s.issuer().keyID))
				if err != nil {
					t.Fatal(err)
				}
				raw, err := jwt.Signed(signer).Claims(claimsAt(s.url, "mallory", "gatectl", now, now.Add(time.Hour))).Serialize()
				if err != nil {
					t.Fatal(err)
				}
				return raw
			}},
		{name: "unknown-kid", want: reasonUnknownKey,
			token: func(t *testing.T) string { return mint(t, s.newIssuer(t), "mallory") }},
		{name: "bad-signature", want: reasonBadSignature,
			token: func(t *testing.T) string {
				good := mint(t, s.issuer(), "alice")
				forged := segment(t, claimsAt(s.url, "admin", "gatectl", now, now.Add(time.Hour)))
				return replacePayload(good, forged)
			}},
		{name: "expired", want: reasonExpired, clock: 2 * time.Hour,
			token: func(t *testing.T) string { return mint(t, s.issuer(), "alice") }},
		{name: "not-yet-valid", want: reasonNotYetValid,
			token: func(t *testing.T) string {
				return sign(t, s.issuer(), claimsAt(s.url, "alice", "gatectl", now.Add(time.Hour), now.Add(2*time.Hour)))
			}},
		{name: "wrong-audience", want: `token audience does not include "gatectl"`,
			token: func(t *testing.T) string {
				return sign(t, s.issuer(), claimsAt(s.url, "alice", []string{"kubernetes", "vault"}, now, now.Add(time.Hour)))
			}},
		{name: "untrusted-issuer", want: "issuer https://evil.example is not trusted by the policy",
			token: func(t *testing.T) string {
				return sign(t, s.issuer(), claimsAt("https://evil.example", "alice", "gatectl", now, now.Add(time.Hour)))
			}},
		{name: "no-subject", want: reasonNoSubject,
			token: func(t *testing.T) string {
				return sign(t, s.issuer(), claimsAt(s.url, "", "gatectl", now, now.Add(time.Hour)))
			}},
		{name: "exp-not-a-number", want: reasonMalformed,
			token: func(t *testing.T) string {
				c := claimsAt(s.url, "alice", "gatectl", now, now.Add(time.Hour))
				c["exp"] = "tomorrow"
				return sign(t, s.issuer(), c)
			}},
		{name: "garbage", want: reasonMalformed,
			token: func(t *testing.T) string { return "not.a-token.at-all" }},
		{name: "json-serialization", want: reasonMalformed,
			token: func(t *testing.T) string { return `{"payload":"e30","signatures":[]}` }},
		{name: "empty", want: reasonNoToken,
			token: func(t *testing.T) string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			clk.Advance(tt.clock)
			v := NewVerifier(Options{HTTPClient: s.srv.Client(), Now: clk.Now, Logger: quiet})
			raw := tt.token(t)
			p, err := v.Verify(context.Background(), ciPolicy(s.url), raw)
			mustAuthError(t, err, tt.want, raw, string(publicKeyPEM(t, s.issuer())))
			if p.Kind != 0 || p.Name != "" {
				t.Errorf("principal: got %v, want the zero principal", p)
			}
		})
	}
}

// replacePayload swaps the claims of a compact JWS, keeping its signature.
func replacePayload(raw, payload string) string {
	first, rest, _ := cutDot(raw)
	_, sig, _ := cutDot(rest)
	return first + "." + payload + "." + sig
}

func cutDot(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func TestVerifyAccepts(t *testing.T) {
	s := newIssuerServer(t)
	now := time.Now()
	accounts := []policy.ServiceAccount{
		{Name: "etl", Issuer: "ci", Match: map[string]string{"sub": "repo:acme/etl:ref:refs/heads/main"}},
		{Name: "deploy", Issuer: "ci", Match: map[string]string{
			"sub":        "repo:acme/deploy:ref:refs/heads/*",
			"repository": "acme/*",
		}},
		{Name: "other-issuer", Issuer: "gitlab", Match: map[string]string{"sub": "*"}},
		{Name: "empty-match", Issuer: "ci"},
	}
	tests := []struct {
		name  string
		token func(t *testing.T) string
		want  policy.Principal
	}{
		{name: "user-with-groups",
			token: func(t *testing.T) string { return mint(t, s.issuer(), "alice", "dba", "eng") },
			want:  policy.Principal{Kind: policy.KindUser, Name: "alice", Subject: "alice", Issuer: "ci", Groups: []string{"dba", "eng"}}},
		{name: "user-without-groups",
			token: func(t *testing.T) string { return mint(t, s.issuer(), "bob") },
			want:  policy.Principal{Kind: policy.KindUser, Name: "bob", Subject: "bob", Issuer: "ci", Groups: []string{}}},
		{name: "groups-as-string",
			token: func(t *testing.T) string {
				c := claimsAt(s.url, "carol", "gatectl", now, now.Add(time.Hour))
				c["groups"] = "dba"
				return sign(t, s.issuer(), c)
			},
			want: policy.Principal{Kind: policy.KindUser, Name: "carol", Subject: "carol", Issuer: "ci", Groups: []string{"dba"}}},
		{name: "not-before-within-leeway",
			token: func(t *testing.T) string {
				return sign(t, s.issuer(), claimsAt(s.url, "dave", "gatectl", now.Add(time.Minute), now.Add(time.Hour)))
			},
			want: policy.Principal{Kind: policy.KindUser, Name: "dave", Subject: "dave", Issuer: "ci"}},
		{name: "service-account-exact",
			token: func(t *testing.T) string { return mint(t, s.issuer(), "repo:acme/etl:ref:refs/heads/main") },
			want: policy.Principal{Kind: policy.KindService, Name: "etl", Subject: "repo:acme/etl:ref:refs/heads/main",
				Issuer: "ci", Groups: []string{}}},
		{name: "service-account-glob",
			token: func(t *testing.T) string {
				c := claimsAt(s.url, "repo:acme/deploy:ref:refs/heads/release", []string{"gatectl", "other"}, now, now.Add(time.Hour))
				c["repository"] = "acme/deploy"
				return sign(t, s.issuer(), c)
			},
			want: policy.Principal{Kind: policy.KindService, Name: "deploy", Subject: "repo:acme/deploy:ref:refs/heads/release", Issuer: "ci"}},
		{name: "glob-missing-claim-is-user",
			token: func(t *testing.T) string { return mint(t, s.issuer(), "repo:acme/deploy:ref:refs/heads/release") },
			want: policy.Principal{Kind: policy.KindUser, Name: "repo:acme/deploy:ref:refs/heads/release",
				Subject: "repo:acme/deploy:ref:refs/heads/release", Issuer: "ci", Groups: []string{}}},
		{name: "glob-star-stops-at-slash",
			token: func(t *testing.T) string {
				c := claimsAt(s.url, "repo:acme/deploy:ref:refs/heads/feature/x", "gatectl", now, now.Add(time.Hour))
				c["repository"] = "acme/deploy"
				return sign(t, s.issuer(), c)
			},
			want: policy.Principal{Kind: policy.KindUser, Name: "repo:acme/deploy:ref:refs/heads/feature/x",
				Subject: "repo:acme/deploy:ref:refs/heads/feature/x", Issuer: "ci"}},
	}
	v := NewVerifier(Options{HTTPClient: s.srv.Client(), Logger: quiet})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), ciPolicy(s.url, accounts...), tt.token(t))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !samePrincipal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func samePrincipal(a, b policy.Principal) bool {
	return a.Kind == b.Kind && a.Name == b.Name && a.Subject == b.Subject && a.Issuer == b.Issuer &&
		slices.Equal(a.Groups, b.Groups)
}

func TestVerifyRefusesPrincipal(t *testing.T) {
	s := newIssuerServer(t)
	now := time.Now()
	tests := []struct {
		name     string
		accounts []policy.ServiceAccount
		claims   func(c map[string]any)
		want     string
	}{
		{name: "two-service-accounts",
			accounts: []policy.ServiceAccount{
				{Name: "a", Issuer: "ci", Match: map[string]string{"sub": "repo:acme/*"}},
				{Name: "b", Issuer: "ci", Match: map[string]string{"sub": "repo:*/etl"}},
			},
			claims: func(c map[string]any) { c["sub"] = "repo:acme/etl" },
			want:   `token matches service accounts "a" and "b"; the policy must tell them apart`},
		{name: "groups-not-strings",
			claims: func(c map[string]any) { c["groups"] = []any{"dba", 7} },
			want:   `token claim "groups" is not a string or a list of strings`},
		{name: "groups-object",
			claims: func(c map[string]any) { c["groups"] = map[string]any{"dba": true} },
			want:   `token claim "groups" is not a string or a list of strings`},
	}
	v := NewVerifier(Options{HTTPClient: s.srv.Client(), Logger: quiet})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := claimsAt(s.url, "alice", "gatectl", now, now.Add(time.Hour))
			tt.claims(c)
			_, err := v.Verify(context.Background(), ciPolicy(s.url, tt.accounts...), sign(t, s.issuer(), c))
			mustAuthError(t, err, tt.want)
		})
	}
}

func TestVerifyDevIssuer(t *testing.T) {
	dev, err := NewDevIssuer("https://127.0.0.1:8443/dev", t.TempDir()+"/dev.key")
	if err != nil {
		t.Fatal(err)
	}
	devPolicy := &policy.Policy{Issuers: []policy.Issuer{{Name: policy.DevIssuer}}}
	raw := mint(t, dev, "alice", "dba")

	t.Run("trusted-in-dev", func(t *testing.T) {
		got, err := NewVerifier(Options{Dev: dev, Logger: quiet}).Verify(context.Background(), devPolicy, raw)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		want := policy.Principal{Kind: policy.KindUser, Name: "alice", Subject: "alice", Issuer: "dev", Groups: []string{"dba"}}
		if !samePrincipal(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
		// Sessions end at the token's expiry, so the principal carries it.
		if d := time.Until(got.Expires); d <= 0 || d > MaxDevTTL {
			t.Errorf("Expires %v is not the token's exp (in the next %v)", got.Expires, MaxDevTTL)
		}
	})
	t.Run("refused-without-dev", func(t *testing.T) {
		_, err := NewVerifier(Options{Logger: quiet}).Verify(context.Background(), devPolicy, raw)
		mustAuthError(t, err, "issuer https://127.0.0.1:8443/dev is not trusted by the policy", raw)
	})
	t.Run("refused-without-dev-even-with-url", func(t *testing.T) {
		pol := &policy.Policy{Issuers: []policy.Issuer{{Name: policy.DevIssuer, URL: dev.URL(), Audience: "gatectl"}}}
		_, err := NewVerifier(Options{Logger: quiet}).Verify(context.Background(), pol, raw)
		mustAuthError(t, err, "the dev issuer is trusted only when the gateway runs with --dev", raw)
	})
	t.Run("refused-when-policy-lacks-dev", func(t *testing.T) {
		pol := &policy.Policy{Issuers: []policy.Issuer{{Name: "ci", URL: "https://ci.example", Audience: "gatectl"}}}
		_, err := NewVerifier(Options{Dev: dev, Logger: quiet}).Verify(context.Background(), pol, raw)
		mustAuthError(t, err, "issuer https://127.0.0.1:8443/dev is not trusted by the policy", raw)
	})
	t.Run("refused-without-policy", func(t *testing.T) {
		_, err := NewVerifier(Options{Dev: dev, Logger: quiet}).Verify(context.Background(), nil, raw)
		mustAuthError(t, err, "no policy is loaded", raw)
	})
}

func TestVerifyKeyRotation(t *testing.T) {
	s := newIssuerServer(t)
	clk := newClock()
	v := NewVerifier(Options{HTTPClient: s.srv.Client(), Now: clk.Now, Logger: quiet})
	pol := ciPolicy(s.url)
	ctx := context.Background()

	old := s.issuer()
	oldToken := mint(t, old, "alice")
	if _, err := v.Verify(ctx, pol, oldToken); err != nil {
		t.Fatalf("Verify before rotation: %v", err)
	}
	if got, want := s.keyFetch.Load(), int64(1); got != want {
		t.Fatalf("key fetches: got %d, want %d", got, want)
	}

	rotated := s.newIssuer(t)
	s.serve(rotated)
	newToken := mint(t, rotated, "alice")

	// Within minRefetchInterval of the last fetch the new kid is unknown
	// and the issuer is not asked again.
	_, err := v.Verify(ctx, pol, newToken)
	mustAuthError(t, err, reasonUnknownKey, newToken)
	if got, want := s.keyFetch.Load(), int64(1); got != want {
		t.Fatalf("key fetches within the interval: got %d, want %d", got, want)
	}

	clk.Advance(minRefetchInterval)
	got, err := v.Verify(ctx, pol, newToken)
	if err != nil {
		t.Fatalf("Verify after rotation: %v", err)
	}
	if got.Name != "alice" {
		t.Errorf("principal: got %q, want %q", got.Name, "alice")
	}
	if got, want := s.keyFetch.Load(), int64(2); got != want {
		t.Fatalf("key fetches after rotation: got %d, want %d", got, want)
	}

	// The retired key is gone from the issuer's set and so from ours.
	clk.Advance(minRefetchInterval)
	_, err = v.Verify(ctx, pol, oldToken)
	mustAuthError(t, err, reasonUnknownKey, oldToken)
	if got, want := s.keyFetch.Load(), int64(3); got != want {
		t.Fatalf("key fetches for the retired key: got %d, want %d", got, want)
	}
}

// clockedIssuer is an issuer server and a Verifier trusting it (ciPolicy)
// on a clock the test sets.
type clockedIssuer struct {
	*issuerServer
	clk *clock
	v   *Verifier
	pol *policy.Policy
}

func newClockedIssuer(t *testing.T) *clockedIssuer {
	s := newIssuerServer(t)
	clk := newClock()
	return &clockedIssuer{issuerServer: s, clk: clk, pol: ciPolicy(s.url),
		v: NewVerifier(Options{HTTPClient: s.srv.Client(), Now: clk.Now, Logger: quiet})}
}

// token is alice's, signed by d, valid around the clock's now.
func (c *clockedIssuer) token(t *testing.T, d *DevIssuer) string {
	return sign(t, d, claimsAt(c.url, "alice", "gatectl", c.clk.Now().Add(-time.Minute), c.clk.Now().Add(10*time.Minute)))
}

func (c *clockedIssuer) verify(raw string) error {
	_, err := c.v.Verify(context.Background(), c.pol, raw)
	return err
}

// TestVerifyRetiredKeyStopsWorking: an issuer retires a key by leaving it
// out of its set. Once the cached keys are maxKeyAge old they are fetched
// again, and a token signed with the retired key is refused, even though no
// token with a new key id made the gateway refetch.
func TestVerifyRetiredKeyStopsWorking(t *testing.T) {
	c := newClockedIssuer(t)
	old := c.issuer()
	if err := c.verify(c.token(t, old)); err != nil {
		t.Fatalf("Verify before rotation: %v", err)
	}
	c.serve(c.newIssuer(t)) // the old key is retired

	c.clk.Advance(maxKeyAge - time.Minute)
	if err := c.verify(c.token(t, old)); err != nil {
		t.Fatalf("Verify with keys younger than maxKeyAge: %v", err)
	}
	if got := c.keyFetch.Load(); got != 1 {
		t.Fatalf("key fetches before maxKeyAge: %d, want 1", got)
	}
	c.clk.Advance(time.Minute)
	raw := c.token(t, old)
	mustAuthError(t, c.verify(raw), reasonUnknownKey, raw)
	if got := c.keyFetch.Load(); got != 2 {
		t.Errorf("key fetches after maxKeyAge: %d, want 2", got)
	}
}

// TestVerifyKeepsOldKeysWhileIssuerIsDown: keys past maxKeyAge stay in use
// while the issuer cannot be reached, so its outage locks nobody out.
func TestVerifyKeepsOldKeysWhileIssuerIsDown(t *testing.T) {
	c := newClockedIssuer(t)
	if err := c.verify(c.token(t, c.issuer())); err != nil {
		t.Fatal(err)
	}
	c.down.Store(true)
	c.clk.Advance(maxKeyAge)
	if err := c.verify(c.token(t, c.issuer())); err != nil {
		t.Errorf("Verify while the issuer is down: %v", err)
	}
}

// TestVerifyDiscoveryFailureBacksOff: a failed discovery is not retried for
// every token, which anyone could send to make the gateway hammer an ailing
// issuer; it is retried after minRefetchInterval.
func TestVerifyDiscoveryFailureBacksOff(t *testing.T) {
	c := newClockedIssuer(t)
	c.down.Store(true)
	for range 5 {
		raw := c.token(t, c.issuer())
		mustAuthError(t, c.verify(raw), "issuer "+c.url+" could not be reached to verify the token; try again later", raw)
	}
	if got := c.discover.Load(); got != 1 {
		t.Fatalf("discovery requests for 5 tokens while the issuer is down: %d, want 1", got)
	}
	c.down.Store(false)
	c.clk.Advance(minRefetchInterval)
	if err := c.verify(c.token(t, c.issuer())); err != nil {
		t.Fatalf("Verify once the issuer is back: %v", err)
	}
	if got := c.discover.Load(); got != 2 {
		t.Errorf("discovery requests: %d, want 2", got)
	}
}

func TestVerifyUnreachableIssuer(t *testing.T) {
	s := newIssuerServer(t)
	raw := mint(t, s.issuer(), "alice")
	s.srv.Close()
	_, err := NewVerifier(Options{HTTPClient: s.srv.Client(), Logger: quiet}).Verify(context.Background(), ciPolicy(s.url), raw)
	mustAuthError(t, err, "issuer "+s.url+" could not be reached to verify the token; try again later", raw)
}

func TestVerifyIssuerWithoutAudience(t *testing.T) {
	s := newIssuerServer(t)
	pol := &policy.Policy{Issuers: []policy.Issuer{{Name: "ci", URL: s.url}}}
	raw := mint(t, s.issuer(), "alice")
	_, err := NewVerifier(Options{HTTPClient: s.srv.Client(), Logger: quiet}).Verify(context.Background(), pol, raw)
	mustAuthError(t, err, `issuer "ci" has no audience in identity.toml`, raw)
}

func TestVerifyConcurrent(t *testing.T) {
	s := newIssuerServer(t)
	v := NewVerifier(Options{HTTPClient: s.srv.Client(), Logger: quiet})
	pol := ciPolicy(s.url)
	raw := mint(t, s.issuer(), "alice")
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() {
			_, err := v.Verify(context.Background(), pol, raw)
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
	// Discovery and keys are cached per issuer: later tokens fetch nothing.
	fetches := s.keyFetch.Load()
	if _, err := v.Verify(context.Background(), pol, mint(t, s.issuer(), "bob")); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got, want := s.keyFetch.Load(), fetches; got != want {
		t.Errorf("key fetches after caching: got %d, want %d", got, want)
	}
}

// TestVerifyServicesOnlyIssuerNamesNoUsers is a second trusted issuer whose
// subjects could take another issuer's names: its tokens can be service
// accounts, never user:alice with alice's grants or group:security with the
// auditors' rights.
func TestVerifyServicesOnlyIssuerNamesNoUsers(t *testing.T) {
	corp, ci := newIssuerServer(t), newIssuerServer(t)
	pol := &policy.Policy{
		Issuers: []policy.Issuer{
			{Name: "corp", URL: corp.url, Audience: "gatectl", GroupsClaim: "groups"},
			{Name: "ci", URL: ci.url, Audience: "gatectl", GroupsClaim: "groups", ServicesOnly: true},
		},
		ServiceAccounts: []policy.ServiceAccount{{Name: "etl", Issuer: "ci", Match: map[string]string{"sub": "etl"}}},
	}
	client := corp.srv.Client()
	client.Transport.(*http.Transport).TLSClientConfig.RootCAs.AddCert(ci.srv.Certificate())
	v := NewVerifier(Options{HTTPClient: client, Logger: quiet})
	ctx := context.Background()

	if p, err := v.Verify(ctx, pol, mint(t, corp.issuer(), "alice", "security")); err != nil || p.String() != "user:alice" {
		t.Fatalf("corp's alice: %v, %v; want user:alice", p, err)
	}
	raw := mint(t, ci.issuer(), "alice", "security")
	_, err := v.Verify(ctx, pol, raw)
	mustAuthError(t, err, `the token matches no service account, and issuer "ci" names no users (identity.toml)`, raw)
	// Its service accounts bring no groups: group:dba is corp's dba.
	p, err := v.Verify(ctx, pol, mint(t, ci.issuer(), "etl", "dba"))
	if err != nil || p.String() != "service:etl" {
		t.Fatalf("ci's etl: %v, %v; want service:etl", p, err)
	}
	if p.Matches("group:dba") || len(p.Groups) != 0 {
		t.Errorf("ci's etl has groups %v; want none from a services-only issuer", p.Groups)
	}
}

// TestRefusalReasonShowsClaimSafely: a claim value quoted in a refusal is
// cut and has its control characters escaped.
func TestRefusalReasonShowsClaimSafely(t *testing.T) {
	got := printable("https://evil\x1b[2K\n" + strings.Repeat("x", 200))
	if len(got) > 80 || strings.ContainsAny(got, "\x1b\n") || !strings.HasPrefix(got, `https://evil\x1b[2K\n`) {
		t.Errorf("printable = %q, want at most 80 bytes with escapes", got)
	}
}
