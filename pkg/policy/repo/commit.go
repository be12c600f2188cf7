package repo

import (
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/object"
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

func newCommit(c *object.Commit) Commit {
	subject, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
	return Commit{
		Hash:    c.Hash.String(),
		Time:    c.Committer.When,
		Author:  c.Author.Name + " <" + c.Author.Email + ">",
		Subject: strings.TrimSpace(subject),
	}
}
