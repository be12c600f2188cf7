package policy

import (
	"maps"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// The check functions validate one item right after it is decoded. Items
// they depend on (issuers, service accounts, targets, rules) are loaded
// before the items that name them, so references are checked in the same
// pass. Every check adds problems and carries on, so one load reports them
// all.

func (l *loader) checkSettings(p *Policy, f *tomlFile) {
	s := &p.Settings
	for _, list := range []struct {
		key  string
		refs []string
	}{{"access.admins", s.Access.Admins}, {"access.auditors", s.Access.Auditors}} {
		for _, ref := range list.refs {
			if err := checkRef(p, ref, "user", "service", "group"); err != nil {
				l.problems.at(f.pos("", 0, list.key), "%s: %v", list.key, err)
			}
		}
	}
	if s.Reviews.Every <= 0 {
		l.problems.at(f.pos("", 0, "reviews.every"), "reviews.every must be longer than zero, like \"90d\"")
	}
	if s.Approvals.Timeout <= 0 {
		l.problems.at(f.pos("", 0, "approvals.timeout"), "approvals.timeout must be longer than zero, like \"15m\"")
	}
}

func (l *loader) checkIssuer(f *tomlFile, i int, iss *Issuer, seen map[string]Pos) {
	at := func(key string) Pos { return f.pos("issuer", i, key) }
	if l.checkID(at("name"), "issuer", "name", iss.Name, seen) {
		return
	}
	switch {
	case iss.Name == DevIssuer && iss.URL != "":
		l.problems.at(at("url"), "issuer %q is the gateway's embedded dev issuer and takes no url; give a real issuer another name", iss.Name)
	case iss.Name != DevIssuer && iss.URL == "":
		l.problems.at(iss.Pos, "issuer %q: missing required key \"url\"", iss.Name)
	case iss.Name != DevIssuer:
		if err := checkIssuerURL(iss.URL); err != "" {
			l.problems.at(at("url"), "issuer %q: url %q %s", iss.Name, iss.URL, err)
		}
	}
	if iss.Audience == "" {
		l.problems.at(iss.Pos, "issuer %q: missing required key \"audience\" (the aud claim tokens for gatectl carry, like \"gatectl\")", iss.Name)
	}
}

// chooseUserIssuer decides which issuers may name users (Issuer.Users,
// ServicesOnly): the dev issuer unless it says users = false, and of the
// others the one that says users = true, or else the only one left that
// does not say users = false. Two candidates are a problem: a user:alice
// vouched for by one issuer would get the grants of another's alice.
func (l *loader) chooseUserIssuer(f *tomlFile, issuers []Issuer) {
	var chosen, undecided []int
	for i := range issuers {
		iss := &issuers[i]
		switch {
		case iss.Users != nil && !*iss.Users:
			iss.ServicesOnly = true
		case iss.Name == DevIssuer:
			// The dev issuer mints any identity and works only under --dev.
		case iss.Users != nil:
			chosen = append(chosen, i)
		default:
			undecided = append(undecided, i)
		}
	}
	if len(chosen) > 1 {
		a, b := issuers[chosen[0]], issuers[chosen[1]]
		l.problems.at(f.pos("issuer", chosen[1], "users"),
			"issuers %q and %q both say users = true: a user or group name must mean one person, so only one issuer may name users; set users = false on the other", a.Name, b.Name)
	}
	if len(chosen) == 0 && len(undecided) > 1 {
		a, b := issuers[undecided[0]], issuers[undecided[1]]
		l.problems.at(issuers[undecided[1]].Pos,
			"issuers %q and %q could both name users, and user:alice from one would get the grants of the other's alice: set users = true on the issuer whose tokens name people (user: and group:), and its tokens alone can; the others' tokens can only be service accounts", a.Name, b.Name)
	}
	if len(chosen) > 0 {
		for _, i := range undecided {
			issuers[i].ServicesOnly = true
		}
	}
}

// checkIssuerURL requires https, except for loopback, where a test or local
// issuer may use plain http. It returns what is wrong, or "".
func checkIssuerURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "is not an absolute URL like \"https://issuer.example.com\""
	}
	host := u.Hostname()
	loopback := host == "localhost" || net.ParseIP(host).IsLoopback()
	if u.Scheme != "https" && !(u.Scheme == "http" && loopback) {
		return "must use https (http is allowed only on loopback)"
	}
	return ""
}

