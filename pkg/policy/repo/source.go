package repo

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// redactSource returns source fit for logs, errors and Status: a password in
// an https URL ("https://user:token@host/repo") is replaced by "xxxxx".
func redactSource(source string) string {
	u, err := url.Parse(source)
	if err != nil || u.Scheme == "" || u.User == nil {
		return source
	}
	return u.Redacted()
}

// sourceSecret returns the password embedded in source, if any, so that it
// can be scrubbed from error messages of the transport.
func sourceSecret(source string) string {
	u, err := url.Parse(source)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

// messageError replaces an error's message (to hide a secret or add a hint)
// while keeping the error chain for errors.Is.
type messageError struct {
	msg string
	err error
}

func (e *messageError) Error() string { return e.msg }
func (e *messageError) Unwrap() error { return e.err }

// scrub removes secret from err's message.
func scrub(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &messageError{msg: strings.ReplaceAll(err.Error(), secret, "xxxxx"), err: err}
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
