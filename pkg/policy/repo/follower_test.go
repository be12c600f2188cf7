package repo

import (
	"context"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

// followScenario runs the life of a policy branch against source: the first
// commit loads, a good commit goes live on a poll, a broken one is refused
// while the last good stays live, and a fix goes live again.
func followScenario(t *testing.T, u *upstream, source string, auth transport.AuthMethod, caBundle []byte) {
	t.Helper()
	first := u.version(t, "v1")
	f, ev := mustStart(t, Options{Source: source, Interval: 10 * time.Millisecond, Auth: auth, CABundle: caBundle})
	checkEvent(t, ev.next(t), first, true)
	checkCurrent(t, f, "v1", first)

	second := u.version(t, "v2")
	checkEvent(t, ev.next(t), second, true)
	checkCurrent(t, f, "v2", second)

	broken := u.version(t, "v3 broken")
	got := ev.next(t)
	checkEvent(t, got, broken, false)
	checkCurrent(t, f, "v2", second)
	st := f.Status()
	if st.Live.Hash != second || st.LastTried.Hash != broken || !strings.Contains(st.LastError, "marked broken") {
		t.Fatalf("Status() = live %s, tried %s, error %q; want live %s, tried %s, error about the broken commit",
			st.Live.Short(), st.LastTried.Short(), st.LastError, second[:12], broken[:12])
	}

	fixed := u.version(t, "v4")
	checkEvent(t, ev.next(t), fixed, true)
	checkCurrent(t, f, "v4", fixed)
	if st := f.Status(); st.LastError != "" || st.LastTried.Hash != fixed {
		t.Fatalf("Status() = tried %s, error %q; want tried %s, no error", st.LastTried.Short(), st.LastError, fixed[:12])
	}
}

func TestFollowLocal(t *testing.T) {
	tests := []struct {
		name   string
		source func(dir string) string
	}{
		{"local-path", func(dir string) string { return dir }},
		{"file-url", func(dir string) string { return (&url.URL{Scheme: "file", Path: dir}).String() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, "main")
			followScenario(t, u, tt.source(u.dir), nil, nil)
		})
	}
}

func TestStatusAndCommit(t *testing.T) {
	u := newUpstream(t, "main")
	h := u.commit(t, "add version\n\nlonger body", map[string]string{"version.txt": "v1"})
	f, _ := mustStart(t, Options{Source: u.dir, Interval: time.Hour})
	st := f.Status()
	want := Commit{Hash: h, Author: "Alice <alice@example.com>", Subject: "add version"}
	got := st.Live
	got.Time = time.Time{}
	if got != want {
		t.Fatalf("Status().Live = %+v; want %+v", got, want)
	}
	if st.Live.Time.IsZero() || st.LiveSince.IsZero() || st.LastFetchAt.IsZero() {
		t.Fatalf("Status() times = commit %v, live since %v, fetched %v; want all set", st.Live.Time, st.LiveSince, st.LastFetchAt)
	}
	if st.Source != u.dir || st.Branch != "main" || st.LastError != "" {
		t.Fatalf("Status() = source %q, branch %q, error %q; want %q, main, none", st.Source, st.Branch, st.LastError, u.dir)
	}
}

func TestReload(t *testing.T) {
	u := newUpstream(t, "main")
	u.version(t, "v1")
	// An hour-long interval: only Reload can bring the next commits in.
	f, ev := mustStart(t, Options{Source: u.dir, Interval: time.Hour})
	ev.next(t)

	second := u.version(t, "v2")
	f.Reload()
	checkEvent(t, ev.next(t), second, true)
	checkCurrent(t, f, "v2", second)

	broken := u.version(t, "broken")
	f.Reload()
	checkEvent(t, ev.next(t), broken, false)
	// An explicit reload tries a failed tip again.
	f.Reload()
	checkEvent(t, ev.next(t), broken, false)
	checkCurrent(t, f, "v2", second)
}

func TestStartErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) Options
		want  []string
	}{
		{"missing-path", func(t *testing.T) Options {
			return Options{Source: filepath.Join(t.TempDir(), "nope")}
		}, []string{"nope", "check"}},
		{"missing-branch", func(t *testing.T) Options {
			u := newUpstream(t, "main")
			u.version(t, "v1")
			return Options{Source: u.dir, Branch: "prod"}
		}, []string{`branch "prod" does not exist`}},
		{"empty-repository", func(t *testing.T) Options {
			return Options{Source: newUpstream(t, "main").dir}
		}, []string{"repository is empty", "gatectl policy init"}},
		{"broken-first-commit", func(t *testing.T) Options {
			u := newUpstream(t, "main")
			u.version(t, "broken")
			return Options{Source: u.dir}
		}, []string{"does not load", "marked broken", "gatectl policy check"}},
		{"no-source", func(t *testing.T) Options { return Options{} }, []string{"no policy source"}},
		{"bad-branch", func(t *testing.T) Options {
			return Options{Source: t.TempDir(), Branch: "main:refs/heads/x"}
		}, []string{"not a valid branch name"}},
		{"clone-dir-in-use", func(t *testing.T) Options {
			u := newUpstream(t, "main")
			u.version(t, "v1")
			return Options{Source: u.dir, Dir: u.dir + "/.."}
		}, []string{"not empty and not a git repository"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, err := startFollower(t, tt.setup(t))
			if err == nil {
				t.Fatal("Start() = nil; want an error")
			}
			t.Logf("Start() error: %v", err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Start() = %q; want it to contain %q", err, w)
				}
			}
			if _, _, ok := f.Current(); ok {
				t.Error("Current() ok = true after a failed Start; want false")
			}
		})
	}
}

func TestUnreachableAfterStartKeepsLastGood(t *testing.T) {
	u := newUpstream(t, "main")
	first := u.version(t, "v1")
	f, ev := mustStart(t, Options{Source: u.dir, Interval: time.Hour})
	ev.next(t)
	moved := u.dir + "-moved"
	rename(t, u.dir, moved)
	f.Reload()
	st := waitStatus(t, f, func(s Status) bool { return s.LastError != "" })
	if !strings.Contains(st.LastError, "fetch policy") {
		t.Fatalf("Status().LastError = %q; want a fetch error", st.LastError)
	}
	// The failure is an event (which the gateway audits), once.
	if e := ev.next(t); e.Kind != EventPolicyFetch || e.OK || e.Err == nil {
		t.Errorf("event %+v, want a failed %s", e, EventPolicyFetch)
	}
	checkCurrent(t, f, "v1", first)

	rename(t, moved, u.dir)
	second := u.version(t, "v2")
	f.Reload()
	if e := ev.next(t); e.Kind != EventPolicyFetch || !e.OK {
		t.Errorf("event %+v, want %s working again", e, EventPolicyFetch)
	}
	checkEvent(t, ev.next(t), second, true)
	if st := f.Status(); st.LastError != "" {
		t.Fatalf("Status().LastError = %q after recovery; want none", st.LastError)
	}
}

func TestRestart(t *testing.T) {
	tests := []struct {
		name string
		// between runs, given the upstream; returns the second run's source
		between  func(t *testing.T, u *upstream) string
		wantErr  string // in Status().LastError of the second run
		tipTried bool   // the second run tries the tip before falling back
	}{
		{"source-unreachable", func(t *testing.T, u *upstream) string {
			rename(t, u.dir, u.dir+"-gone")
			return u.dir
		}, "fetch policy", false},
		{"tip-broken", func(t *testing.T, u *upstream) string {
			u.version(t, "broken")
			return u.dir
		}, "marked broken", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, "main")
			first := u.version(t, "v1")
			dir := filepath.Join(t.TempDir(), "clone")
			runOnce(t, Options{Source: u.dir, Dir: dir})

			source := tt.between(t, u)
			f, ev := mustStart(t, Options{Source: source, Dir: dir, Interval: time.Hour})
			if tt.tipTried {
				if got := ev.next(t); got.OK {
					t.Fatalf("first event OK for %s; want the broken tip refused", got.Commit.Short())
				}
			} else if got := ev.next(t); got.Kind != EventPolicyFetch || got.OK {
				t.Fatalf("first event %+v; want the failed fetch", got)
			}
			checkEvent(t, ev.next(t), first, true)
			checkCurrent(t, f, "v1", first)
			if st := f.Status(); !strings.Contains(st.LastError, tt.wantErr) {
				t.Fatalf("Status().LastError = %q; want it to contain %q", st.LastError, tt.wantErr)
			}
		})
	}
}

