package repo

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// testFetchTimeout is Options.FetchTimeout for followers that only ever
// fetch a hung remote: short, since each fetch waits for all of it.
const testFetchTimeout = 300 * time.Millisecond

// servingFetchTimeout is Options.FetchTimeout for a follower that must also
// fetch a serving remote: long enough for that on a loaded machine.
const servingFetchTimeout = 3 * time.Second

// hangListener is a server that is up and never answers: it accepts
// connections and holds them without reading or writing a byte.
type hangListener struct {
	net.Listener
	mu   sync.Mutex
	held []net.Conn
}

// newHangListener listens on loopback until the test ends.
func newHangListener(t *testing.T) *hangListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangListener{Listener: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.held = append(h.held, c)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.held {
			c.Close()
		}
	})
	return h
}

// switchableRemote serves u over https like httpsRemote until hang is
// called, and from then on takes requests and never answers them (past the
// TLS handshake, which net/http bounds itself), until serve is called.
type switchableRemote struct {
	url  string
	ca   []byte
	hung atomic.Bool
}

func newSwitchableRemote(t *testing.T, u *upstream) *switchableRemote {
	t.Helper()
	r := &switchableRemote{}
	git := gitHandler(t, u, "")
	stop := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.hung.Load() {
			select {
			case <-req.Context().Done(): // the client gave up
			case <-stop:
			}
			return
		}
		git.ServeHTTP(w, req)
	}))
	t.Cleanup(func() {
		close(stop)
		srv.Close()
	})
	r.url, r.ca = srv.URL+"/"+filepath.Base(u.dir), caPEM(srv)
	return r
}

func (r *switchableRemote) hang()  { r.hung.Store(true) }
func (r *switchableRemote) serve() { r.hung.Store(false) }

// checkFetchTimedOut fails unless ev is a failed fetch that timed out.
func checkFetchTimedOut(t *testing.T, ev Event) {
	t.Helper()
	if ev.Kind != EventPolicyFetch || ev.OK || !errors.Is(ev.Err, errFetchTimeout) {
		t.Fatalf("event = {%s ok=%v err=%v}; want a %s that timed out", ev.Kind, ev.OK, ev.Err, EventPolicyFetch)
	}
}

// A remote that accepts connections and never answers must not hold the
// follower: each fetch fails after FetchTimeout like any other.
func TestHungRemote(t *testing.T) {
	t.Run("start-without-clone", func(t *testing.T) {
		l := newHangListener(t)
		errc := make(chan error, 1)
		go func() {
			_, _, err := startFollower(t, Options{Source: "http://" + l.Addr().String() + "/policy", FetchTimeout: testFetchTimeout})
			errc <- err
		}()
		select {
		case err := <-errc:
			if !errors.Is(err, errFetchTimeout) || !strings.Contains(err.Error(), "up and answering") {
				t.Fatalf("Start() = %v; want a fetch timeout telling to check the server", err)
			}
		case <-time.After(waitLimit):
			t.Fatalf("Start() still blocked after %s on a remote that never answers", waitLimit)
		}
	})

	t.Run("running-keeps-last-good", func(t *testing.T) {
		u := newUpstream(t, "main")
		first := u.version(t, "v1")
		r := newSwitchableRemote(t, u)
		f, ev := mustStart(t, Options{Source: r.url, CABundle: r.ca, Interval: time.Hour, FetchTimeout: servingFetchTimeout})
		checkEvent(t, ev.next(t), first, true)

		r.hang()
		u.version(t, "v2 (unseen)")
		f.Reload()
		checkFetchTimedOut(t, ev.next(t))
		checkCurrent(t, f, "v1", first)
		if st := f.Status(); !strings.Contains(st.LastError, "no answer") {
			t.Fatalf("Status().LastError = %q; want the fetch timeout", st.LastError)
		}

		// Not stuck: the next reload fetches again.
		r.serve()
		third := u.version(t, "v3")
		f.Reload()
		if e := ev.next(t); e.Kind != EventPolicyFetch || !e.OK {
			t.Fatalf("event %+v; want %s working again", e, EventPolicyFetch)
		}
		checkEvent(t, ev.next(t), third, true)
	})

	t.Run("restart-on-last-live", func(t *testing.T) {
		u := newUpstream(t, "main")
		first := u.version(t, "v1")
		r := newSwitchableRemote(t, u)
		dir := filepath.Join(t.TempDir(), "clone")
		opts := Options{Source: r.url, CABundle: r.ca, Dir: dir, Interval: time.Hour}
		runOnce(t, opts)

		r.hang()
		opts.FetchTimeout = testFetchTimeout
		f, ev := mustStart(t, opts)
		checkFetchTimedOut(t, ev.next(t))
		checkEvent(t, ev.next(t), first, true)
		checkCurrent(t, f, "v1", first)
		if st := f.Status(); !strings.Contains(st.LastError, "no answer") {
			t.Fatalf("Status().LastError = %q; want the fetch timeout", st.LastError)
		}
	})
}

// go-git does not bound an ssh handshake by the fetch's context: the fetch
// is abandoned at the timeout, and no other starts while it runs.
func TestHungSSHAbandonsFetch(t *testing.T) {
	l := newHangListener(t)
	auth := &gitssh.PublicKeys{User: "git", Signer: newSigner(t)}
	auth.HostKeyCallback = ssh.FixedHostKey(newSigner(t).PublicKey())
	c, err := openClone(Options{
		Source:       "ssh://git@" + l.Addr().String() + "/policy",
		Branch:       DefaultBranch,
		Dir:          filepath.Join(t.TempDir(), "clone"),
		Auth:         auth,
		FetchTimeout: testFetchTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"within", "still not returned"} {
		done := make(chan error, 1)
		go func() {
			_, err := c.fetch(context.Background())
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, errFetchTimeout) || !strings.Contains(err.Error(), want) {
				t.Fatalf("fetch() = %v; want a fetch timeout saying %q", err, want)
			}
		case <-time.After(waitLimit):
			t.Fatalf("fetch() still blocked after %s on an ssh server that never answers", waitLimit)
		}
	}
}
