package identity

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/policy"
)

// issuerServer is a real HTTPS server that serves a DevIssuer's handler under
// /dev, the way the gateway mounts it. The issuer it serves can be swapped to
// simulate a key rotation.
type issuerServer struct {
	srv      *httptest.Server
	url      string // the issuer URL: srv.URL + "/dev"
	current  atomic.Pointer[DevIssuer]
	keyFetch atomic.Int64 // GET /dev/keys served
	discover atomic.Int64 // GET of the discovery document
	down     atomic.Bool  // answer every request with 503
}

func newIssuerServer(t *testing.T) *issuerServer {
	t.Helper()
	s := &issuerServer{}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/dev/keys":
			s.keyFetch.Add(1)
		case "/dev/.well-known/openid-configuration":
			s.discover.Add(1)
		}
		if s.down.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		http.StripPrefix("/dev", s.current.Load().Handler()).ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	s.url = s.srv.URL + "/dev"
	s.serve(s.newIssuer(t))
	return s
}

// newIssuer returns a DevIssuer with this server's URL and a fresh key.
func (s *issuerServer) newIssuer(t *testing.T) *DevIssuer {
	t.Helper()
	d, err := NewDevIssuer(s.url, filepath.Join(t.TempDir(), "dev.key"))
	if err != nil {
		t.Fatalf("NewDevIssuer: %v", err)
	}
	return d
}

func (s *issuerServer) serve(d *DevIssuer) { s.current.Store(d) }
func (s *issuerServer) issuer() *DevIssuer { return s.current.Load() }

// clock is a settable time source for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// ciPolicy trusts the issuer at url as "ci", the way identity.toml names a
// workload issuer, with the given service accounts.
func ciPolicy(url string, accounts ...policy.ServiceAccount) *policy.Policy {
	return &policy.Policy{
		Issuers: []policy.Issuer{
			{Name: "ci", URL: url, Audience: "gatectl", GroupsClaim: "groups"},
		},
		ServiceAccounts: accounts,
	}
}

// mustAuthError asserts that err is an *AuthError with reason want, and that
// its message does not contain any of secrets.
func mustAuthError(t *testing.T, err error, want string, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want AuthError %q", want)
	}
	ae, ok := err.(*AuthError)
	if !ok {
		t.Fatalf("err = %T %v, want *AuthError", err, err)
	}
	if got := ae.Reason; got != want {
		t.Errorf("reason: got %q, want %q", got, want)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains a secret", err.Error())
		}
	}
}