// A clone that followed another source must not come up on that source's
// policy: fail closed.
func TestRestartOtherSourceForgetsLive(t *testing.T) {
	u := newUpstream(t, "main")
	u.version(t, "v1")
	dir := filepath.Join(t.TempDir(), "clone")
	runOnce(t, Options{Source: u.dir, Dir: dir})

	other := filepath.Join(t.TempDir(), "other")
	if _, _, err := startFollower(t, Options{Source: other, Dir: dir}); err == nil {
		t.Fatal("Start() with another, unreachable source = nil; want an error")
	}
	// Nor when going back to the first source while it is unreachable.
	rename(t, u.dir, u.dir+"-gone")
	if _, _, err := startFollower(t, Options{Source: u.dir, Dir: dir}); err == nil {
		t.Fatal("Start() after a source change = nil; want an error")
	}
}

func TestLoaderPanicIsALoadError(t *testing.T) {
	u := newUpstream(t, "main")
	u.version(t, "v1")
	f := NewFollower(Options{Source: u.dir, Dir: t.TempDir() + "/clone", Logger: testLogger(t)},
		func(fsys fs.FS, c Commit) (int, error) { panic("boom") }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-f.Done() }()
	err := f.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "panicked: boom") {
		t.Fatalf("Start() = %v; want the loader's panic as an error", err)
	}
}

func TestStartTwice(t *testing.T) {
	u := newUpstream(t, "main")
	u.version(t, "v1")
	f, _ := mustStart(t, Options{Source: u.dir})
	if err := f.Start(context.Background()); err == nil {
		t.Fatal("second Start() = nil; want an error")
	}
}

// runOnce starts a follower and stops it again, leaving its clone behind.
func runOnce(t *testing.T, opts Options) {
	t.Helper()
	opts.Logger = testLogger(t)
	f := NewFollower(opts, versionLoader, nil)
	ctx, cancel := context.WithCancel(context.Background())
	if err := f.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	cancel()
	<-f.Done()
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// waitStatus polls Status until cond holds.
func waitStatus(t *testing.T, f *Follower[string], cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		st := f.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status condition not met within %s; last %+v", waitLimit, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A commit that does not descend from the live one (a rollback or a
// force-push) goes live, and its event names the commit it replaced.
func TestHistoryRewritten(t *testing.T) {
	tests := []struct {
		name string
		// change moves the branch, given the commits v1 and v2 (live); it
		// returns the new tip and the replaced commit it must report.
		change       func(t *testing.T, u *upstream, v1, v2 string) (tip, replaced string)
		restartFirst bool // the change happens while the gateway is down
	}{
		{"fast-forward", func(t *testing.T, u *upstream, v1, v2 string) (string, string) {
			return u.version(t, "v3"), ""
		}, false},
		{"rollback", func(t *testing.T, u *upstream, v1, v2 string) (string, string) {
			u.git(t, "-C", u.dir, "reset", "--quiet", "--hard", v1)
			return v1, v2
		}, false},
		{"force-push", func(t *testing.T, u *upstream, v1, v2 string) (string, string) {
			u.git(t, "-C", u.dir, "commit", "--quiet", "--amend", "-m", "set version v2, amended")
			return u.git(t, "-C", u.dir, "rev-parse", "HEAD"), v2
		}, false},
		{"force-push-while-down", func(t *testing.T, u *upstream, v1, v2 string) (string, string) {
			u.git(t, "-C", u.dir, "commit", "--quiet", "--amend", "-m", "set version v2, amended")
			return u.git(t, "-C", u.dir, "rev-parse", "HEAD"), v2
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, "main")
			v1 := u.version(t, "v1")
			opts := Options{Source: u.dir, Dir: filepath.Join(t.TempDir(), "clone"), Interval: time.Hour}
			var f *Follower[string]
			var ev events
			var v2 string
			if tt.restartFirst {
				runOnce(t, opts)
				v2 = u.version(t, "v2")
				runOnce(t, opts)
			} else {
				f, ev = mustStart(t, opts)
				ev.next(t)
				v2 = u.version(t, "v2")
				f.Reload()
				if e := ev.next(t); !e.Replaced.IsZero() {
					t.Fatalf("event for a fast-forward replaced %s; want none", e.Replaced.Short())
				}
			}
			tip, replaced := tt.change(t, u, v1, v2)
			if tt.restartFirst {
				_, ev = mustStart(t, opts)
			} else {
				f.Reload()
			}
			e := ev.next(t)
			checkEvent(t, e, tip, true)
			if e.Replaced.Hash != replaced {
				t.Fatalf("event Replaced = %q; want %q", e.Replaced.Short(), replaced)
			}
		})
	}
}
