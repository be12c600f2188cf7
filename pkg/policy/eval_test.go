package policy

import (
	"strings"
	"testing"
	"time"
)

func evalPolicy(t *testing.T) *Policy {
	files := baseFiles()
	files["targets/metrics.toml"] = "kind = \"postgres\"\naddress = \"127.0.0.1:5433\"\ndatabase = \"metrics\"\n[credentials.read]\nuser = \"m\"\npassword = \"env:M\"\n"
	files["grants/more.toml"] = `[[grant]]
id = "dba-orders-write"
to = "group:dba"
target = "orders"
access = "write"
owner = "group:security"
reason = "fixes"

[[grant]]
id = "alice-orders-read"
to = "user:alice"
target = "orders"
access = "read"
owner = "group:security"
reason = "reports"

[[grant]]
id = "etl-metrics-read"
to = "service:etl"
target = "metrics"
access = "read"
owner = "group:dba"
reason = "metrics export"

[[grant]]
id = "old-orders-write"
to = "user:old"
target = "orders"
access = "write"
owner = "group:dba"
reason = "migration"
expires = 2026-01-01
`
	files["rules/hold.toml"] = `[[approve]]
id = "prod-deletes"
targets = ["orders"]
statements = ["DELETE", "UPDATE"]
approvers = ["group:dba"]

[[mask]]
id = "pii"
targets = ["orders"]
columns = ["email"]
`
	return mustLoad(t, files)
}

var (
	etl   = Principal{Kind: KindService, Name: "etl", Subject: "etl", Issuer: "dev"}
	alice = Principal{Kind: KindUser, Name: "alice", Subject: "alice", Groups: []string{"dba"}}
	bob   = Principal{Kind: KindUser, Name: "bob", Subject: "bob"}
	old   = Principal{Kind: KindUser, Name: "old", Subject: "old"}
	now   = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
)

func req(stmts ...Statement) Request { return Request{Statements: stmts} }

