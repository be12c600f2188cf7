package repo

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// headFS returns the files of u's HEAD commit through treeFS.
func headFS(t *testing.T, u *upstream) *treeFS {
	t.Helper()
	r, err := git.PlainOpen(u.dir)
	if err != nil {
		t.Fatal(err)
	}
	c := &clone{repo: r}
	_, fsys, err := c.read(plumbing.NewHash(u.git(t, "-C", u.dir, "rev-parse", "HEAD")))
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

func TestTreeFS(t *testing.T) {
	u := newUpstream(t, "main")
	files := map[string]string{
		"gatectl.toml":                 "[access]\n",
		"a.b":                          "sorted before the directory a in git",
		"a/x.toml":                     "x",
		"a/b/c.toml":                   "deep",
		".github/workflows/policy.yml": "on: pull_request\n",
	}
	u.commit(t, "files", files)
	fsys := headFS(t, u)
	var names []string
	for name := range files {
		names = append(names, name)
	}
	if err := fstest.TestFS(fsys, names...); err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := fs.ReadFile(fsys, name)
		if err != nil || string(got) != want {
			t.Errorf("ReadFile(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
}

func TestTreeFSRefuses(t *testing.T) {
	u := newUpstream(t, "main")
	u.commit(t, "files", map[string]string{"real.toml": "x", "dir/f.toml": "y"})
	if err := os.Symlink("/etc/passwd", filepath.Join(u.dir, "link.toml")); err != nil {
		t.Fatal(err)
	}
	u.commit(t, "add a symlink", nil)
	fsys := headFS(t, u)
	tests := []struct {
		name string
		path string
		want error
	}{
		{"symlink", "link.toml", errUnsupportedEntry},
		{"missing", "missing.toml", fs.ErrNotExist},
		{"file-as-dir", "real.toml/x", fs.ErrNotExist},
		{"missing-in-dir", "dir/missing", fs.ErrNotExist},
		{"dot-dot", "../real.toml", fs.ErrInvalid},
		{"absolute", "/real.toml", fs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fsys.Open(tt.path)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open(%q) = %v; want %v", tt.path, err, tt.want)
			}
		})
	}
}

func TestTreeFSModTime(t *testing.T) {
	u := newUpstream(t, "main")
	u.commit(t, "files", map[string]string{"f.toml": "x"})
	fsys := headFS(t, u)
	info, err := fs.Stat(fsys, "f.toml")
	if err != nil {
		t.Fatal(err)
	}
	secs, err := strconv.ParseInt(u.git(t, "-C", u.dir, "log", "-1", "--format=%ct"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.ModTime(), time.Unix(secs, 0); !got.Equal(want) {
		t.Fatalf("ModTime() = %v; want the commit time %v", got, want)
	}
}
