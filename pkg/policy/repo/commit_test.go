package repo

import (
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/object"
)

// TestCommitTextIsBoundedAndEscaped: a commit's subject and author are
// written by whoever commits; as the gateway shows them they are cut and
// have their control characters escaped.
func TestCommitTextIsBoundedAndEscaped(t *testing.T) {
	c := newCommit(&object.Commit{
		Message: strings.Repeat("x", 5000) + "\x1b[2K\nbody",
		Author:  object.Signature{Name: "eve\x1b]0;pwned\x07", Email: "eve@example.com", When: time.Now()},
	})
	if len(c.Subject) > maxShownCommitText || !strings.HasSuffix(c.Subject, "…") {
		t.Errorf("subject of %d bytes (%q…), want at most %d, cut", len(c.Subject), c.Subject[:20], maxShownCommitText)
	}
	if strings.ContainsAny(c.Author, "\x1b\x07") || !strings.Contains(c.Author, `eve\x1b]0;pwned\a`) {
		t.Errorf("author = %q, want its control characters escaped", c.Author)
	}
}
