package policy

import (
	"fmt"
	"time"
)

// TestResult is the outcome of one [[test]] case.
type TestResult struct {
	Test *Test
	Got  Verdict
	// Err is the classification error, when the request could not be
	// classified (the verdict is then Deny).
	Err  error
	Pass bool
}

// String is one line for `gatectl policy check`:
// "tests/safety.toml:3: ok: service:etl on orders: DROP TABLE orders → deny (rule no-drop)".
func (r TestResult) String() string {
	t := r.Test
	got := describe(r.Got.Decision, r.Got.Rule)
	if r.Pass {
		return fmt.Sprintf("%s: ok: %s on %s: %s → %s", t.Pos, t.As, t.Target, t.Request, got)
	}
	return fmt.Sprintf("%s: FAIL: %s on %s: %s: want %s, got %s: %s",
		t.Pos, t.As, t.Target, t.Request, describe(t.Expect, t.Rule), got, r.Got.Message)
}

func describe(d Decision, rule string) string {
	if rule == "" {
		return d.String()
	}
	return fmt.Sprintf("%s (rule %s)", d, rule)
}

// RunTests decides every [[test]] case at now. classify turns a request's
// text into statements (pkg/sqlclass for PostgreSQL); a request it cannot
// classify is denied, as the gateway would (fail closed). A case passes when
// the decision equals expect and, if the case names a rule, the deciding
// rule is that one.
func (p *Policy) RunTests(classify func(sql string) (Request, error), now time.Time) []TestResult {
	out := make([]TestResult, 0, len(p.Tests))
	for _, t := range p.Tests {
		res := TestResult{Test: t}
		req, err := classify(t.Request)
		if err != nil {
			res.Err = err
			res.Got = Verdict{Decision: Deny, Message: fmt.Sprintf("cannot classify the request, so it is denied: %v", err)}
		} else {
			req.Text = t.Request
			res.Got = p.Evaluate(p.TestPrincipal(t), t.Target, req, now)
		}
		res.Pass = res.Got.Decision == t.Expect && (t.Rule == "" || res.Got.Rule == t.Rule)
		out = append(out, res)
	}
	return out
}

// TestPrincipal is the principal a test case runs as: its `as` reference
// with the test's groups. A service account gets the issuer it is defined
// on.
func (p *Policy) TestPrincipal(t *Test) Principal {
	kind, name, _ := ParseRef(t.As) // validated by Load
	pr := Principal{Kind: KindUser, Name: name, Subject: name, Groups: t.Groups}
	if kind == "service" {
		pr.Kind = KindService
		if sa := p.ServiceAccount(name); sa != nil {
			pr.Issuer = sa.Issuer
		}
	}
	return pr
}
