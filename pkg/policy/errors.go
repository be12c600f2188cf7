package policy

import (
	"fmt"
	"strings"
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
	Problems []Problem
}

// Error lists the problems as "file:line: message", one per line.
func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
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

// problems collects problems during a load.
type problems []Problem

func (ps *problems) add(file string, line int, format string, args ...any) {
	*ps = append(*ps, Problem{Pos{file, line}, fmt.Sprintf(format, args...)})
}

func (ps *problems) at(pos Pos, format string, args ...any) {
	*ps = append(*ps, Problem{pos, fmt.Sprintf(format, args...)})
}
