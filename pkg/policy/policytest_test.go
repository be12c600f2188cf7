package policy

import (
	"strings"
	"testing"
)

func TestRunTests(t *testing.T) {
	files := baseFiles()
	files["tests/t.toml"] = `[[test]]
as = "service:etl"
target = "orders"
request = "DROP TABLE orders"
expect = "deny"
rule = "no-drop"

[[test]]
as = "service:etl"
target = "orders"
request = "SELECT 1"
expect = "deny"

[[test]]
as = "user:carol"
groups = ["dba"]
target = "orders"
request = "VACUUM orders"
expect = "deny"

[[test]]
as = "service:etl"
target = "orders"
request = "INSERT INTO orders VALUES (1)"
expect = "deny"
rule = "no-drop"
`
	p := mustLoad(t, files)
	results := p.RunTests(classify, now)
	tests := []struct {
		name     string
		pass     bool
		decision Decision
		err      bool
		line     string
	}{
		{"deny-by-rule", true, Deny, false, "tests/t.toml:1: ok: service:etl on orders: DROP TABLE orders → deny (rule no-drop)"},
		{"wrong-expectation", false, Allow, false, "tests/t.toml:8: FAIL: service:etl on orders: SELECT 1: want deny, got allow: allowed by grant \"etl-orders-read\""},
		{"unparseable-is-denied", true, Deny, true, "tests/t.toml:14: ok: user:carol on orders: VACUUM orders → deny"},
		{"wrong-rule", false, Deny, false, "tests/t.toml:21: FAIL: service:etl on orders: INSERT INTO orders VALUES (1): want deny (rule no-drop), got deny: grant \"etl-orders-read\" gives read access to \"orders\"; INSERT needs write"},
	}
	if len(results) != len(tests) {
		t.Fatalf("results: got %d, want %d", len(results), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := results[i]
			if r.Pass != tt.pass || r.Got.Decision != tt.decision || (r.Err != nil) != tt.err {
				t.Errorf("got pass %v decision %v err %v, want pass %v decision %v err %v", r.Pass, r.Got.Decision, r.Err, tt.pass, tt.decision, tt.err)
			}
			if got := r.String(); got != tt.line {
				t.Errorf("String:\n got %s\nwant %s", got, tt.line)
			}
		})
	}
	if msg := results[2].Got.Message; !strings.Contains(msg, `syntax error at or near "VACUUM"`) {
		t.Errorf("classification failure message: got %q, want the parse error in it", msg)
	}
}

func TestTestPrincipal(t *testing.T) {
	p := mustLoad(t, baseFiles())
	got := p.TestPrincipal(&Test{As: "service:etl"})
	if got.Kind != KindService || got.Name != "etl" || got.Issuer != "dev" {
		t.Errorf("service:etl: got %+v, want service etl on issuer dev", got)
	}
	got = p.TestPrincipal(&Test{As: "user:alice", Groups: []string{"dba"}})
	if got.Kind != KindUser || got.Name != "alice" || !got.InGroup("dba") {
		t.Errorf("user:alice: got %+v, want user alice in group dba", got)
	}
}
