// Package policy is gatectl's policy model: the TOML files of a policy
// repository decoded into typed values, validated, and evaluated. It does no
// I/O beyond reading the files of the fs.FS it is given.
package policy

import (
	"fmt"
	"strings"
	"time"

	"github.com/gatectl/gatectl/pkg/shown"
)

// Pos is a place in a policy file, for error messages: "grants/orders.toml:3".
type Pos struct {
	File string
	Line int
}

// String is "file:line", or "file" when the line is not known. Control
// characters and invalid UTF-8 in the file name are escaped, and a very long
// name is cut: the name comes from the repository, and messages that carry
// it are printed on terminals and written to logs.
func (p Pos) String() string {
	file := shown.Cut(p.File, maxShownNameLen)
	if p.Line == 0 {
		return file
	}
	return fmt.Sprintf("%s:%d", file, p.Line)
}

// PrincipalKind tells a person from a runtime.
type PrincipalKind int

const (
	KindUser PrincipalKind = iota + 1
	KindService
)

func (k PrincipalKind) String() string {
	switch k {
	case KindUser:
		return "user"
	case KindService:
		return "service"
	}
	return "unknown"
}

// Principal is a verified caller.
type Principal struct {
	Kind PrincipalKind
	// Name is the subject for a user and the service account's name for a
	// service.
	Name    string
	Subject string
	Issuer  string // the issuer's name in identity.toml
	Groups  []string
	// Expires is when the token that proved this principal expires; zero
	// when it does not. A session it opened may run no statement after it.
	Expires time.Time
}

// String is the principal's reference as policy files write it:
// "user:alice" or "service:etl".
func (p Principal) String() string { return p.Kind.String() + ":" + p.Name }

// InGroup reports whether the principal is a member of group g.
func (p Principal) InGroup(g string) bool {
	for _, x := range p.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// Matches reports whether ref ("user:alice", "service:etl", "group:dba")
// names this principal.
func (p Principal) Matches(ref string) bool {
	kind, name, ok := strings.Cut(ref, ":")
	if !ok {
		return false
	}
	switch kind {
	case "group":
		return p.InGroup(name)
	case "user":
		return p.Kind == KindUser && p.Name == name
	case "service":
		return p.Kind == KindService && p.Name == name
	}
	return false
}

// Settings is gatectl.toml.
type Settings struct {
	Access struct {
		Admins   []string `toml:"admins"`
		Auditors []string `toml:"auditors"`
	} `toml:"access"`
	Reviews struct {
		Every Duration `toml:"every"`
		Grace Duration `toml:"grace"`
	} `toml:"reviews"`
	Approvals struct {
		Timeout Duration `toml:"timeout"`
	} `toml:"approvals"`
	Recording struct {
		Required bool `toml:"required"`
	} `toml:"recording"`
}

// Issuer is a trusted OIDC issuer from identity.toml. The issuer named "dev"
// is the gateway's embedded issuer and needs no URL; it is trusted only in
// --dev.
type Issuer struct {
	Name        string `toml:"name"`
	URL         string `toml:"url"`
	Audience    string `toml:"audience"`
	GroupsClaim string `toml:"groups_claim"`
	// Users says whether the issuer's tokens that match no service account
	// name users (user:<sub>, with their groups); nil when identity.toml
	// leaves it out. See ServicesOnly.
	Users *bool `toml:"users"`
	// ServicesOnly, set by the loader, means the issuer's tokens can only
	// be service accounts. A user or group name must mean one person
	// whichever issuer vouches for it, so only one issuer besides dev may
	// name users: the one with users = true, or the only one.
	ServicesOnly bool `toml:"-"`
	Pos          Pos  `toml:"-"`
}

// DevIssuer is the name of the embedded development issuer.
const DevIssuer = "dev"

// ServiceAccount is a named principal for a runtime, matched from token
// claims: every claim in Match must equal (glob allowed).
type ServiceAccount struct {
	Name   string            `toml:"name"`
	Issuer string            `toml:"issuer"`
	Match  map[string]string `toml:"match"`
	Pos    Pos               `toml:"-"`
}

// Secret names where a secret lives: "env:NAME" or "file:PATH". It never
// holds the secret itself, so it is safe to print.
type Secret string

// Credential is what the gateway presents upstream for one access level.
type Credential struct {
	User     string `toml:"user"`
	Password Secret `toml:"password"`
}

// Target is a thing behind the gateway, from targets/<name>.toml.
type Target struct {
	Name     string     `toml:"-"` // the file name without .toml
	Kind     TargetKind `toml:"kind"`
	Address  string     `toml:"address"`
	Database string     `toml:"database"`
	// TLS to the upstream: "disable" (default on loopback), "require",
	// "verify-full".
	TLS string `toml:"tls"`
	// TLSCA is "file:PATH", an absolute path on the gateway host to the PEM
	// certificates that verify the upstream with tls = "verify-full"
	// instead of the system roots. Optional.
	TLSCA string `toml:"tls_ca"`
	// Credentials has one entry per access level the target offers. The
	// file spells the levels as table names ([credentials.read]); the loader
	// decodes those and parses them into Access keys.
	Credentials map[Access]Credential `toml:"-"`
	Pos         Pos                   `toml:"-"`
}

// Grant gives a principal or group an access level on a target.
type Grant struct {
	ID          string    `toml:"id"`
	To          string    `toml:"to"`
	Target      string    `toml:"target"`
	Access      Access    `toml:"access"`
	Owner       string    `toml:"owner"`
	Reason      string    `toml:"reason"`
	ReviewEvery Duration  `toml:"review_every"`
	Expires     time.Time `toml:"expires"`
	Pos         Pos       `toml:"-"`
}

// DenyRule refuses statements of the listed classes on the listed targets.
type DenyRule struct {
	ID         string   `toml:"id"`
	Targets    []string `toml:"targets"`
	Statements []string `toml:"statements"`
	Message    string   `toml:"message"`
	Pos        Pos      `toml:"-"`
}

// ApproveRule holds statements until approvers approve them.
type ApproveRule struct {
	ID           string   `toml:"id"`
	Targets      []string `toml:"targets"`
	Statements   []string `toml:"statements"`
	Approvers    []string `toml:"approvers"`
	MinApprovals int      `toml:"min_approvals"`
	Timeout      Duration `toml:"timeout"`
	Pos          Pos      `toml:"-"`
}

// MaskRule masks values in results.
type MaskRule struct {
	ID        string       `toml:"id"`
	Targets   []string     `toml:"targets"`
	Columns   []string     `toml:"columns"`
	Detectors []string     `toml:"detectors"`
	Strategy  MaskStrategy `toml:"strategy"`
	Pos       Pos          `toml:"-"`
}

// Test is a policy test case from tests/*.toml.
type Test struct {
	As      string   `toml:"as"`
	Groups  []string `toml:"groups"` // groups of the principal in As
	Target  string   `toml:"target"`
	Request string   `toml:"request"`
	Expect  Decision `toml:"expect"`
	Rule    string   `toml:"rule"`
	Pos     Pos      `toml:"-"`
}

// Policy is one loaded, validated policy commit.
type Policy struct {
	Settings        Settings
	Issuers         []Issuer
	ServiceAccounts []ServiceAccount
	Targets         map[string]*Target
	Grants          []*Grant
	Denies          []*DenyRule
	Approves        []*ApproveRule
	Masks           []*MaskRule
	Tests           []*Test
	// Commit is the policy commit this was loaded from; empty when loaded
	// from a plain directory.
	Commit string
}
