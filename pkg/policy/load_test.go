package policy

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/gatectl/gatectl"
)

func TestLoadTemplate(t *testing.T) {
	p, err := Load(gatectl.PolicyTemplate())
	if err != nil {
		t.Fatalf("Load(template): %v", err)
	}
	if got, want := len(p.Tests), 9; got != want {
		t.Errorf("template tests: got %d, want %d", got, want)
	}
	for _, r := range p.RunTests(classify, time.Now()) {
		if !r.Pass {
			t.Errorf("%s", r)
		}
	}
}

func TestLoadValid(t *testing.T) {
	p := mustLoad(t, baseFiles())
	o := p.Targets["orders"]
	if o == nil {
		t.Fatal("target orders not loaded")
	}
	if got, want := o.Credentials[AccessRead], (Credential{"orders_ro", "env:ORDERS_RO_PASSWORD"}); got != want {
		t.Errorf("orders read credential: got %+v, want %+v", got, want)
	}
	if _, ok := o.Credentials[AccessAdmin]; ok {
		t.Errorf("orders has an admin credential it does not declare")
	}
	if got, want := o.Pos.String(), "targets/orders.toml:1"; got != want {
		t.Errorf("target pos: got %s, want %s", got, want)
	}
	if got, want := p.Grants[0].Pos.String(), "grants/orders.toml:1"; got != want {
		t.Errorf("grant pos: got %s, want %s", got, want)
	}
	if got, want := p.Denies[0].Pos.String(), "rules/safety.toml:1"; got != want {
		t.Errorf("rule pos: got %s, want %s", got, want)
	}
	if got, want := p.ServiceAccounts[0].Pos.String(), "identity.toml:5"; got != want {
		t.Errorf("service account pos: got %s, want %s", got, want)
	}
}

