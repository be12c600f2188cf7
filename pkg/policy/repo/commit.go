package repo

import (
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/gatectl/gatectl/pkg/shown"
)

// Commit identifies a policy commit. The zero Commit means "none".
type Commit struct {
	// Hash is the full hex object name.
	Hash string
	// Time is the committer time: when the commit was made on the branch
	// (for a merge, when it was merged), which is what review clocks use.
	Time time.Time
	// Author is "Name <email>".
	Author string
	// Subject is the first line of the commit message.
	Subject string
}

// Short returns the abbreviated hash used in logs and messages.
func (c Commit) Short() string {
	if len(c.Hash) > 12 {
		return c.Hash[:12]
	}
	return c.Hash
}

// IsZero reports whether c names no commit.
func (c Commit) IsZero() bool { return c.Hash == "" }

// maxShownCommitText bounds a commit's subject and author as the gateway
// shows them (logs, policy status, load errors, audit events).
const maxShownCommitText = 200

func newCommit(c *object.Commit) Commit {
	subject, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
	// Whoever commits writes these: bounded and escaped, a subject can
	// neither flood an error nor forge a line where it is printed.
	return Commit{
		Hash:    c.Hash.String(),
		Time:    c.Committer.When,
		Author:  shown.Cut(c.Author.Name+" <"+c.Author.Email+">", maxShownCommitText),
		Subject: shown.Cut(strings.TrimSpace(subject), maxShownCommitText),
	}
}
