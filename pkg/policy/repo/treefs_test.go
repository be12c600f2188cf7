package repo

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/gatectl/gatectl/pkg/policy"
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

// TestTreeFSLimits: what one commit may make the loader read is bounded in
// bytes and in files, whatever the loader asks for.
func TestTreeFSLimits(t *testing.T) {
	u := newUpstream(t, "main")
	u.commit(t, "files", map[string]string{
		"a.toml": "0123456789", "b.toml": "0123456789", "c.toml": "0123456789",
		"dir/x": "", "dir/y": "", "dir/z": "",
	})
	tests := []struct {
		name   string
		limits treeLimits
		read   []string
		want   string // the error of the last read
	}{
		{"file-size", treeLimits{fileSize: 9, totalSize: 100, files: 10}, []string{"a.toml"},
			"open a.toml: file is 10 bytes, more than the 9 a file in a policy commit may have"},
		{"total-size", treeLimits{fileSize: 10, totalSize: 25, files: 10}, []string{"a.toml", "b.toml", "c.toml"},
			"open c.toml: reading this file takes the commit past 25 bytes, the most that is read from one policy commit"},
		{"files", treeLimits{fileSize: 10, totalSize: 100, files: 2}, []string{"a.toml", "a.toml", "b.toml"},
			"open b.toml: more than 2 files would be read from this commit, the most that is read from one policy commit"},
		{"directory-entries", treeLimits{fileSize: 10, totalSize: 100, files: 2}, []string{"dir/"},
			"open dir: directory has 3 entries, more than the 2 files a policy commit may have"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := headFS(t, u)
			fsys.limits = tt.limits
			var err error
			for i, name := range tt.read {
				if dir, ok := strings.CutSuffix(name, "/"); ok {
					_, err = fs.ReadDir(fsys, dir)
				} else {
					_, err = fs.ReadFile(fsys, name)
				}
				if i < len(tt.read)-1 && err != nil {
					t.Fatalf("read %s: %v", name, err)
				}
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
		})
	}
}

// TestTreeFSLstat: Lstat and ReadLink describe a symbolic link without
// following it, so that the loader can refuse it by name.
func TestTreeFSLstat(t *testing.T) {
	u := newUpstream(t, "main")
	u.commit(t, "files", map[string]string{"shared/safety.toml": "x", "f.toml": "abc"})
	if err := os.Symlink("shared", filepath.Join(u.dir, "rules")); err != nil {
		t.Fatal(err)
	}
	u.commit(t, "link rules", nil)
	fsys := headFS(t, u)
	info, err := fs.Lstat(fsys, "rules")
	if err != nil || info.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("Lstat(rules) = %v, %v; want a symbolic link", info, err)
	}
	if target, err := fs.ReadLink(fsys, "rules"); err != nil || target != "shared" {
		t.Errorf("ReadLink(rules) = %q, %v; want shared", target, err)
	}
	if info, err := fs.Lstat(fsys, "f.toml"); err != nil || !info.Mode().IsRegular() || info.Size() != 3 {
		t.Errorf("Lstat(f.toml) = %v, %v; want a regular file of 3 bytes", info, err)
	}
	if _, err := fs.ReadDir(fsys, "rules"); !errors.Is(err, errUnsupportedEntry) {
		t.Errorf("ReadDir(rules) = %v; want %v", err, errUnsupportedEntry)
	}
}

// TestLoadRefusesSymlinkedRules: a commit whose rules/ is a symbolic link to
// a directory of rules is refused. The tree cannot be read through the link,
// and the loader used to take that for an empty rules/ and make the commit
// live without any rules, while `gatectl policy check` on a checkout
// followed the link and passed.
func TestLoadRefusesSymlinkedRules(t *testing.T) {
	u := newUpstream(t, "main")
	u.commit(t, "policy", map[string]string{
		"identity.toml":       "[[issuer]]\nname = \"dev\"\naudience = \"gatectl\"\n",
		"targets/orders.toml": "kind = \"postgres\"\naddress = \"127.0.0.1:5432\"\ndatabase = \"orders\"\n[credentials.read]\nuser = \"ro\"\npassword = \"env:RO\"\n",
		"shared/safety.toml":  "[[deny]]\nid = \"no-drop\"\ntargets = [\"*\"]\nstatements = [\"DROP\"]\nmessage = \"no\"\n",
	})
	if err := os.Symlink("shared", filepath.Join(u.dir, "rules")); err != nil {
		t.Fatal(err)
	}
	u.commit(t, "link rules", nil)
	_, err := policy.Load(headFS(t, u))
	if want := "rules: is a symbolic link; policy directories must be real directories in the repository"; err == nil || err.Error() != want {
		t.Fatalf("Load: got %v, want %s", err, want)
	}
}