func TestLoadDefaults(t *testing.T) {
	files := baseFiles()
	files["gatectl.toml"] = "[reviews]\nevery = \"30d\"\n"
	files["rules/hold.toml"] = `[[approve]]
id = "deletes"
targets = ["orders"]
statements = ["DELETE"]
approvers = ["group:dba"]

[[mask]]
id = "pii"
targets = ["*"]
columns = ["email"]
`
	p := mustLoad(t, files)
	s := p.Settings
	if got, want := s.Reviews.Every, Duration(30*24*time.Hour); got != want {
		t.Errorf("reviews.every: got %v, want %v", got, want)
	}
	if got, want := s.Reviews.Grace, DefaultReviewGrace; got != want {
		t.Errorf("reviews.grace: got %v, want %v", got, want)
	}
	if got, want := strings.Join(s.Access.Admins, ","), "group:security"; got != want {
		t.Errorf("admins: got %s, want %s", got, want)
	}
	if !s.Recording.Required {
		t.Errorf("recording.required: got false, want true")
	}
	a := p.Approves[0]
	if a.MinApprovals != 1 || a.Timeout != DefaultApprovalTimeout {
		t.Errorf("approve defaults: got min %d timeout %v, want 1 and %v", a.MinApprovals, a.Timeout, DefaultApprovalTimeout)
	}
	if got, want := p.Masks[0].Strategy, MaskRedact; got != want {
		t.Errorf("mask strategy: got %v, want %v", got, want)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		change  map[string]string // file → content; "" removes the file
		want    []string          // each must be one of the problems, exactly
		notWant string            // must appear in no problem
	}{
		{
			name: "unknown-key",
			change: map[string]string{"grants/orders.toml": `[[grant]]
id = "a"
to = "service:etl"
target = "orders"
access = "read"
owner = "group:dba"
reason = "r"

[[grant]]
id = "b"
to = "service:etl"
target = "orders"
acess = "read"
owner = "group:dba"
reason = "r"
`},
			want: []string{
				`grants/orders.toml:9: grant "b": missing required key "access" (read, write or admin)`,
				`grants/orders.toml:13: unknown key "grant.acess"`,
			},
		},
		{
			name: "tls-ca-relative-path",
			change: map[string]string{"targets/orders.toml": `kind = "postgres"
address = "db.internal:5432"
database = "orders"
tls = "verify-full"
tls_ca = "file:certs/ca.pem"
[credentials.read]
user = "orders_ro"
password = "env:X"
`},
			want: []string{`targets/orders.toml:5: tls_ca "file:certs/ca.pem" is not file:PATH with an absolute path to PEM certificates on the gateway host`},
		},
		{
			name: "tls-ca-without-verify-full",
			change: map[string]string{"targets/orders.toml": `kind = "postgres"
address = "db.internal:5432"
database = "orders"
tls = "require"
tls_ca = "file:/etc/gatectl/orders-ca.pem"
[credentials.read]
user = "orders_ro"
password = "env:X"
`},
			want: []string{`targets/orders.toml:5: tls_ca is used only to verify the target: set tls = "verify-full" as well`},
		},
		{
			name:   "unknown-table",
			change: map[string]string{"gatectl.toml": "[access]\nadmins = [\"group:sec\"]\n\n[recordings]\nrequired = false\n"},
			want:   []string{`gatectl.toml:4: unknown key "recordings"`},
		},
		{
			name:   "misspelt-rule-table",
			change: map[string]string{"rules/safety.toml": "# rules\n[[denny]]\nid = \"no-drop\"\n"},
			want:   []string{`rules/safety.toml:2: unknown key "denny"`},
		},
		{
			name: "unknown-key-in-target",
			change: map[string]string{"targets/orders.toml": `kind = "postgres"
address = "127.0.0.1:5432"
database = "orders"
[credentials.read]
user = "orders_ro"
pasword = "env:X"
`},
			want: []string{
				`targets/orders.toml:4: [credentials.read]: missing required key "password" (env:NAME or file:PATH)`,
				`targets/orders.toml:6: unknown key "credentials.read.pasword"`,
			},
		},
		{
			name:   "bad-enum",
			change: map[string]string{"grants/orders.toml": "\n[[grant]]\nid = \"a\"\nto = \"service:etl\"\ntarget = \"orders\"\naccess = \"reed\"\nowner = \"group:dba\"\nreason = \"r\"\n"},
			want:   []string{`grants/orders.toml:6: access "reed" is not one of: read, write, admin`},
		},
		{
			name: "bad-credential-level",
			change: map[string]string{"targets/orders.toml": `kind = "postgres"
address = "127.0.0.1:5432"
database = "orders"
[credentials.root]
user = "postgres"
password = "env:PG"
`},
			want: []string{`targets/orders.toml:4: [credentials.root]: access "root" is not one of: read, write, admin`},
		},
		{
			name:   "bad-kind",
			change: map[string]string{"targets/orders.toml": "kind = \"mysql\"\n"},
			want:   []string{`targets/orders.toml:1: kind "mysql" is not one of: postgres, ssh, kubernetes`},
		},
		{
			name:   "missing-target",
			change: map[string]string{"grants/orders.toml": "[[grant]]\nid = \"a\"\nto = \"service:etl\"\ntarget = \"ordrs\"\naccess = \"read\"\nowner = \"group:dba\"\nreason = \"r\"\n"},
			want:   []string{`grants/orders.toml:4: grant "a": there is no target "ordrs" (no file targets/ordrs.toml)`},
		},
		{
			name:   "missing-credential-for-access",
			change: map[string]string{"grants/orders.toml": "[[grant]]\nid = \"a\"\nto = \"service:etl\"\ntarget = \"orders\"\naccess = \"admin\"\nowner = \"group:dba\"\nreason = \"r\"\n"},
			want:   []string{`grants/orders.toml:5: grant "a" gives admin access, but target "orders" has no [credentials.admin]; add it to targets/orders.toml or lower the access`},
		},
		{
			name:   "missing-service-account",
			change: map[string]string{"grants/orders.toml": "[[grant]]\nid = \"a\"\nto = \"service:etl2\"\ntarget = \"orders\"\naccess = \"read\"\nowner = \"dba\"\nreason = \"r\"\n"},
			want: []string{
				`grants/orders.toml:3: grant "a": to: "service:etl2": there is no service account "etl2" in identity.toml`,
				`grants/orders.toml:6: grant "a": owner: "dba" is not a principal reference: write user:SUBJECT, service:NAME or group:NAME`,
			},
		},
		{
			name:   "missing-issuer",
			change: map[string]string{"identity.toml": "[[service_account]]\nname = \"etl\"\nissuer = \"ci\"\n[service_account.match]\nsub = \"etl\"\n"},
			want:   []string{`identity.toml:3: service account "etl": there is no issuer "ci" in identity.toml`},
		},
		{
			name:   "issuer-needs-url",
			change: map[string]string{"identity.toml": "[[issuer]]\nname = \"ci\"\naudience = \"gatectl\"\n\n[[issuer]]\nname = \"dev\"\nurl = \"https://dev.example\"\naudience = \"gatectl\"\n"},
			want: []string{
				`identity.toml:1: issuer "ci": missing required key "url"`,
				`identity.toml:7: issuer "dev" is the gateway's embedded dev issuer and takes no url; give a real issuer another name`,
			},
		},
		{
			name: "two-issuers-could-name-users",
			change: map[string]string{"identity.toml": `[[issuer]]
name = "corp"
url = "https://login.example.com"
audience = "gatectl"

[[issuer]]
name = "ci"
url = "https://token.example.com"
audience = "gatectl"
`},
			want: []string{`identity.toml:6: issuers "corp" and "ci" could both name users, and user:alice from one would get the grants of the other's alice: set users = true on the issuer whose tokens name people (user: and group:), and its tokens alone can; the others' tokens can only be service accounts`},
		},
		{
			name: "two-issuers-name-users",
			change: map[string]string{"identity.toml": `[[issuer]]
name = "corp"
url = "https://login.example.com"
audience = "gatectl"
users = true

[[issuer]]
name = "ci"
url = "https://token.example.com"
audience = "gatectl"
users = true
`},
			want: []string{`identity.toml:11: issuers "corp" and "ci" both say users = true: a user or group name must mean one person, so only one issuer may name users; set users = false on the other`},
		},
		{
			name:    "literal-secret",
			change:  map[string]string{"targets/orders.toml": "kind = \"postgres\"\naddress = \"127.0.0.1:5432\"\ndatabase = \"orders\"\n[credentials.read]\nuser = \"orders_ro\"\npassword = \"hunter2-s3cret\"\n"},
			want:    []string{`targets/orders.toml:6: credentials.read.password: not a secret reference: write env:NAME or file:PATH and keep the secret itself out of the policy repository (rotate it if it was committed)`},
			notWant: "hunter2",
		},
		{
			name:    "literal-secret-env-prefix",
			change:  map[string]string{"targets/orders.toml": "kind = \"postgres\"\naddress = \"127.0.0.1:5432\"\ndatabase = \"orders\"\n[credentials.read]\nuser = \"orders_ro\"\npassword = \"env:hunter2 s3cret\"\n"},
			want:    []string{`targets/orders.toml:6: credentials.read.password: the env: reference does not name an environment variable (letters, digits and _)`},
			notWant: "hunter2",
		},
		{
			name: "duplicate-id",
			change: map[string]string{"grants/warehouse.toml": `# another file
[[grant]]
id = "etl-orders-read"
to = "group:dba"
target = "orders"
access = "write"
owner = "group:dba"
reason = "r"
`},
			want: []string{`grants/warehouse.toml:3: duplicate grant id "etl-orders-read"; the first is at grants/orders.toml:2`},
		},
		{
			name:   "duplicate-rule-id-across-kinds",
			change: map[string]string{"rules/tables.toml": "[[mask]]\nid = \"no-drop\"\ntargets = [\"*\"]\ncolumns = [\"email\"]\n"},
			want:   []string{`rules/tables.toml:2: duplicate mask id "no-drop"; the first is at rules/safety.toml:2`},
		},
		{
			name:   "malformed-toml",
			change: map[string]string{"rules/safety.toml": "[[deny]]\nid = \"no-drop\"\ntargets = [\"*\"\nstatements = [\"DROP\"]\n"},
			want:   []string{`rules/safety.toml:4: expected a comma (',') or array terminator (']'), but got 's'`},
		},
		{
			name:   "rule-target-and-detector",
			change: map[string]string{"rules/safety.toml": "[[mask]]\nid = \"pii\"\ntargets = [\"orders\", \"billing\"]\ndetectors = [\"phone\"]\nstrategy = \"blur\"\n"},
			want: []string{
				`rules/safety.toml:5: strategy "blur" is not one of: redact, partial, hash`,
			},
		},
		{
			name:   "rule-target-missing",
			change: map[string]string{"rules/safety.toml": "[[mask]]\nid = \"pii\"\ntargets = [\"orders\", \"billing\"]\ndetectors = [\"phone\"]\n"},
			want: []string{
				`rules/safety.toml:3: rule "pii": there is no target "billing" (no file targets/billing.toml)`,
				`rules/safety.toml:4: rule "pii": detector "phone" is not one of: email, us_ssn, credit_card`,
			},
		},
		{
			name:   "bad-statement-class",
			change: map[string]string{"rules/safety.toml": "[[deny]]\nid = \"no-drop\"\ntargets = [\"*\"]\nstatements = [\"DROP;\"]\nmessage = \"m\"\n"},
			want:   []string{`rules/safety.toml:4: rule "no-drop": statement "DROP;" is not a PostgreSQL command tag like "DROP" or "DROP TABLE"`},
		},
		{
			name:   "service-account-without-match",
			change: map[string]string{"identity.toml": "[[issuer]]\nname = \"dev\"\naudience = \"gatectl\"\n[[service_account]]\nname = \"etl\"\nissuer = \"dev\"\n"},
			want:   []string{`identity.toml:4: service account "etl": missing [service_account.match]; list the claims a token must carry, like sub = "repo:acme/etl:ref:refs/heads/main"`},
		},
		{
			name:   "test-cases",
			change: map[string]string{"tests/t.toml": "[[test]]\nas = \"group:dba\"\ntarget = \"orders\"\nrequest = \"SELECT 1\"\nexpect = \"deny\"\nrule = \"nope\"\n\n[[test]]\nas = \"user:a\"\ntarget = \"orders\"\nrequest = \"SELECT 1\"\nexpect = \"permit\"\n"},
			want: []string{
				`tests/t.toml:2: test: as: "group:dba": a group reference is not allowed here; use user: or service:`,
				`tests/t.toml:6: test: there is no rule "nope" in rules/`,
				`tests/t.toml:12: decision "permit" is not one of: allow, deny, hold, mask`,
			},
		},
		{
			name:   "bad-duration",
			change: map[string]string{"gatectl.toml": "[approvals]\ntimeout = \"ten minutes\"\n"},
			want:   []string{`gatectl.toml:2: duration "ten minutes": want a whole number of days like "90d" or a Go duration like "15m"`},
		},
		{
			name:   "wrong-type",
			change: map[string]string{"grants/orders.toml": "[[grant]]\nid = 7\n"},
			want:   []string{`grants/orders.toml:2: grant.id: incompatible types: TOML value has type int64; destination has type string`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := baseFiles()
			for name, data := range tt.change {
				if data == "" {
					delete(files, name)
					continue
				}
				files[name] = data
			}
			_, err := Load(mapFS(files))
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Load: got %v, want a *LoadError", err)
			}
			got := strings.Split(le.Error(), "\n")
			for _, w := range tt.want {
				if !contains(got, w) {
					t.Errorf("problems:\n%s\nwant among them:\n%s", le, w)
				}
			}
			if tt.notWant != "" && strings.Contains(le.Error(), tt.notWant) {
				t.Errorf("problems:\n%s\nmust not contain %q", le, tt.notWant)
			}
		})
	}
}

