package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// ParseRef splits a principal reference ("user:alice", "service:etl",
// "group:dba") into its kind and name. It does not check that the name
// exists.
func ParseRef(ref string) (kind, name string, err error) {
	kind, name, ok := strings.Cut(ref, ":")
	if !ok || name == "" || strings.ContainsAny(name, " \t\n") {
		return "", "", fmt.Errorf("%q is not a principal reference: write user:SUBJECT, service:NAME or group:NAME", ref)
	}
	switch kind {
	case "user", "service", "group":
		return kind, name, nil
	}
	return "", "", fmt.Errorf("%q is not a principal reference: the kind %q is not one of: user, service, group", ref, kind)
}

// checkRef validates ref and, for a service account, that it exists in p.
// kinds limits the kinds allowed.
func checkRef(p *Policy, ref string, kinds ...string) error {
	kind, name, err := ParseRef(ref)
	if err != nil {
		return err
	}
	if !slices.Contains(kinds, kind) {
		return fmt.Errorf("%q: a %s reference is not allowed here; use %s", ref, kind, strings.Join(kinds, ": or ")+":")
	}
	if kind == "service" && p.ServiceAccount(name) == nil {
		return fmt.Errorf("%q: there is no service account %q in identity.toml", ref, name)
	}
	return nil
}

// ServiceAccount returns the service account named name, or nil.
func (p *Policy) ServiceAccount(name string) *ServiceAccount {
	for i := range p.ServiceAccounts {
		if p.ServiceAccounts[i].Name == name {
			return &p.ServiceAccounts[i]
		}
	}
	return nil
}

// Issuer returns the issuer named name, or nil.
func (p *Policy) Issuer(name string) *Issuer {
	for i := range p.Issuers {
		if p.Issuers[i].Name == name {
			return &p.Issuers[i]
		}
	}
	return nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Check reports whether s is a well-formed secret reference: "env:NAME" or
// "file:PATH". The error never contains s itself, because a malformed
// reference is most likely a literal secret pasted into the policy.
func (s Secret) Check() error {
	if name, ok := strings.CutPrefix(string(s), "env:"); ok {
		if !envName.MatchString(name) {
			return fmt.Errorf("the env: reference does not name an environment variable (letters, digits and _)")
		}
		return nil
	}
	if path, ok := strings.CutPrefix(string(s), "file:"); ok {
		if path == "" {
			return fmt.Errorf("the file: reference has no path")
		}
		return nil
	}
	return fmt.Errorf("not a secret reference: write env:NAME or file:PATH and keep the secret itself out of the policy repository (rotate it if it was committed)")
}

// Env returns the environment variable a secret reference names, if it is
// an env: reference.
func (s Secret) Env() (string, bool) { return strings.CutPrefix(string(s), "env:") }

// File returns the path a secret reference names, if it is a file: reference.
func (s Secret) File() (string, bool) { return strings.CutPrefix(string(s), "file:") }

var (
	// nameSyntax is what ids and target names look like: they appear in
	// messages, audit events, dbname= and file names.
	nameSyntax = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// tagSyntax is a PostgreSQL command tag or a prefix of one: "DROP",
	// "DROP TABLE", "CREATE MATERIALIZED VIEW".
	tagSyntax = regexp.MustCompile(`^[A-Za-z]+( [A-Za-z]+)*$`)
)

func checkName(what, s string) error {
	if !nameSyntax.MatchString(s) {
		return fmt.Errorf("%s %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", what, s)
	}
	return nil
}
