package identity

import "github.com/gatectl/gatectl/pkg/shown"

// AuthError is a refused token. Reason is short and safe to show to the
// caller and to record in the audit log ("token expired", "unknown signing
// key"); it never contains the token or key material. Verify returns it as
// *AuthError, so callers test with errors.As.
type AuthError struct {
	Reason string
}

func (e *AuthError) Error() string { return "authentication failed: " + e.Reason }

func refuse(reason string) *AuthError { return &AuthError{Reason: reason} }

// Reasons that are compared in tests and by callers that want to count them.
const (
	reasonNoToken      = "no token presented"
	reasonMalformed    = "malformed token"
	reasonExpired      = "token expired"
	reasonNotYetValid  = "token not yet valid"
	reasonUnknownKey   = "unknown signing key"
	reasonBadSignature = "token signature is invalid"
	reasonNoSubject    = "token has no subject"
)

// printable shortens and escapes an attacker-controlled claim value for a
// Reason, so a hostile token cannot smuggle a long or multi-line string, or
// terminal escapes, into the audit log.
func printable(s string) string { return shown.Cut(s, 80) }
