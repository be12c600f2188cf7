package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Request is one request to a target as the policy sees it: its text and
// its statements, classified by the caller (pkg/sqlclass for PostgreSQL).
type Request struct {
	Text       string
	Statements []Statement
}

// Statement is one classified statement of a request.
type Statement struct {
	// Tag is the PostgreSQL command tag, like "SELECT" or "DROP TABLE".
	Tag string
	// Access is the level the statement needs; zero means it could not be
	// classified, and Evaluate denies it.
	Access Access
	// Why says why the statement needs Access ("in a WITH query: DELETE
	// changes data"), or why it could not be classified (the parser's
	// error), for messages; optional.
	Why string
	// Nested are the command tags of statements that run inside this one (a
	// DELETE in a WITH query, the statement under EXPLAIN ANALYZE); rules
	// match them as they match Tag.
	Nested []string
	// Opaque marks a statement that runs SQL nobody can inspect (DO, CALL,
	// EXECUTE): every deny and approve rule on the target covers it.
	Opaque bool
	// Forbidden, when not empty, says why no grant may run the statement
	// (it would change how the target reads later statements), and
	// Evaluate denies it.
	Forbidden string
}

// needs says what level a statement needs and, when known, why:
// "SELECT needs write (in a WITH query: DELETE changes data)".
func needs(s Statement) string {
	msg := fmt.Sprintf("%s needs %s", tagOr(s.Tag), s.Access)
	if s.Why != "" && !strings.HasPrefix(s.Why, msg) {
		msg += " (" + s.Why + ")"
	}
	return msg
}

// Verdict is the policy's decision on a request.
type Verdict struct {
	Decision Decision
	// Rule is the id of the deciding rule, "" when no rule decided (no grant,
	// too little access, or allowed).
	Rule    string
	RulePos Pos
	// Grant is the grant the request was decided under; nil without one.
	Grant *Grant
	// Message says why, for the caller and the audit log.
	Message string
	// Approval is the rule holding the request when Decision is Hold.
	Approval *ApproveRule
	// Masks are the mask rules on the target, set on every verdict that
	// lets the request through now or later (Allow, Mask, Hold). A proxy
	// must apply them whenever they are set, whatever the decision: a
	// write's RETURNING rows and the values echoed in its error messages
	// carry masked columns too. Decision is Mask only for reads, so that
	// audit and tests say "masked" where results are the point.
	Masks []*MaskRule
}

// Active reports whether the grant is in force at now. An expired grant is
// inactive from the first instant of its expires date. Review deadlines are
// not part of the policy files and are enforced by the caller.
func (g *Grant) Active(now time.Time) bool {
	return g.Expires.IsZero() || now.Before(g.Expires)
}

// ActiveGrants returns the grants in force at now whose "to" names pr
// (directly or through one of its groups), in file order. (It is not named
// Grants because Policy.Grants is the list of every grant.)
func (p *Policy) ActiveGrants(pr Principal, now time.Time) []*Grant {
	var out []*Grant
	for _, g := range p.Grants {
		if pr.Matches(g.To) && g.Active(now) {
			out = append(out, g)
		}
	}
	return out
}

// Grant returns the active grant giving pr the highest access to target; of
// equal grants, the first in file order. Without one the error is a
// *NoGrantError; for an unknown target it says only that the target does not
// exist.
func (p *Policy) Grant(pr Principal, target string, now time.Time) (*Grant, error) {
	if p.Targets[target] == nil {
		return nil, &NoGrantError{Principal: pr, Target: target, UnknownTarget: true}
	}
	var best *Grant
	for _, g := range p.ActiveGrants(pr, now) {
		if g.Target == target && (best == nil || g.Access > best.Access) {
			best = g
		}
	}
	if best == nil {
		e := &NoGrantError{Principal: pr, Target: target}
		for _, g := range p.Grants {
			if g.Target == target && pr.Matches(g.To) && !g.Active(now) && (e.Expired == nil || g.Expires.After(e.Expired.Expires)) {
				e.Expired = g
			}
		}
		return nil, e
	}
	return best, nil
}