func (l *loader) checkServiceAccount(p *Policy, f *tomlFile, i int, sa *ServiceAccount, seen map[string]Pos) {
	at := func(key string) Pos { return f.pos("service_account", i, key) }
	if l.checkID(at("name"), "service_account", "name", sa.Name, seen) {
		return
	}
	if sa.Issuer == "" {
		l.problems.at(sa.Pos, "service account %q: missing required key \"issuer\"", sa.Name)
	} else if p.Issuer(sa.Issuer) == nil {
		l.problems.at(at("issuer"), "service account %q: there is no issuer %q in identity.toml", sa.Name, sa.Issuer)
	}
	// Fail closed: a service account without match claims would match
	// every token of its issuer.
	if len(sa.Match) == 0 {
		l.problems.at(sa.Pos, "service account %q: missing [service_account.match]; list the claims a token must carry, like sub = \"repo:acme/etl:ref:refs/heads/main\"", sa.Name)
	}
	for _, claim := range slices.Sorted(maps.Keys(sa.Match)) {
		if _, err := path.Match(sa.Match[claim], ""); err != nil {
			l.problems.at(at("match."+claim), "service account %q: match.%s is not a valid glob pattern", sa.Name, claim)
		}
	}
}

func (l *loader) checkTarget(f *tomlFile, t *Target, creds map[string]Credential) {
	at := func(key string) Pos { return f.pos("", 0, key) }
	if err := checkName("target name (the file name)", t.Name); err != nil {
		l.problems.at(t.Pos, "%v", err)
	}
	if t.Kind == 0 {
		l.problems.at(t.Pos, "missing required key \"kind\" (postgres, ssh or kubernetes)")
	}
	switch {
	case t.Address == "":
		l.problems.at(t.Pos, "missing required key \"address\"")
	case t.Kind == TargetKubernetes:
		if u, err := url.Parse(t.Address); err != nil || u.Scheme != "https" || u.Host == "" {
			l.problems.at(at("address"), "address %q: a kubernetes target's address is the API server URL, like \"https://k8s.internal:6443\"", t.Address)
		}
	default:
		if _, _, err := net.SplitHostPort(t.Address); err != nil {
			l.problems.at(at("address"), "address %q is not host:port, like \"db.internal:5432\"", t.Address)
		}
	}
	if t.Kind == TargetPostgres && t.Database == "" {
		l.problems.at(t.Pos, "missing required key \"database\" (the upstream database name)")
	}
	switch t.TLS {
	case "", "disable", "require", "verify-full":
	default:
		l.problems.at(at("tls"), "tls %q is not one of: disable, require, verify-full", t.TLS)
	}
	if t.TLSCA != "" {
		ref, isFile := strings.CutPrefix(t.TLSCA, "file:")
		switch {
		case !isFile || !filepath.IsAbs(ref):
			l.problems.at(at("tls_ca"), "tls_ca %q is not file:PATH with an absolute path to PEM certificates on the gateway host", t.TLSCA)
		case t.TLS != "verify-full":
			l.problems.at(at("tls_ca"), "tls_ca is used only to verify the target: set tls = \"verify-full\" as well")
		}
	}
	if len(creds) == 0 {
		l.problems.at(t.Pos, "no credentials: add a [credentials.read], [credentials.write] or [credentials.admin] table")
	}
	t.Credentials = map[Access]Credential{}
	for _, level := range slices.Sorted(maps.Keys(creds)) {
		c := creds[level]
		key := "credentials." + level
		a, err := ParseAccess(level)
		if err != nil {
			l.problems.at(at(key), "[%s]: %v", key, err)
			continue
		}
		t.Credentials[a] = c
		if c.User == "" && t.Kind != TargetKubernetes {
			l.problems.at(at(key), "[%s]: missing required key \"user\"", key)
		}
		if c.Password == "" && t.Kind == TargetPostgres {
			l.problems.at(at(key), "[%s]: missing required key \"password\" (env:NAME or file:PATH)", key)
		}
		if c.Password != "" {
			// The message never includes the value: it may be a secret.
			if err := c.Password.Check(); err != nil {
				l.problems.at(at(key+".password"), "%s.password: %v", key, err)
			}
		}
	}
}

