package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
)

// TestDocsUpToDate checks that the checked-in completions and man pages are
// what the binary generates: run `make docs` after changing a command.
func TestDocsUpToDate(t *testing.T) {
	root := filepath.Join("..", "..")
	for shell, file := range map[string]string{"bash": "gatectl.bash", "zsh": "_gatectl", "fish": "gatectl.fish"} {
		var out bytes.Buffer
		if code := Run(context.Background(), cmdutil.Test(nil, &out, &out), []string{"completion", shell}); code != 0 {
			t.Fatalf("completion %s: exit %d: %s", shell, code, out.String())
		}
		want, err := os.ReadFile(filepath.Join(root, "completions", file))
		if err != nil {
			t.Fatal(err)
		}
		if out.String() != string(want) {
			t.Errorf("completions/%s is out of date: run `make docs`", file)
		}
	}

	dir := t.TempDir()
	var errOut bytes.Buffer
	if code := Run(context.Background(), cmdutil.Test(nil, &errOut, &errOut), []string{"man", dir}); code != 0 {
		t.Fatalf("man: exit %d: %s", code, errOut.String())
	}
	got, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	have, _ := filepath.Glob(filepath.Join(root, "man", "*.1"))
	if len(got) != len(have) {
		t.Errorf("man/ has %d pages, the binary makes %d: run `make docs`", len(have), len(got))
	}
	for _, g := range got {
		want, err := os.ReadFile(filepath.Join(root, "man", filepath.Base(g)))
		if err != nil {
			t.Errorf("man/%s is missing: run `make docs`", filepath.Base(g))
			continue
		}
		b, _ := os.ReadFile(g)
		if withoutDate(string(b)) != withoutDate(string(want)) {
			t.Errorf("man/%s is out of date: run `make docs`", filepath.Base(g))
		}
	}
}

// withoutDate drops the .TH line, which carries the month of generation.
func withoutDate(page string) string {
	var keep []string
	for _, l := range strings.Split(page, "\n") {
		if !strings.HasPrefix(l, ".TH ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