// Evaluate decides req by pr on target at now. Order: no grant denies; a
// [[deny]] rule denies (checked before the access level, so the message
// names the rule); a statement needing more than the grant gives denies;
// an [[approve]] rule holds; a [[mask]] rule on the target masks a request
// of reads only; otherwise allow. Every
// path that cannot decide positively denies (fail closed).
func (p *Policy) Evaluate(pr Principal, target string, req Request, now time.Time) Verdict {
	g, err := p.Grant(pr, target, now)
	if err != nil {
		return Verdict{Decision: Deny, Message: err.Error()}
	}
	// A rule that names the statement decides first; a rule that covers an
	// opaque statement only because it cannot be inspected waits until the
	// access level has had its say, whose message is more precise.
	var opaqueDeny *DenyRule
	var opaqueWhy string
	for _, r := range p.Denies {
		ok, why := matchRule(r.Targets, r.Statements, target, req)
		switch {
		case ok && why == "":
			return Verdict{Decision: Deny, Rule: r.ID, RulePos: r.Pos, Grant: g,
				Message: fmt.Sprintf("denied by rule %q (%s): %s", r.ID, r.Pos, strings.TrimSpace(r.Message))}
		case ok && opaqueDeny == nil:
			opaqueDeny, opaqueWhy = r, why
		}
	}
	for _, s := range req.Statements {
		if s.Forbidden != "" {
			return Verdict{Decision: Deny, Grant: g,
				Message: fmt.Sprintf("grant %q gives %s access to %q; %s is refused: %s", g.ID, g.Access, target, tagOr(s.Tag), s.Forbidden)}
		}
		// Fail closed: an unclassified statement needs an unknown level.
		if s.Access == 0 {
			msg := fmt.Sprintf("grant %q gives %s access to %q; %s could not be classified, so it is denied", g.ID, g.Access, target, tagOr(s.Tag))
			if s.Why != "" {
				msg += ": " + s.Why
			}
			return Verdict{Decision: Deny, Grant: g, Message: msg}
		}
		if s.Access > g.Access {
			return Verdict{Decision: Deny, Grant: g,
				Message: fmt.Sprintf("grant %q gives %s access to %q; %s", g.ID, g.Access, target, needs(s))}
		}
	}
	if r := opaqueDeny; r != nil {
		return Verdict{Decision: Deny, Rule: r.ID, RulePos: r.Pos, Grant: g,
			Message: fmt.Sprintf("denied by rule %q (%s): %s (%s)", r.ID, r.Pos, strings.TrimSpace(r.Message), opaqueWhy)}
	}
	masks := p.MaskRules(target)
	for _, r := range p.Approves {
		if ok, why := matchRule(r.Targets, r.Statements, target, req); ok {
			msg := fmt.Sprintf("held by rule %q (%s) until approved by %s", r.ID, r.Pos, strings.Join(r.Approvers, " or "))
			if why != "" {
				msg += " (" + why + ")"
			}
			return Verdict{Decision: Hold, Rule: r.ID, RulePos: r.Pos, Grant: g, Approval: r, Masks: masks, Message: msg}
		}
	}
	if len(masks) > 0 && allReads(req) {
		return Verdict{Decision: Mask, Rule: masks[0].ID, RulePos: masks[0].Pos, Grant: g, Masks: masks,
			Message: fmt.Sprintf("allowed by grant %q; results masked by rule %q (%s)", g.ID, masks[0].ID, masks[0].Pos)}
	}
	return Verdict{Decision: Allow, Grant: g, Masks: masks, Message: fmt.Sprintf("allowed by grant %q", g.ID)}
}

func allReads(req Request) bool {
	for _, s := range req.Statements {
		if s.Access != AccessRead {
			return false
		}
	}
	return true
}

// MaskRules returns the mask rules that apply to target, in file order.
func (p *Policy) MaskRules(target string) []*MaskRule {
	var out []*MaskRule
	for _, r := range p.Masks {
		if appliesTo(r.Targets, target) {
			out = append(out, r)
		}
	}
	return out
}

// IsAdmin reports whether pr is listed in gatectl.toml's access.admins.
func (p *Policy) IsAdmin(pr Principal) bool {
	return slices.ContainsFunc(p.Settings.Access.Admins, pr.Matches)
}

// IsAuditor reports whether pr may read the audit log, sessions and
// recordings: auditors and admins.
func (p *Policy) IsAuditor(pr Principal) bool {
	return p.IsAdmin(pr) || slices.ContainsFunc(p.Settings.Access.Auditors, pr.Matches)
}

// matchRule reports whether a rule with these targets and statements covers
// a statement of req on target. why is non-empty when an opaque statement is
// covered only because it cannot be inspected (fail closed).
func matchRule(targets, stmts []string, target string, req Request) (ok bool, why string) {
	if !appliesTo(targets, target) {
		return false, ""
	}
	for _, s := range req.Statements {
		for _, want := range stmts {
			if TagMatches(want, s.Tag) || slices.ContainsFunc(s.Nested, func(tag string) bool { return TagMatches(want, tag) }) {
				return true, ""
			}
		}
	}
	for _, s := range req.Statements {
		if s.Opaque {
			return true, fmt.Sprintf("%s runs SQL the gateway cannot inspect, so every rule on %q applies to it", tagOr(s.Tag), target)
		}
	}
	return false, ""
}

func appliesTo(targets []string, target string) bool {
	return slices.Contains(targets, "*") || slices.Contains(targets, target)
}

// TagMatches reports whether a rule's statement class matches a command tag:
// the same words, or the tag starts with the class's words ("DROP" matches
// "DROP TABLE" but not "DROPX"). Case does not matter.
func TagMatches(class, tag string) bool {
	if len(tag) < len(class) || !strings.EqualFold(tag[:len(class)], class) {
		return false
	}
	return len(tag) == len(class) || tag[len(class)] == ' '
}

func tagOr(tag string) string {
	if tag == "" {
		return "the statement"
	}
	return tag
}