func (l *loader) checkGrant(p *Policy, f *tomlFile, i int, g *Grant, ids map[string]Pos) {
	at := func(key string) Pos { return f.pos("grant", i, key) }
	if l.checkID(at("id"), "grant", "id", g.ID, ids) {
		return
	}
	missing := l.missing(g.Pos, "grant", g.ID)
	if g.To == "" {
		missing("to", "service:NAME, user:SUBJECT or group:NAME")
	} else if err := checkRef(p, g.To, "user", "service", "group"); err != nil {
		l.problems.at(at("to"), "grant %q: to: %v", g.ID, err)
	}
	if g.Access == 0 {
		missing("access", "read, write or admin")
	}
	t, targetOK := p.Targets[g.Target], false
	switch {
	case g.Target == "":
		missing("target", "a file name in targets/ without .toml")
	case t == nil:
		l.problems.at(at("target"), "grant %q: there is no target %q (no file targets/%s.toml)", g.ID, g.Target, g.Target)
	default:
		targetOK = !l.broken[g.Target]
	}
	if targetOK && g.Access != 0 {
		if _, ok := t.Credentials[g.Access]; !ok {
			l.problems.at(at("access"), "grant %q gives %s access, but target %q has no [credentials.%s]; add it to targets/%s.toml or lower the access", g.ID, g.Access, g.Target, g.Access, g.Target)
		}
	}
	if g.Owner == "" {
		missing("owner", "who reviews the grant, like group:dba")
	} else if err := checkRef(p, g.Owner, "user", "service", "group"); err != nil {
		l.problems.at(at("owner"), "grant %q: owner: %v", g.ID, err)
	}
	if strings.TrimSpace(g.Reason) == "" {
		missing("reason", "why the access is needed; reviewers read it")
	}
}

func (l *loader) checkDeny(p *Policy, f *tomlFile, i int, r *DenyRule) {
	if l.checkID(f.pos("deny", i, "id"), "deny", "id", r.ID, l.ruleIDs) {
		return
	}
	l.checkRuleTargets(p, f, "deny", i, r.ID, r.Targets)
	l.checkStatements(f, "deny", i, r.ID, r.Statements)
	if strings.TrimSpace(r.Message) == "" {
		l.missing(r.Pos, "rule", r.ID)("message", "what the caller reads when the rule denies")
	}
}

func (l *loader) checkApprove(p *Policy, f *tomlFile, i int, r *ApproveRule) {
	at := func(key string) Pos { return f.pos("approve", i, key) }
	if l.checkID(at("id"), "approve", "id", r.ID, l.ruleIDs) {
		return
	}
	l.checkRuleTargets(p, f, "approve", i, r.ID, r.Targets)
	l.checkStatements(f, "approve", i, r.ID, r.Statements)
	if len(r.Approvers) == 0 {
		l.missing(r.Pos, "rule", r.ID)("approvers", "who may approve, like [\"group:dba\"]")
	}
	for _, ref := range r.Approvers {
		if err := checkRef(p, ref, "user", "service", "group"); err != nil {
			l.problems.at(at("approvers"), "rule %q: approvers: %v", r.ID, err)
		}
	}
	switch {
	case r.MinApprovals == 0:
		r.MinApprovals = 1
	case r.MinApprovals < 0:
		l.problems.at(at("min_approvals"), "rule %q: min_approvals must be 1 or more", r.ID)
	}
	if r.Timeout == 0 {
		r.Timeout = p.Settings.Approvals.Timeout
	}
}

// Detectors are the value detectors a [[mask]] rule may name.
var Detectors = []string{"email", "us_ssn", "credit_card"}

