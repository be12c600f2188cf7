package repo

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

var template = fstest.MapFS{
	"version.txt":                  {Data: []byte("v1\n")},
	"gatectl.toml":                 {Data: []byte("[reviews]\nevery = \"90d\"\n")},
	"targets/orders.toml":          {Data: []byte("kind = \"postgres\"\n")},
	".github/workflows/policy.yml": {Data: []byte("on: pull_request\n")},
}

func TestInit(t *testing.T) {
	tests := []struct {
		name   string
		dir    func(t *testing.T) string
		branch string
	}{
		{"new-dir-main", func(t *testing.T) string { return filepath.Join(t.TempDir(), "policy") }, ""},
		{"empty-dir", func(t *testing.T) string { return t.TempDir() }, "main"},
		{"other-branch", func(t *testing.T) string { return filepath.Join(t.TempDir(), "policy") }, "prod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir(t)
			c, err := Init(dir, template, tt.branch)
			if err != nil {
				t.Fatalf("Init: %v", err)
			}
			if got, want := c.Author, "gatectl <gatectl@localhost>"; got != want {
				t.Errorf("author = %q; want %q", got, want)
			}
			// The repository is followable on its branch and holds the template.
			f, _ := mustStart(t, Options{Source: dir, Branch: tt.branch, Interval: time.Hour})
			checkCurrent(t, f, "v1", c.Hash)
			u := &upstream{dir: dir}
			if got := u.git(t, "-C", dir, "status", "--porcelain"); got != "" {
				t.Errorf("git status after Init = %q; want a clean tree", got)
			}
			files := u.git(t, "-C", dir, "ls-files")
			for name := range template {
				if !strings.Contains(files, name) {
					t.Errorf("git ls-files = %q; want it to list %s", files, name)
				}
			}
		})
	}
}

func TestInitRefuses(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T) string
		branch string
		want   string
	}{
		{"non-empty-dir", func(t *testing.T) string {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "", "pick a new or empty directory"},
		{"existing-repo", func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "policy")
			if _, err := Init(dir, template, ""); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "", "not empty"},
		{"bad-branch", func(t *testing.T) string { return filepath.Join(t.TempDir(), "policy") }, "a..b", "not a valid branch name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.setup(t)
			before := listDir(t, dir)
			_, err := Init(dir, template, tt.branch)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Init() = %v; want an error containing %q", err, tt.want)
			}
			if got := listDir(t, dir); got != before {
				t.Fatalf("Init changed %s: got %q, want %q", dir, got, before)
			}
		})
	}
}

// listDir returns the names and sizes under dir, "" if it does not exist.
func listDir(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b.WriteString(p + " " + info.ModTime().String() + "\n")
		return nil
	})
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