func TestEvaluate(t *testing.T) {
	p := evalPolicy(t)
	sel := Statement{Tag: "SELECT", Access: AccessRead}
	tests := []struct {
		name      string
		pr        Principal
		target    string
		req       Request
		want      Decision
		wantRule  string
		wantGrant string
		wantMsg   string
		wantMasks int
	}{
		{name: "no-grant", pr: bob, target: "orders", req: req(sel), want: Deny,
			wantMsg: `no grant gives user:bob access to target "orders"; ask the owner to add one in grants/`},
		{name: "unknown-target", pr: alice, target: "billing", req: req(sel), want: Deny,
			wantMsg: `there is no target "billing"; run "gatectl targets" to list the targets you can reach`},
		{name: "expired-grant", pr: old, target: "orders", req: req(sel), want: Deny,
			wantMsg: `grant "old-orders-write" (grants/more.toml:25) gave user:old write access to target "orders" until it expired on 2026-01-01; ask its owner group:dba to renew it`},
		{name: "read-allowed", pr: etl, target: "metrics", req: req(sel), want: Allow, wantGrant: "etl-metrics-read",
			wantMsg: `allowed by grant "etl-metrics-read"`},
		{name: "read-masked", pr: etl, target: "orders", req: req(sel), want: Mask, wantRule: "pii", wantGrant: "etl-orders-read", wantMasks: 1,
			wantMsg: `allowed by grant "etl-orders-read"; results masked by rule "pii" (rules/hold.toml:7)`},
		{name: "write-needs-write", pr: etl, target: "orders", req: req(sel, Statement{Tag: "INSERT", Access: AccessWrite}), want: Deny, wantGrant: "etl-orders-read",
			wantMsg: `grant "etl-orders-read" gives read access to "orders"; INSERT needs write`},
		{name: "highest-grant-wins", pr: alice, target: "orders", req: req(Statement{Tag: "INSERT", Access: AccessWrite}), want: Allow, wantGrant: "dba-orders-write", wantMasks: 1,
			wantMsg: `allowed by grant "dba-orders-write"`},
		{name: "admin-needs-admin", pr: alice, target: "orders", req: req(Statement{Tag: "CREATE INDEX", Access: AccessAdmin}), want: Deny,
			wantGrant: "dba-orders-write", wantMsg: `grant "dba-orders-write" gives write access to "orders"; CREATE INDEX needs admin`},
		{name: "deny-rule", pr: etl, target: "orders", req: req(Statement{Tag: "DROP TABLE", Access: AccessAdmin}), want: Deny, wantRule: "no-drop", wantGrant: "etl-orders-read",
			wantMsg: `denied by rule "no-drop" (rules/safety.toml:1): destructive DDL is not allowed`},
		{name: "deny-rule-any-case", pr: etl, target: "metrics", req: req(sel, Statement{Tag: "truncate table", Access: AccessAdmin}), want: Deny, wantRule: "no-drop", wantGrant: "etl-metrics-read",
			wantMsg: `denied by rule "no-drop" (rules/safety.toml:1): destructive DDL is not allowed`},
		{name: "hold", pr: alice, target: "orders", req: req(Statement{Tag: "DELETE", Access: AccessWrite}), want: Hold, wantRule: "prod-deletes", wantGrant: "dba-orders-write", wantMasks: 1,
			wantMsg: `held by rule "prod-deletes" (rules/hold.toml:1) until approved by group:dba`},
		{name: "deny-beats-hold", pr: alice, target: "orders", req: req(Statement{Tag: "DELETE", Access: AccessWrite}, Statement{Tag: "DROP TABLE", Access: AccessAdmin}), want: Deny, wantRule: "no-drop", wantGrant: "dba-orders-write",
			wantMsg: `denied by rule "no-drop" (rules/safety.toml:1): destructive DDL is not allowed`},
		{name: "hold-beats-mask", pr: alice, target: "orders", req: req(sel, Statement{Tag: "UPDATE", Access: AccessWrite}), want: Hold, wantRule: "prod-deletes", wantGrant: "dba-orders-write", wantMasks: 1,
			wantMsg: `held by rule "prod-deletes" (rules/hold.toml:1) until approved by group:dba`},
		{name: "hold-nested-delete-in-cte", pr: alice, target: "orders", req: req(Statement{Tag: "SELECT", Access: AccessWrite, Nested: []string{"DELETE"}}), want: Hold, wantRule: "prod-deletes", wantGrant: "dba-orders-write", wantMasks: 1,
			wantMsg: `held by rule "prod-deletes" (rules/hold.toml:1) until approved by group:dba`},
		{name: "deny-nested-under-explain-analyze", pr: etl, target: "metrics", req: req(Statement{Tag: "EXPLAIN", Access: AccessAdmin, Nested: []string{"TRUNCATE TABLE"}}), want: Deny, wantRule: "no-drop", wantGrant: "etl-metrics-read",
			wantMsg: `denied by rule "no-drop" (rules/safety.toml:1): destructive DDL is not allowed`},
		{name: "opaque-read-grant-gets-access-message-first", pr: etl, target: "metrics", req: req(Statement{Tag: "DO", Access: AccessAdmin, Opaque: true}), want: Deny, wantGrant: "etl-metrics-read",
			wantMsg: `grant "etl-metrics-read" gives read access to "metrics"; DO needs admin`},
		{name: "opaque-covered-by-every-deny-rule", pr: alice, target: "orders", req: req(Statement{Tag: "EXECUTE", Access: AccessWrite, Opaque: true}), want: Deny, wantRule: "no-drop", wantGrant: "dba-orders-write",
			wantMsg: `denied by rule "no-drop" (rules/safety.toml:1): destructive DDL is not allowed (EXECUTE runs SQL the gateway cannot inspect, so every rule on "orders" applies to it)`},
		{name: "unclassified-denied", pr: alice, target: "orders", req: req(sel, Statement{Tag: "DO", Access: 0}), want: Deny, wantGrant: "dba-orders-write",
			wantMsg: `grant "dba-orders-write" gives write access to "orders"; DO could not be classified, so it is denied`},
		{name: "unparseable-denied-with-grant", pr: etl, target: "orders", req: req(Statement{Why: `syntax error at or near "SELEC"; check the statement's syntax`}), want: Deny, wantGrant: "etl-orders-read",
			wantMsg: `grant "etl-orders-read" gives read access to "orders"; the statement could not be classified, so it is denied: syntax error at or near "SELEC"; check the statement's syntax`},
		{name: "forbidden-names-the-grant", pr: etl, target: "orders", req: req(Statement{Tag: "SET", Access: AccessRead, Forbidden: "it changes how PostgreSQL reads strings"}), want: Deny, wantGrant: "etl-orders-read",
			wantMsg: `grant "etl-orders-read" gives read access to "orders"; SET is refused: it changes how PostgreSQL reads strings`},
		{name: "unparseable-without-grant", pr: alice, target: "metrics", req: req(Statement{Why: "syntax error"}), want: Deny,
			wantMsg: `no grant gives user:alice access to target "metrics"; ask the owner to add one in grants/`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := p.Evaluate(tt.pr, tt.target, tt.req, now)
			if v.Decision != tt.want || v.Rule != tt.wantRule {
				t.Errorf("decision: got %v rule %q, want %v rule %q", v.Decision, v.Rule, tt.want, tt.wantRule)
			}
			var gotGrant string
			if v.Grant != nil {
				gotGrant = v.Grant.ID
			}
			if gotGrant != tt.wantGrant {
				t.Errorf("grant: got %q, want %q", gotGrant, tt.wantGrant)
			}
			if v.Message != tt.wantMsg {
				t.Errorf("message: got %q, want %q", v.Message, tt.wantMsg)
			}
			if len(v.Masks) != tt.wantMasks {
				t.Errorf("masks: got %d, want %d", len(v.Masks), tt.wantMasks)
			}
			if v.Decision == Hold && v.Approval == nil {
				t.Errorf("hold without its approval rule")
			}
			if tt.target == "billing" && strings.Contains(v.Message, "orders") {
				t.Errorf("message %q reveals another target", v.Message)
			}
		})
	}
}