func (l *loader) checkMask(p *Policy, f *tomlFile, i int, r *MaskRule) {
	at := func(key string) Pos { return f.pos("mask", i, key) }
	if l.checkID(at("id"), "mask", "id", r.ID, l.ruleIDs) {
		return
	}
	l.checkRuleTargets(p, f, "mask", i, r.ID, r.Targets)
	if len(r.Columns) == 0 && len(r.Detectors) == 0 {
		l.problems.at(r.Pos, "rule %q: masks nothing; list columns, detectors or both", r.ID)
	}
	for _, c := range r.Columns {
		if strings.TrimSpace(c) == "" {
			l.problems.at(at("columns"), "rule %q: columns has an empty name", r.ID)
		}
	}
	for _, d := range r.Detectors {
		if !slices.Contains(Detectors, d) {
			l.problems.at(at("detectors"), "rule %q: detector %q is not one of: %s", r.ID, d, strings.Join(Detectors, ", "))
		}
	}
	if r.Strategy == 0 {
		r.Strategy = MaskRedact
	}
}

func (l *loader) checkRuleTargets(p *Policy, f *tomlFile, arr string, i int, id string, targets []string) {
	if len(targets) == 0 {
		l.problems.at(f.pos(arr, i, "id"), "rule %q: missing required key \"targets\" (target names, or [\"*\"] for all)", id)
	}
	for _, t := range targets {
		if t != "*" && p.Targets[t] == nil {
			l.problems.at(f.pos(arr, i, "targets"), "rule %q: there is no target %q (no file targets/%s.toml)", id, t, t)
		}
	}
}

func (l *loader) checkStatements(f *tomlFile, arr string, i int, id string, stmts []string) {
	if len(stmts) == 0 {
		l.problems.at(f.pos(arr, i, "id"), "rule %q: missing required key \"statements\" (PostgreSQL command tags, like [\"DROP\", \"TRUNCATE\"])", id)
	}
	for _, s := range stmts {
		if !tagSyntax.MatchString(s) {
			l.problems.at(f.pos(arr, i, "statements"), "rule %q: statement %q is not a PostgreSQL command tag like \"DROP\" or \"DROP TABLE\"", id, s)
		}
	}
}

func (l *loader) checkTest(p *Policy, f *tomlFile, i int, t *Test) {
	at := func(key string) Pos { return f.pos("test", i, key) }
	missing := l.missing(t.Pos, "test", "")
	if t.As == "" {
		missing("as", "user:SUBJECT or service:NAME")
	} else if err := checkRef(p, t.As, "user", "service"); err != nil {
		l.problems.at(at("as"), "test: as: %v", err)
	}
	if t.Target == "" {
		missing("target", "a target name")
	}
	if t.Request == "" {
		missing("request", "the SQL to decide, like \"SELECT 1\"")
	}
	if t.Expect == 0 {
		missing("expect", "allow, deny, hold or mask")
	}
	if t.Rule != "" {
		if _, ok := l.ruleIDs[t.Rule]; !ok {
			l.problems.at(at("rule"), "test: there is no rule %q in rules/", t.Rule)
		}
	}
	for _, g := range t.Groups {
		if g == "" || strings.Contains(g, ":") {
			l.problems.at(at("groups"), "test: groups lists group names without a prefix, like [\"dba\"]")
		}
	}
}

// checkID validates a required, unique name and records it in seen. It
// reports whether the item is too broken to check further (no id).
func (l *loader) checkID(pos Pos, what, key, id string, seen map[string]Pos) (skip bool) {
	if id == "" {
		l.problems.at(pos, "[[%s]]: missing required key %q", what, key)
		return true
	}
	if err := checkName(what+" "+key, id); err != nil {
		l.problems.at(pos, "%v", err)
	}
	if first, dup := seen[id]; dup {
		l.problems.at(pos, "duplicate %s %s %q; the first is at %s", what, key, id, first)
		return false
	}
	seen[id] = pos
	return false
}

// missing returns a reporter for required keys of one item.
func (l *loader) missing(pos Pos, what, id string) func(key, hint string) {
	return func(key, hint string) {
		if id != "" {
			l.problems.at(pos, "%s %q: missing required key %q (%s)", what, id, key, hint)
			return
		}
		l.problems.at(pos, "%s: missing required key %q (%s)", what, key, hint)
	}
}
