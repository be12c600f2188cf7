package repo

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// secret stands for a credential in the tests below; it must never show.
const secret = "ghp_S3CRET"

func TestRedactSource(t *testing.T) {
	tests := []struct {
		name, source, want string
	}{
		{"token-as-user", "https://" + secret + "@github.com/org/repo.git", "https://xxxxx@github.com/org/repo.git"},
		{"user-and-password", "https://gatectl:" + secret + "@host/repo", "https://xxxxx@host/repo"},
		{"token-as-user-x-oauth", "https://" + secret + ":x-oauth-basic@host/repo", "https://xxxxx@host/repo"},
		{"escaped-password", "https://u:" + secret + "%2F%40@host/repo", "https://xxxxx@host/repo"},
		{"query", "https://host/repo?access_token=" + secret + "&x=1", "https://host/repo?access_token=xxxxx&x=xxxxx"},
		{"fragment", "https://host/repo#" + secret, "https://host/repo"},
		{"ssh-user", "ssh://git@host:2222/repo", "ssh://xxxxx@host:2222/repo"},
		{"unparsable-url", "https://" + secret + "@host:port/repo", "https://xxxxx"},
		{"plain-https", "https://host/org/repo.git", "https://host/org/repo.git"},
		{"scp-like", "git@github.com:org/repo.git", "git@github.com:org/repo.git"},
		{"scp-like-password", "oauth2:" + secret + "@gitlab.com:org/repo.git", "xxxxx@gitlab.com:org/repo.git"},
		{"scp-like-port", "git:" + secret + "@host:2222/repo", "xxxxx@host:2222/repo"},
		{"local-path-with-at", "/srv/policy@2024", "/srv/policy@2024"},
		{"local-path", "/srv/policy", "/srv/policy"},
		{"file-url", "file:///srv/policy", "file:///srv/policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactSource(tt.source); got != tt.want {
				t.Fatalf("RedactSource(%q) = %q; want %q", tt.source, got, tt.want)
			}
		})
	}
}

// What go-git and net/http put in their errors: the URL with its user
// name (net/http hides only a password, as "***"), the URL as given, or a
// credential escaped.
func TestSourceScrubber(t *testing.T) {
	tests := []struct {
		name, source, msg string
	}{
		{"net-http-user", "https://" + secret + "@host/repo",
			`Get "https://` + secret + `@host/repo/info/refs?service=git-upload-pack": dial tcp: connection refused`},
		{"net-http-user-password", "https://" + secret + ":pw@host/repo",
			`Get "https://` + secret + `:***@host/repo/info/refs": EOF`},
		{"whole-source", "https://u:" + secret + "@host/repo", "invalid endpoint: https://u:" + secret + "@host/repo"},
		{"escaped-password", "https://u:" + secret + "%2F@host/repo", "https://u:" + secret + "%2F@host/repo: refused"},
		{"scp-like-password", "oauth2:" + secret + "@host:org/repo",
			"ssh: handshake failed for oauth2:" + secret + "@host:22: unable to authenticate"},
		{"query", "https://host/repo?access_token=" + secret,
			`Get "https://host/repo?access_token=` + secret + `/info/refs?service=git-upload-pack": 404`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := scrub(errors.New(tt.msg), sourceScrubber(tt.source))
			if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "xxxxx") {
				t.Fatalf("scrubbed %q = %q; want the credential replaced by xxxxx", tt.msg, err)
			}
		})
	}
	// A user name is replaced only where a URL holds it.
	msg := `git-upload-pack failed on ssh://git@host/repo`
	if got := sourceScrubber("ssh://git@host/repo").Replace(msg); got != `git-upload-pack failed on ssh://xxxxx@host/repo` {
		t.Fatalf("scrubbed %q = %q; want only the URL's user replaced", msg, got)
	}
}

func TestRemoteSource(t *testing.T) {
	explicit := &githttp.TokenAuth{Token: "explicit"}
	tests := []struct {
		name, source string
		auth         transport.AuthMethod
		wantURL      string
		wantAuth     transport.AuthMethod
	}{
		{"token-as-user", "https://" + secret + "@host/repo", nil,
			"https://host/repo", &githttp.BasicAuth{Username: secret}},
		{"user-and-password", "https://gatectl:" + secret + "@host/repo", nil,
			"https://host/repo", &githttp.BasicAuth{Username: "gatectl", Password: secret}},
		{"explicit-auth-wins", "https://gatectl:" + secret + "@host/repo", explicit,
			"https://host/repo", explicit},
		{"no-credentials", "https://host/repo", nil, "https://host/repo", nil},
		{"ssh-keeps-user", "ssh://git@host/repo", nil, "ssh://git@host/repo", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotURL, gotAuth := remoteSource(tt.source, tt.auth)
			if gotURL != tt.wantURL || !sameAuth(gotAuth, tt.wantAuth) {
				t.Fatalf("remoteSource(%q) = %q, %v; want %q, %v", tt.source, gotURL, gotAuth, tt.wantURL, tt.wantAuth)
			}
		})
	}
}

