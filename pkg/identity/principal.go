package identity

import (
	"fmt"
	"path"

	"github.com/gatectl/gatectl/pkg/policy"
)

// defaultDevGroupsClaim is the groups claim of the dev issuer's tokens.
const defaultDevGroupsClaim = "groups"

// principalFor maps the verified claims of a token from issuer to the
// principal they name under pol.
func principalFor(pol *policy.Policy, issuer policy.Issuer, claims map[string]any) (policy.Principal, error) {
	sub, _ := stringClaim(claims, "sub")
	if sub == "" {
		return policy.Principal{}, refuse(reasonNoSubject)
	}
	groupsClaim := issuer.GroupsClaim
	if groupsClaim == "" && issuer.Name == policy.DevIssuer {
		groupsClaim = defaultDevGroupsClaim
	}
	groups, aerr := groupsFrom(claims, groupsClaim)
	if aerr != nil {
		return policy.Principal{}, aerr
	}
	if issuer.ServicesOnly {
		// group: names are the users' issuer's: this issuer's "dba" is not
		// theirs, so its tokens bring no groups.
		groups = nil
	}
	p := policy.Principal{Kind: policy.KindUser, Name: sub, Subject: sub, Issuer: issuer.Name, Groups: groups}

	var matched []string
	for _, sa := range pol.ServiceAccounts {
		if sa.Issuer == issuer.Name && claimsMatch(sa.Match, claims) {
			matched = append(matched, sa.Name)
		}
	}
	switch len(matched) {
	case 0:
		if issuer.ServicesOnly {
			// Fail closed: another issuer names the users.
			return policy.Principal{}, refuse(fmt.Sprintf("the token matches no service account, and issuer %q names no users (identity.toml)", issuer.Name))
		}
		return p, nil
	case 1:
		p.Kind, p.Name = policy.KindService, matched[0]
		return p, nil
	}
	// Fail closed: which account's grants apply would be a guess.
	return policy.Principal{}, refuse(fmt.Sprintf("token matches service accounts %q and %q; the policy must tell them apart", matched[0], matched[1]))
}

// claimsMatch reports whether every claim in match is a string claim that
// matches its pattern (path.Match). An empty match matches nothing: it would
// otherwise make every token of the issuer that service account.
func claimsMatch(match map[string]string, claims map[string]any) bool {
	if len(match) == 0 {
		return false
	}
	for name, pattern := range match {
		value, ok := stringClaim(claims, name)
		if !ok {
			return false
		}
		// A malformed pattern matches nothing (fail closed).
		if ok, err := path.Match(pattern, value); err != nil || !ok {
			return false
		}
	}
	return true
}

// groupsFrom reads the groups claim: absent, a string, or a list of
// strings. Any other shape is refused rather than read as "no groups",
// so a misconfigured groups_claim shows up at once.
func groupsFrom(claims map[string]any, name string) ([]string, *AuthError) {
	if name == "" {
		return nil, nil
	}
	bad := refuse(fmt.Sprintf("token claim %q is not a string or a list of strings", printable(name)))
	switch v := claims[name].(type) {
	case nil:
		return nil, nil
	case string:
		if v == "" {
			return nil, nil
		}
		return []string{v}, nil
	case []any:
		groups := make([]string, 0, len(v))
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, bad
			}
			if s != "" {
				groups = append(groups, s)
			}
		}
		return groups, nil
	}
	return nil, bad
}