func TestGrantErrors(t *testing.T) {
	p := evalPolicy(t)
	_, err := p.Grant(bob, "orders", now)
	ng, ok := err.(*NoGrantError)
	if !ok || ng.UnknownTarget || ng.Target != "orders" {
		t.Errorf("Grant(bob): got %#v, want a *NoGrantError for orders", err)
	}
	// The grant expires at the start of its date.
	expiry := time.Date(2026, 1, 1, 0, 0, 0, 0, p.Grants[len(p.Grants)-1].Expires.Location())
	for _, tt := range []struct {
		name string
		at   time.Time
		want bool
	}{
		{"before-expiry", expiry.Add(-time.Second), true},
		{"at-expiry", expiry, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Grant(old, "orders", tt.at)
			if got := err == nil; got != tt.want {
				t.Errorf("granted: got %v, want %v (err %v)", got, tt.want, err)
			}
			// An expired grant is named, not reported as missing.
			if err != nil && !strings.Contains(err.Error(), "until it expired on 2026-01-01") {
				t.Errorf("error %q does not name the expired grant", err)
			}
		})
	}
}

func TestActiveGrants(t *testing.T) {
	p := evalPolicy(t)
	var got []string
	for _, g := range p.ActiveGrants(alice, now) {
		got = append(got, g.ID)
	}
	if want := "dba-orders-write,alice-orders-read"; strings.Join(got, ",") != want {
		t.Errorf("ActiveGrants(alice): got %s, want %s", strings.Join(got, ","), want)
	}
	if got := p.ActiveGrants(old, now); len(got) != 0 {
		t.Errorf("ActiveGrants(old) past expiry: got %d grants, want 0", len(got))
	}
}

func TestTagMatches(t *testing.T) {
	tests := []struct {
		name, class, tag string
		want             bool
	}{
		{"equal", "DELETE", "DELETE", true},
		{"prefix-word", "DROP", "DROP TABLE", true},
		{"two-words", "DROP TABLE", "DROP TABLE", true},
		{"case", "drop", "Drop Index", true},
		{"not-a-word-prefix", "DROP", "DROPX", false},
		{"longer-class", "DROP TABLE", "DROP", false},
		{"different", "DELETE", "SELECT", false},
		{"other-word", "DROP TABLE", "DROP INDEX", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TagMatches(tt.class, tt.tag); got != tt.want {
				t.Errorf("TagMatches(%q, %q): got %v, want %v", tt.class, tt.tag, got, tt.want)
			}
		})
	}
}

func TestAdminsAndAuditors(t *testing.T) {
	files := baseFiles()
	files["gatectl.toml"] = "[access]\nadmins = [\"group:security\", \"user:root\"]\nauditors = [\"group:audit\"]\n"
	p := mustLoad(t, files)
	tests := []struct {
		name                   string
		pr                     Principal
		wantAdmin, wantAuditor bool
	}{
		{"admin-by-group", Principal{Kind: KindUser, Name: "sec", Groups: []string{"security"}}, true, true},
		{"admin-by-user", Principal{Kind: KindUser, Name: "root"}, true, true},
		{"auditor-only", Principal{Kind: KindUser, Name: "aud", Groups: []string{"audit"}}, false, true},
		{"service-named-like-user", Principal{Kind: KindService, Name: "root"}, false, false},
		{"nobody", bob, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.IsAdmin(tt.pr); got != tt.wantAdmin {
				t.Errorf("IsAdmin: got %v, want %v", got, tt.wantAdmin)
			}
			if got := p.IsAuditor(tt.pr); got != tt.wantAuditor {
				t.Errorf("IsAuditor: got %v, want %v", got, tt.wantAuditor)
			}
		})
	}
}
