package policy

import (
	"fmt"
	"strings"

	"github.com/gatectl/gatectl/pkg/shown"
)

// Bounds on what a failed load reports. A broken commit can have millions of
// problems (one per unknown key), and the error's text travels to the
// gateway's log, audit events and `gatectl policy status`.
const (
	// MaxListedProblems is how many problems LoadError's message lists
	// before it only counts the rest.
	MaxListedProblems = 50
	// maxKeptProblems is how many problems one load keeps; beyond it they
	// are only counted.
	maxKeptProblems = 1000
	// maxProblemLen bounds the bytes of one problem's message; the fixed
	// text of any message is well under it, the rest is quoted input.
	maxProblemLen = 512
	// maxShownNameLen bounds the bytes of a file name in a message.
	maxShownNameLen = 256
)

// Problem is one thing wrong with a policy, at the place it is written.
type Problem struct {
	Pos Pos
	Msg string
}

func (p Problem) String() string { return p.Pos.String() + ": " + p.Msg }

// LoadError is every problem found while loading a policy. Load reports all
// of them at once so that one `gatectl policy check` run shows everything to
// fix.
type LoadError struct {
	// Problems are the problems found, sorted by file and line: the first
	// 1000 found, which is plenty to fix before loading again.
	Problems []Problem
	// Omitted counts the problems found beyond those in Problems.
	Omitted int
}

// Count is the number of problems found.
func (e *LoadError) Count() int { return len(e.Problems) + e.Omitted }

// Listed returns the first MaxListedProblems problems and how many more
// there are: what a message about the error should show.
func (e *LoadError) Listed() (shown []Problem, more int) {
	n := min(len(e.Problems), MaxListedProblems)
	return e.Problems[:n], e.Count() - n
}

// Error lists the problems as "file:line: message", one per line, and ends
// with "and N more problems" when there are more than MaxListedProblems.
func (e *LoadError) Error() string {
	shown, more := e.Listed()
	lines := make([]string, 0, len(shown)+1)
	for _, p := range shown {
		lines = append(lines, p.String())
	}
	if more > 0 {
		lines = append(lines, fmt.Sprintf("and %d more problems", more))
	}
	return strings.Join(lines, "\n")
}

// NoGrantError says why a principal may not reach a target. Its message tells
// the caller what to do; for a target that does not exist it says only that,
// and never lists the targets that do.
type NoGrantError struct {
	Principal     Principal
	Target        string
	UnknownTarget bool
	// Expired is a grant of the principal to the target that has expired,
	// if there is one: the message names it rather than saying there is
	// no grant.
	Expired *Grant
}

func (e *NoGrantError) Error() string {
	if e.UnknownTarget {
		return fmt.Sprintf("there is no target %q; run \"gatectl targets\" to list the targets you can reach", e.Target)
	}
	if g := e.Expired; g != nil {
		return fmt.Sprintf("grant %q (%s) gave %s %s access to target %q until it expired on %s; ask its owner %s to renew it",
			g.ID, g.Pos, e.Principal, g.Access, e.Target, g.Expires.Format("2006-01-02"), g.Owner)
	}
	return fmt.Sprintf("no grant gives %s access to target %q; ask the owner to add one in grants/", e.Principal, e.Target)
}

// problems collects problems during a load: the first maxKeptProblems, each
// message one line of at most maxProblemLen bytes, and a count of the rest.
type problems struct {
	list    []Problem
	omitted int
}

func (ps *problems) add(file string, line int, format string, args ...any) {
	ps.at(Pos{file, line}, format, args...)
}

func (ps *problems) at(pos Pos, format string, args ...any) {
	if len(ps.list) >= maxKeptProblems {
		ps.omitted++
		return
	}
	ps.list = append(ps.list, Problem{pos, shown.Cut(fmt.Sprintf(format, args...), maxProblemLen)})
}

func (ps *problems) empty() bool { return len(ps.list) == 0 && ps.omitted == 0 }
