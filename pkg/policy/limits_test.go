package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// loadProblems loads fsys and returns its problems, failing the test if it
// loads.
func loadProblems(t *testing.T, fsys fs.FS) *LoadError {
	t.Helper()
	_, err := Load(fsys)
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("Load: got %v, want a *LoadError", err)
	}
	return le
}

// TestLoadSizeLimits: a commit of a few large files, or of very many small
// ones, is refused before it is decoded, with a message naming the limit.
func TestLoadSizeLimits(t *testing.T) {
	grants := func(n, size int) fstest.MapFS {
		fsys := mapFS(baseFiles())
		for i := range n {
			fsys[fmt.Sprintf("grants/g%04d.toml", i)] = &fstest.MapFile{Data: []byte(strings.Repeat("#", size))}
		}
		return fsys
	}
	tests := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"file-too-large", grants(1, maxFileSize+1), fmt.Sprintf("grants/g0000.toml: the file is %d bytes, more than the %d a policy file may have", maxFileSize+1, maxFileSize)},
		// baseFiles has a few hundred bytes besides, and three files in the directories.
		{"total-too-large", grants(maxTotalSize/maxFileSize, maxFileSize), fmt.Sprintf("grants/g%04d.toml: with this file the policy files come to more than %d bytes", maxTotalSize/maxFileSize-1, maxTotalSize)},
		{"too-many-files", grants(maxFiles-2, 0), fmt.Sprintf(".: the policy has %d files in targets/, grants/, rules/ and tests/, more than the %d", maxFiles+1, maxFiles)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			le := loadProblems(t, tt.fsys)
			if got := le.Error(); !strings.HasPrefix(got, tt.want) || le.Count() != 1 {
				t.Errorf("got %d problem(s):\n%.500s\nwant one: %s", le.Count(), got, tt.want)
			}
		})
	}
	// Up to the limits the policy loads.
	for name, fsys := range map[string]fstest.MapFS{
		"files-of-max-size": grants(maxTotalSize/maxFileSize-1, maxFileSize),
		"max-files":         grants(maxFiles-3, 0),
	} {
		if _, err := Load(fsys); err != nil {
			t.Errorf("Load %s: %.500v", name, err)
		}
	}
}

