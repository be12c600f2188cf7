package repo

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitLimit only keeps a hung test from running forever; no assertion
// depends on timing.
const waitLimit = 60 * time.Second

// versionLoader is the tests' policy: the trimmed content of version.txt,
// refused when it contains "broken".
func versionLoader(fsys fs.FS, _ Commit) (string, error) {
	b, err := fs.ReadFile(fsys, "version.txt")
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if strings.Contains(v, "broken") {
		return "", errors.New("version.txt: marked broken")
	}
	return v, nil
}

// upstream is a non-bare repository the tests commit to with the git CLI,
// which updates refs atomically as a real policy repository's server does.
type upstream struct {
	dir string
}

func newUpstream(t *testing.T, branch string) *upstream {
	t.Helper()
	u := &upstream{dir: filepath.Join(t.TempDir(), "policy")}
	u.git(t, "init", "--quiet", "--initial-branch", branch, u.dir)
	return u
}

// git runs the git CLI isolated from the user's configuration.
func (u *upstream) git(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Alice", "GIT_AUTHOR_EMAIL=alice@example.com",
		"GIT_COMMITTER_NAME=Alice", "GIT_COMMITTER_EMAIL=alice@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (path → content) and commits them; it returns the hash.
func (u *upstream) commit(t *testing.T, subject string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(u.dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	u.git(t, "-C", u.dir, "add", "--all")
	u.git(t, "-C", u.dir, "commit", "--quiet", "--allow-empty", "-m", subject)
	return u.git(t, "-C", u.dir, "rev-parse", "HEAD")
}

// version commits version.txt = v.
func (u *upstream) version(t *testing.T, v string) string {
	t.Helper()
	return u.commit(t, "set version "+v, map[string]string{"version.txt": v + "\n"})
}

// events collects a follower's events.
type events chan Event

func (e events) record(ev Event) { e <- ev }

// next returns the next event, failing the test if none comes.
func (e events) next(t *testing.T) Event {
	t.Helper()
	select {
	case ev := <-e:
		return ev
	case <-time.After(waitLimit):
		t.Fatalf("no policy event within %s", waitLimit)
		return Event{}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startFollower starts a follower and stops it when the test ends.
func startFollower(t *testing.T, opts Options) (*Follower[string], events, error) {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = filepath.Join(t.TempDir(), "clone")
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	ev := make(events, 64)
	f := NewFollower(opts, versionLoader, ev.record)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		<-f.Done()
	})
	return f, ev, f.Start(ctx)
}

func mustStart(t *testing.T, opts Options) (*Follower[string], events) {
	t.Helper()
	f, ev, err := startFollower(t, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return f, ev
}

// checkCurrent fails unless the live policy is want from commit hash.
func checkCurrent(t *testing.T, f *Follower[string], want, hash string) {
	t.Helper()
	got, c, ok := f.Current()
	if !ok || got != want || c.Hash != hash {
		t.Fatalf("Current() = %q, %s, %v; want %q, %s, true", got, c.Short(), ok, want, hash[:12])
	}
}

// checkEvent fails unless ev reports commit hash with the given outcome.
func checkEvent(t *testing.T, ev Event, hash string, ok bool) {
	t.Helper()
	if ev.Kind != EventPolicyLoad || ev.Commit.Hash != hash || ev.OK != ok || (ev.Err == nil) != ok {
		t.Fatalf("event = {%s %s ok=%v err=%v}; want {%s %s ok=%v}", ev.Kind, ev.Commit.Short(), ev.OK, ev.Err, EventPolicyLoad, hash[:12], ok)
	}
}