func TestLoadErrorListsAllProblems(t *testing.T) {
	files := baseFiles()
	files["grants/orders.toml"] = "[[grant]]\nid = \"a\"\nto = \"service:nobody\"\ntarget = \"orders\"\naccess = \"superuser\"\nowner = \"group:dba\"\nreason = \"r\"\n"
	files["rules/safety.toml"] = "[[deny]]\nid = \"no-drop\"\ntargets = [\"*\"]\nstatements = [\"DROP\"]\nmesage = \"m\"\n"
	_, err := Load(mapFS(files))
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("Load: got %v, want a *LoadError", err)
	}
	want := []string{
		`grants/orders.toml:5: access "superuser" is not one of: read, write, admin`,
		`rules/safety.toml:1: rule "no-drop": missing required key "message" (what the caller reads when the rule denies)`,
		`rules/safety.toml:5: unknown key "deny.mesage"`,
	}
	if got := le.Error(); got != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestIssuersThatNameUsers: which issuers' tokens may be users (and their
// groups) rather than only service accounts.
func TestIssuersThatNameUsers(t *testing.T) {
	for _, tc := range []struct {
		name, identity string
		servicesOnly   map[string]bool
	}{
		{
			name:         "dev-alone",
			identity:     "[[issuer]]\nname = \"dev\"\naudience = \"gatectl\"\n",
			servicesOnly: map[string]bool{"dev": false},
		},
		{
			name:         "dev-and-one-more",
			identity:     "[[issuer]]\nname = \"dev\"\naudience = \"gatectl\"\n[[issuer]]\nname = \"corp\"\nurl = \"https://login.example.com\"\naudience = \"gatectl\"\n",
			servicesOnly: map[string]bool{"dev": false, "corp": false},
		},
		{
			name:         "one-says-users",
			identity:     "[[issuer]]\nname = \"corp\"\nurl = \"https://login.example.com\"\naudience = \"gatectl\"\nusers = true\n[[issuer]]\nname = \"ci\"\nurl = \"https://token.example.com\"\naudience = \"gatectl\"\n[[issuer]]\nname = \"dev\"\naudience = \"gatectl\"\n",
			servicesOnly: map[string]bool{"corp": false, "ci": true, "dev": false},
		},
		{
			name:         "the-other-says-no",
			identity:     "[[issuer]]\nname = \"corp\"\nurl = \"https://login.example.com\"\naudience = \"gatectl\"\n[[issuer]]\nname = \"ci\"\nurl = \"https://token.example.com\"\naudience = \"gatectl\"\nusers = false\n",
			servicesOnly: map[string]bool{"corp": false, "ci": true},
		},
		{
			name:         "dev-says-no",
			identity:     "[[issuer]]\nname = \"dev\"\naudience = \"gatectl\"\nusers = false\n",
			servicesOnly: map[string]bool{"dev": true},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := baseFiles()
			files["identity.toml"] = tc.identity + "[[service_account]]\nname = \"etl\"\nissuer = \"" + firstIssuer(tc.identity) + "\"\n[service_account.match]\nsub = \"etl\"\n"
			p := mustLoad(t, files)
			got := map[string]bool{}
			for _, iss := range p.Issuers {
				got[iss.Name] = iss.ServicesOnly
			}
			if !maps.Equal(got, tc.servicesOnly) {
				t.Errorf("services only: got %v, want %v", got, tc.servicesOnly)
			}
		})
	}
}

// firstIssuer is the name of the first issuer in an identity.toml text.
func firstIssuer(identity string) string {
	_, rest, _ := strings.Cut(identity, "name = \"")
	name, _, _ := strings.Cut(rest, "\"")
	return name
}
