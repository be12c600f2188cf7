package repo

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// redacted stands in for a credential in anything shown.
const redacted = "xxxxx"

// RedactSource returns a policy source fit for logs, errors, audit events,
// Status, the clone's config and anything else shown or written. In a URL,
// the whole user info becomes "xxxxx" (a token is as often the user name,
// "https://ghp_…@github.com/…", as the password) and so does every query
// value ("?access_token=…"); the fragment is dropped. A local path or
// scp-like "git@host:path" is returned as is: its user is an ssh login, not
// a secret. But an scp-like user with a colon ("oauth2:glpat-…@host:path",
// which go-git takes whole as the ssh user) holds a password: its user
// info becomes "xxxxx" too.
func RedactSource(source string) string {
	if _, rest, ok := scpLikePasswordUser(source); ok {
		return redacted + "@" + rest
	}
	u, err := url.Parse(source)
	if err != nil {
		if scheme, _, ok := strings.Cut(source, "://"); ok {
			// Cannot tell where its credentials are: show none of it.
			return scheme + "://" + redacted
		}
		return source
	}
	if u.Scheme == "" {
		return source
	}
	if u.User != nil {
		u.User = url.User(redacted)
	}
	if u.RawQuery != "" {
		pairs := strings.Split(u.RawQuery, "&")
		for i, p := range pairs {
			key, _, _ := strings.Cut(p, "=")
			pairs[i] = key + "=" + redacted
		}
		u.RawQuery = strings.Join(pairs, "&")
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// scpLikePasswordUser splits an scp-like source, user@host:path, into its
// user and the rest, as go-git reads one: the user runs to the first '@',
// and the host after it to a ':' with no white space in between. ok is
// false unless the user holds a password (a ':'). A source with a scheme
// ("ssh://", "https://") is not scp-like.
func scpLikePasswordUser(source string) (user, rest string, ok bool) {
	if strings.Contains(source, "://") {
		return "", "", false
	}
	user, rest, ok = strings.Cut(source, "@")
	if !ok || !strings.Contains(user, ":") {
		return "", "", false
	}
	host, _, ok := strings.Cut(rest, ":")
	if !ok || host == "" || strings.ContainsAny(host, " \t\r\n\v\f") {
		return "", "", false
	}
	return user, rest, true
}

// legacyRedactSource is how clones made before RedactSource hid user names
// recorded their source (u.Redacted hides only a password). checkState
// accepts it so that an upgrade keeps the live commit, and overwrites it.
func legacyRedactSource(source string) string {
	u, err := url.Parse(source)
	if err != nil || u.Scheme == "" || u.User == nil {
		return source
	}
	return u.Redacted()
}

// remoteSource returns the URL and auth to fetch source with. Credentials in
// an http(s) URL are moved into basic auth, as go-git would use them, so that
// no transport error can echo them: net/http's errors hide a password in a
// URL but not a token given as the user name. auth, when set, wins, as it
// does in go-git.
func remoteSource(source string, auth transport.AuthMethod) (string, transport.AuthMethod) {
	u, err := url.Parse(source)
	if err != nil || u.User == nil || (u.Scheme != "http" && u.Scheme != "https") {
		return source, auth
	}
	if auth == nil {
		password, _ := u.User.Password()
		auth = &githttp.BasicAuth{Username: u.User.Username(), Password: password}
	}
	u.User = nil
	return u.String(), auth
}

// sourceScrubber returns a replacer that hides the credentials of source in
// a transport's error messages, wherever they may be echoed: the whole URL,
// the user name where a URL holds it ("//name@", "//name:"), the password
// anywhere, and query values after their key. A user name is not replaced
// anywhere else: "git" would mangle the rest of the message.
func sourceScrubber(source string) *strings.Replacer {
	if user, _, ok := scpLikePasswordUser(source); ok {
		// The ssh transport may echo the user, password and all.
		_, password, _ := strings.Cut(user, ":")
		return strings.NewReplacer(source, RedactSource(source), user, redacted, password, redacted)
	}
	u, err := url.Parse(source)
	if err != nil || u.Scheme == "" {
		return strings.NewReplacer()
	}
	// Longest first: the replacer tries them in order at each position.
	pairs := []string{source, RedactSource(source)}
	if u.User != nil {
		for _, name := range distinct(u.User.Username(), url.PathEscape(u.User.Username()), url.QueryEscape(u.User.Username())) {
			pairs = append(pairs, "//"+name+"@", "//"+redacted+"@", "//"+name+":", "//"+redacted+":")
		}
		if password, ok := u.User.Password(); ok {
			for _, p := range distinct(password, url.PathEscape(password), url.QueryEscape(password)) {
				pairs = append(pairs, p, redacted)
			}
		}
	}
	if u.RawQuery != "" {
		for _, p := range strings.Split(u.RawQuery, "&") {
			if key, value, ok := strings.Cut(p, "="); ok && value != "" {
				pairs = append(pairs, p, key+"="+redacted)
			}
		}
	}
	return strings.NewReplacer(pairs...)
}

// distinct returns the non-empty strings of ss, each once.
func distinct(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// messageError replaces an error's message (to hide a secret or add a hint)
// while keeping the error chain for errors.Is.
type messageError struct {
	msg string
	err error
}

func (e *messageError) Error() string { return e.msg }
func (e *messageError) Unwrap() error { return e.err }

// scrub hides credentials in err's message with r (see sourceScrubber).
func scrub(err error, r *strings.Replacer) error {
	if err == nil {
		return nil
	}
	msg := r.Replace(err.Error())
	if msg == err.Error() {
		return err
	}
	return &messageError{msg: msg, err: err}
}

// explainFetch turns a fetch error into a message that says what to check.
// source must already be redacted.
func explainFetch(err error, source, branch string) error {
	var hint string
	switch {
	case errors.Is(err, git.NoMatchingRefSpecError{}):
		hint = fmt.Sprintf("branch %q does not exist there: check the policy branch setting or push the branch", branch)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		hint = fmt.Sprintf("push a first policy commit to branch %q (gatectl policy init creates one)", branch)
	case errors.Is(err, errFetchTimeout):
		hint = "check that the repository's server is up and answering"
	case errors.Is(err, transport.ErrRepositoryNotFound):
		hint = "check the policy source path or URL"
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(err.Error(), "ssh: unable to authenticate"): // x/crypto/ssh has no typed error for it
		hint = "check the credentials the gateway uses for the policy repository"
	case strings.Contains(err.Error(), "knownhosts:"), strings.Contains(err.Error(), "host key"):
		hint = "check the known host key of the policy repository's server"
	default:
		hint = "check that the repository is reachable from the gateway and the source is right"
	}
	msg := fmt.Sprintf("fetch policy branch %q from %s: %s; %s", branch, source, strings.TrimSpace(err.Error()), hint)
	return &messageError{msg: msg, err: err}
}
