package repo

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// httpsRemote serves the parent folder of u over TLS with git-http-backend.
// When password is set, requests need basic auth as "gatectl:password".
// It returns the repository's URL and the server's CA in PEM.
func httpsRemote(t *testing.T, u *upstream, password string) (string, []byte) {
	t.Helper()
	srv := httptest.NewTLSServer(gitHandler(t, u, password))
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(u.dir), caPEM(srv)
}

// caPEM returns the certificate of srv in PEM, for Options.CABundle.
func caPEM(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// gitHandler serves the parent folder of u with git-http-backend, as
// httpsRemote describes.
func gitHandler(t *testing.T, u *upstream, password string) http.Handler {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + filepath.Dir(u.dir), "GIT_HTTP_EXPORT_ALL=1"},
	}
	h := http.Handler(backend)
	if password != "" {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, pass, ok := r.BasicAuth()
			if !ok || user != "gatectl" || pass != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="policy"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			backend.ServeHTTP(w, r)
		})
	}
	return h
}

func TestFollowHTTPS(t *testing.T) {
	t.Run("anonymous", func(t *testing.T) {
		u := newUpstream(t, "main")
		source, ca := httpsRemote(t, u, "")
		followScenario(t, u, source, nil, ca)
	})
	t.Run("basic-auth", func(t *testing.T) {
		u := newUpstream(t, "main")
		source, ca := httpsRemote(t, u, "s3cret-token")
		followScenario(t, u, source, &githttp.BasicAuth{Username: "gatectl", Password: "s3cret-token"}, ca)
	})
}

func TestHTTPSCredentialErrors(t *testing.T) {
	const secret = "s3cret-token"
	tests := []struct {
		name     string
		password string // in the URL
		want     string
	}{
		{"no-credentials", "", "credentials"},
		{"wrong-password", "wrong-" + secret, "credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, "main")
			u.version(t, "v1")
			source, ca := httpsRemote(t, u, secret)
			if tt.password != "" {
				source = strings.Replace(source, "https://", "https://gatectl:"+tt.password+"@", 1)
			}
			f, _, err := startFollower(t, Options{Source: source, CABundle: ca})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start() = %v; want an error about %s", err, tt.want)
			}
			for _, s := range []string{err.Error(), f.Status().LastError, f.Status().Source} {
				if tt.password != "" && strings.Contains(s, tt.password) {
					t.Fatalf("password leaked: %q", s)
				}
			}
		})
	}
}

// A password in the source URL is used but never shown.
func TestHTTPSPasswordInURL(t *testing.T) {
	const secret = "s3cret-token"
	u := newUpstream(t, "main")
	first := u.version(t, "v1")
	source, ca := httpsRemote(t, u, secret)
	withPassword := strings.Replace(source, "https://", "https://gatectl:"+secret+"@", 1)
	f, _ := mustStart(t, Options{Source: withPassword, CABundle: ca})
	checkCurrent(t, f, "v1", first)
	if st := f.Status(); strings.Contains(st.Source, secret) || !strings.Contains(st.Source, "xxxxx") {
		t.Fatalf("Status().Source = %q; want the password redacted", st.Source)
	}
}

func TestHTTPSUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + l.Addr().String() + "/policy"
	l.Close()
	_, _, err = startFollower(t, Options{Source: closed})
	if err == nil || !strings.Contains(err.Error(), "reachable") {
		t.Fatalf("Start() = %v; want an error telling to check the repository is reachable", err)
	}
}

// sshRemote runs an SSH server on loopback that serves git-upload-pack for
// clients holding the returned key. It returns the URL of u and the auth.
func sshRemote(t *testing.T, u *upstream) (string, *gitssh.PublicKeys) {
	t.Helper()
	hostSigner := newSigner(t)
	clientSigner := newSigner(t)
	allowed := string(clientSigner.PublicKey().Marshal())
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if string(key.Marshal()) != allowed {
				return nil, errors.New("unknown key")
			}
			return nil, nil
		},
	}
	cfg.AddHostKey(hostSigner)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveSSH(c, cfg)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	auth := &gitssh.PublicKeys{User: "git", Signer: clientSigner}
	auth.HostKeyCallback = ssh.FixedHostKey(hostSigner.PublicKey())
	return "ssh://git@" + l.Addr().String() + u.dir, auth
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func serveSSH(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go serveSession(ch, creqs)
	}
}

// serveSession runs "git-upload-pack '<path>'" and nothing else.
func serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(false, nil)
			continue
		}
		var p struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &p); err != nil {
			req.Reply(false, nil)
			return
		}
		path, ok := strings.CutPrefix(p.Command, "git-upload-pack ")
		if !ok {
			req.Reply(false, nil)
			return
		}
		req.Reply(true, nil)
		cmd := exec.Command("git-upload-pack", strings.Trim(path, "'"))
		cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
		stdin, err := cmd.StdinPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			return
		}
		go func() {
			io.Copy(stdin, ch)
			stdin.Close()
		}()
		status := uint32(0)
		if err := cmd.Wait(); err != nil {
			status = 1
		}
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		return
	}
}

func TestFollowSSH(t *testing.T) {
	u := newUpstream(t, "main")
	source, auth := sshRemote(t, u)
	followScenario(t, u, source, auth, nil)
}

func TestSSHWrongKey(t *testing.T) {
	u := newUpstream(t, "main")
	u.version(t, "v1")
	source, auth := sshRemote(t, u)
	auth.Signer = newSigner(t)
	_, _, err := startFollower(t, Options{Source: source, Auth: auth})
	if err == nil || !strings.Contains(err.Error(), "check the credentials") {
		t.Fatalf("Start() with an unknown key = %v; want an error telling to check the credentials", err)
	}
}
