package gateway_test

import (
	"net/url"
	"testing"

	"github.com/gatectl/gatectl/pkg/audit"
)

// TestAuditRecordsRefusals checks that every statement refused so far in
// this test binary (and one refused here, so the test stands alone) is an
// audit event naming the principal, the target and, for rule refusals, the
// rule; then that the hash chain verifies (DESIGN.md §7.5). It lives in
// the last file so that it runs after the other tests.
func TestAuditRecordsRefusals(t *testing.T) {
	conn := connect(t, pgConfig(t, etl))
	const sql = "DELETE FROM orders WHERE id = 5"
	_, err := conn.Exec(testCtx(t), sql)
	wantRefusal(t, err, "DELETE needs write")
	noteRefusal(etl, sql, "")

	events := auditEvents(t, url.Values{"action": {"statement"}, "decision": {"deny"}})
	type key struct{ principal, text string }
	byKey := map[key][]audit.Event{}
	for _, e := range events {
		if e.Target == "" || e.Session == "" || e.Reason == "" || e.PolicyCommit == "" {
			t.Errorf("event %d: got target %q, session %q, reason %q, policy commit %q; want all set",
				e.Seq, e.Target, e.Session, e.Reason, e.PolicyCommit)
		}
		k := key{e.Principal, e.Detail["text"]}
		byKey[k] = append(byKey[k], e)
	}
	for _, r := range notedRefusals() {
		got := byKey[key{r.principal, r.text}]
		if len(got) == 0 {
			t.Errorf("no deny statement event for %s: %q", r.principal, r.text)
			continue
		}
		if r.rule != "" && got[0].Rule != r.rule {
			t.Errorf("%s: %q: got rule %q, want %q", r.principal, r.text, got[0].Rule, r.rule)
		}
	}

	rep := auditVerify(t)
	if !rep.OK {
		t.Errorf("got audit verify problem %q at event %d, want an intact chain", rep.Problem, rep.FirstBad)
	}
	if rep.Events < int64(len(events)) {
		t.Errorf("got %d events verified, want at least the %d deny events", rep.Events, len(events))
	}
}