func sameAuth(a, b transport.AuthMethod) bool {
	ba, ok1 := a.(*githttp.BasicAuth)
	bb, ok2 := b.(*githttp.BasicAuth)
	if ok1 && ok2 {
		return *ba == *bb
	}
	return a == b
}

// syncBuffer collects logs written from the follower's goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A credential in the source URL, as user name, password or query value,
// reaches none of: Start's error, Status, events (audited), logs, and the
// files of the clone.
func TestCredentialsNeverShown(t *testing.T) {
	closed := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		return l.Addr().String()
	}
	tests := []struct {
		name string
		// source returns the source URL and the CA bundle to use.
		source  func(t *testing.T, u *upstream) (string, []byte)
		wantErr bool
	}{
		{"token-as-user-unreachable", func(t *testing.T, u *upstream) (string, []byte) {
			return "https://" + secret + "@" + closed(t) + "/policy", nil
		}, true},
		{"scp-like-password-unreachable", func(t *testing.T, u *upstream) (string, []byte) {
			return "oauth2:" + secret + "@" + closed(t) + "/policy", nil
		}, true},
		{"token-in-query-unreachable", func(t *testing.T, u *upstream) (string, []byte) {
			return "https://" + closed(t) + "/policy?access_token=" + secret, nil
		}, true},
		{"token-as-user-refused", func(t *testing.T, u *upstream) (string, []byte) {
			source, ca := httpsRemote(t, u, "other-password")
			return strings.Replace(source, "https://", "https://"+secret+"@", 1), ca
		}, true},
		{"token-as-user-accepted", func(t *testing.T, u *upstream) (string, []byte) {
			source, ca := httpsRemote(t, u, "")
			return strings.Replace(source, "https://", "https://"+secret+"@", 1), ca
		}, false},
		{"password-accepted", func(t *testing.T, u *upstream) (string, []byte) {
			source, ca := httpsRemote(t, u, secret)
			return strings.Replace(source, "https://", "https://gatectl:"+secret+"@", 1), ca
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, "main")
			u.version(t, "v1")
			source, ca := tt.source(t, u)
			var logs syncBuffer
			dir := filepath.Join(t.TempDir(), "clone")
			f, ev, err := startFollower(t, Options{
				Source: source, CABundle: ca, Dir: dir, Interval: time.Hour,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Start() = %v; want error %v", err, tt.wantErr)
			}
			shown := map[string]string{"logs": logs.String()}
			if err != nil {
				shown["Start error"] = err.Error()
			}
			st := f.Status()
			shown["Status.Source"], shown["Status.LastError"] = st.Source, st.LastError
			for len(ev) > 0 {
				if e := <-ev; e.Err != nil {
					shown["event error"] += e.Err.Error()
				}
			}
			err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := os.ReadFile(path)
				shown[path] = string(b)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			for where, s := range shown {
				if strings.Contains(s, secret) {
					t.Errorf("credential shown in %s: %q", where, s)
				}
			}
			if !strings.Contains(st.Source, "xxxxx") {
				t.Errorf("Status().Source = %q; want the credential replaced by xxxxx", st.Source)
			}
		})
	}
}

// Clones made by an older gatectl recorded the source with a user name in
// clear: an upgrade keeps their live commit (here with the remote hung, so
// only the fallback can start) and rewrites the record redacted.
func TestUpgradeRedactsRecordedSource(t *testing.T) {
	u := newUpstream(t, "main")
	first := u.version(t, "v1")
	r := newSwitchableRemote(t, u)
	source := strings.Replace(r.url, "https://", "https://"+secret+"@", 1)
	dir := filepath.Join(t.TempDir(), "clone")
	opts := Options{Source: source, CABundle: r.ca, Dir: dir, Interval: time.Hour}
	runOnce(t, opts)

	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := repo.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Raw.Section(stateSection).SetOption("source", legacyRedactSource(source))
	if err := repo.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}

	r.hang()
	opts.FetchTimeout = testFetchTimeout
	f, _ := mustStart(t, opts)
	checkCurrent(t, f, "v1", first)
	b, err := os.ReadFile(filepath.Join(dir, "config"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), secret) || !strings.Contains(string(b), "xxxxx") {
		t.Fatalf("clone config after the upgrade:\n%s\nwant the source recorded redacted", b)
	}
}
