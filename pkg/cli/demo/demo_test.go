package demo

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEShowsTheWalkthrough: README.md's quick tour says `make demo`
// prints its commands, so every line the walkthrough asks the user to run
// must be in README.md as it is printed.
func TestREADMEShowsTheWalkthrough(t *testing.T) {
	var out strings.Builder
	err := walkthrough.Execute(&out, walkthroughData{
		API: "https://127.0.0.1:8443", CA: "<printed path>/ca.pem", PGHost: "127.0.0.1", PGPort: "15432",
		Upstream: "127.0.0.1:5432", Policy: "/tmp/policy",
	})
	if err != nil {
		t.Fatal(err)
	}
	_, tour, ok := strings.Cut(out.String(), "Try this in another terminal:\n")
	tour, _, ok2 := strings.Cut(tour, "Press Ctrl-C")
	if !ok || !ok2 {
		t.Fatalf("the walkthrough lost its markers:\n%s", out.String())
	}
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(readme), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	n := 0
	for _, l := range strings.Split(tour, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			n++
			if !have[l] {
				t.Errorf("README.md's quick tour lacks the walkthrough line\n\t%s", l)
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d walkthrough lines; the markers moved?", n)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/work/main/bin": "/work/main/bin",
		"/home/a b/bin":  "'/home/a b/bin'",
		"/x/it's/bin":    `'/x/it'\''s/bin'`,
		"/tmp/$HOME/bin": "'/tmp/$HOME/bin'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
