package cmdutil

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/gatectl/gatectl/pkg/client"
)

// Exit codes of DESIGN.md §4. They are mapped from errors in one place,
// ExitCode, and documented by `gatectl help exit-codes`.
const (
	ExitOK       = 0
	ExitError    = 1
	ExitUsage    = 2
	ExitDenied   = 3
	ExitAuth     = 4
	ExitRefused  = 5 // a held request was denied or expired
	ExitPending  = 8 // held and still pending (--no-wait)
	exitCodeDocs = `Exit codes:
  0  success
  1  error (network, upstream, internal)
  2  usage error
  3  denied by policy (the message names the rule)
  4  authentication required or failed
  5  held request denied or expired
  8  held and still pending (with --no-wait)
`
)

// ExitCodesHelp is the text of `gatectl help exit-codes`.
func ExitCodesHelp() string { return exitCodeDocs }

// UsageError is a mistake in how a command was called.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// DeniedError is a refusal by policy; Msg names the rule or grant.
type DeniedError struct{ Msg string }

func (e *DeniedError) Error() string { return e.Msg }

// AuthError means authentication is required or failed.
type AuthError struct{ Msg string }

func (e *AuthError) Error() string { return e.Msg }

// RefusedError means a held request was denied by an approver or expired.
type RefusedError struct{ Msg string }

func (e *RefusedError) Error() string { return e.Msg }

// PendingError means a held request is still waiting for approval.
type PendingError struct{ Msg string }

func (e *PendingError) Error() string { return e.Msg }

// SilentError carries an exit code for a failure that was already reported
// to the user (for example a failed policy test listing).
type SilentError struct{ Code int }

func (e *SilentError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ExitCode maps an error to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var (
		usage   *UsageError
		denied  *DeniedError
		auth    *AuthError
		refused *RefusedError
		pending *PendingError
		silent  *SilentError
		api     *client.Error
	)
	switch {
	case errors.As(err, &silent):
		return silent.Code
	case errors.As(err, &usage):
		return ExitUsage
	case errors.As(err, &denied):
		return ExitDenied
	case errors.As(err, &auth):
		return ExitAuth
	case errors.As(err, &refused):
		return ExitRefused
	case errors.As(err, &pending):
		return ExitPending
	case errors.As(err, &api) && api.Status == http.StatusUnauthorized:
		return ExitAuth
	case errors.As(err, &api) && api.Status == http.StatusForbidden:
		return ExitDenied
	case errors.As(err, &api) && api.Status == http.StatusBadRequest:
		return ExitUsage
	}
	return ExitError
}

// GroupRunE is the RunE of a command that only groups subcommands: alone it
// prints help; with an unknown subcommand it is a usage error (exit 2)
// rather than cobra's help with exit 0.
func GroupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return Usagef("unknown command %q for %q\nRun '%s --help' for usage.", args[0], cmd.CommandPath(), cmd.CommandPath())
	}
	return cmd.Help()
}