// TestLoadErrorBounds: a commit with a huge number of problems, or with
// problems about huge keys, gives an error of bounded size, and file names
// cannot put control characters on a terminal or in a log.
func TestLoadErrorBounds(t *testing.T) {
	t.Run("many-problems", func(t *testing.T) {
		files := baseFiles()
		var src strings.Builder
		for i := range maxKeptProblems + 500 {
			fmt.Fprintf(&src, "k%d = 1\n", i)
		}
		files["gatectl.toml"] = src.String()
		le := loadProblems(t, mapFS(files))
		if got, want := le.Count(), maxKeptProblems+500; got != want {
			t.Errorf("Count: got %d, want %d", got, want)
		}
		if got := len(le.Problems); got > maxKeptProblems {
			t.Errorf("kept %d problems, want at most %d", got, maxKeptProblems)
		}
		lines := strings.Split(le.Error(), "\n")
		if got, want := len(lines), MaxListedProblems+1; got != want {
			t.Fatalf("Error: got %d lines, want %d", got, want)
		}
		if got, want := lines[0], `gatectl.toml:1: unknown key "k0"`; got != want {
			t.Errorf("first line: got %q, want %q", got, want)
		}
		if got, want := lines[MaxListedProblems], fmt.Sprintf("and %d more problems", maxKeptProblems+500-MaxListedProblems); got != want {
			t.Errorf("last line: got %q, want %q", got, want)
		}
	})
	t.Run("long-message", func(t *testing.T) {
		files := baseFiles()
		files["gatectl.toml"] = strings.Repeat("k", 100_000) + " = 1\n"
		le := loadProblems(t, mapFS(files))
		msg := le.Problems[0].Msg
		if len(msg) > maxProblemLen || !strings.HasPrefix(msg, `unknown key "kkk`) || !strings.HasSuffix(msg, "…") {
			t.Errorf("message of %d bytes: %.100q…; want at most %d bytes, cut with …", len(msg), msg, maxProblemLen)
		}
	})
	t.Run("control-characters", func(t *testing.T) {
		files := baseFiles()
		files["grants/\x1b[2J\nfake.toml"] = "x = 1\n"
		files["grants/\xff.toml"] = "y = 1\n"
		got := loadProblems(t, mapFS(files)).Error()
		// fs.FS paths must be UTF-8: the second file cannot be read.
		want := "grants/\\x1b[2J\\nfake.toml:1: unknown key \"x\"\ngrants/\\xff.toml: file name is not valid UTF-8; rename the file: policy file names must be UTF-8"
		if got != want {
			t.Errorf("got:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("long-file-name", func(t *testing.T) {
		files := baseFiles()
		files["grants/"+strings.Repeat("g", 1000)+".toml"] = "x = 1\n"
		got := loadProblems(t, mapFS(files)).Problems[0].Pos.String()
		if len(got) > maxShownNameLen+len(":1") || !strings.HasPrefix(got, "grants/ggg") {
			t.Errorf("position of %d bytes: %.100s…; want at most %d", len(got), got, maxShownNameLen)
		}
	})
}

// TestLoadRefusesSymlinks: a policy directory or file that is a symbolic
// link is a problem. On the gateway the git tree cannot be read through the
// link, and skipping it used to load the commit without those rules while
// `gatectl policy check` (on a checkout, where the link is followed) saw
// them: CI passed a policy the gateway applied differently.
func TestLoadRefusesSymlinks(t *testing.T) {
	rules := baseFiles()["rules/safety.toml"]
	tests := []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"rules-dir", fstest.MapFS{
			"rules":              {Mode: fs.ModeSymlink, Data: []byte("shared")},
			"shared/safety.toml": {Data: []byte(rules)},
		}, "rules: is a symbolic link; policy directories must be real directories in the repository"},
		{"rules-file", fstest.MapFS{
			"rules/safety.toml":  {Mode: fs.ModeSymlink, Data: []byte("../shared/safety.toml")},
			"shared/safety.toml": {Data: []byte(rules)},
		}, "rules/safety.toml: is a symbolic link; policy files must be real files in the repository"},
		{"settings-file", fstest.MapFS{
			"rules/safety.toml":   {Data: []byte(rules)},
			"gatectl.toml":        {Mode: fs.ModeSymlink, Data: []byte("shared/gatectl.toml")},
			"shared/gatectl.toml": {Data: []byte("")},
		}, "gatectl.toml: is a symbolic link; policy files must be real files in the repository"},
		{"rules-is-a-file", fstest.MapFS{
			"rules": {Data: []byte(rules)},
		}, "rules: is not a directory; policy files go in rules/*.toml"},
		{"rules-file-is-a-dir", fstest.MapFS{
			"rules/safety.toml/x": {Data: []byte(rules)},
		}, "rules/safety.toml: is not a regular file; policy files must be real files in the repository"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := mapFS(baseFiles())
			delete(fsys, "rules/safety.toml")
			for name, f := range tt.files {
				fsys[name] = f
			}
			if got := loadProblems(t, fsys).Error(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// brokenDirFS fails to list one directory with an error other than "does
// not exist".
type brokenDirFS struct {
	fstest.MapFS
	dir string
}

func (b brokenDirFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if name == b.dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrPermission}
	}
	return b.MapFS.ReadDir(name)
}

// TestLoadRefusesUnlistableDirectory: a directory that exists but cannot be
// listed is a problem, not an empty directory (fail closed).
func TestLoadRefusesUnlistableDirectory(t *testing.T) {
	le := loadProblems(t, brokenDirFS{mapFS(baseFiles()), "rules"})
	if got, want := le.Error(), "rules: cannot read the directory: readdir rules: permission denied"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
