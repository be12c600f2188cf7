package cmdutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatectl/gatectl/pkg/client"
	pgproxy "github.com/gatectl/gatectl/pkg/proxy/postgres"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"plain", errors.New("boom"), 1},
		{"usage", Usagef("bad"), 2},
		{"denied", &DeniedError{Msg: "no"}, 3},
		{"denied-wrapped", fmt.Errorf("exec: %w", &DeniedError{Msg: "no"}), 3},
		{"auth", &AuthError{Msg: "who"}, 4},
		{"refused", &RefusedError{Msg: "denied by approver"}, 5},
		{"pending", &PendingError{Msg: "waiting"}, 8},
		{"silent", &SilentError{Code: 7}, 7},
		{"api-401", &client.Error{Status: http.StatusUnauthorized}, 4},
		{"api-403", &client.Error{Status: http.StatusForbidden}, 3},
		{"api-400", &client.Error{Status: http.StatusBadRequest}, 2},
		{"api-500", &client.Error{Status: http.StatusInternalServerError}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExitCode(tt.err); got != tt.want {
				t.Errorf("ExitCode(%v): got %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

// TestPGErrorTellsRefusalsApart: a refusal by the gateway exits 3; the
// target's own permission error shares SQLSTATE 42501 but is an error of
// the target (exit 1), and must not pass for a policy decision.
func TestPGErrorTellsRefusalsApart(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
		says string
	}{
		{"gateway-refusal", &pgconn.PgError{Code: "42501", Message: `denied by rule "no-drop"`, Hint: pgproxy.RefusalHint}, ExitDenied, `denied by rule "no-drop"`},
		{"target-permission", &pgconn.PgError{Code: "42501", Message: "permission denied for table pg_authid"}, ExitError, "the target refused: permission denied for table pg_authid"},
		{"target-permission-forged-hint", &pgconn.PgError{Code: "42501", Message: "permission denied", Hint: "refused by the gatectl gateway"}, ExitError, "SQLSTATE 42501"},
		{"bad-token", &pgconn.PgError{Code: "28P01", Message: "token expired", Hint: "send a valid OIDC token"}, ExitAuth, "hint: send a valid OIDC token"},
		{"target-error", &pgconn.PgError{Code: "22012", Message: "division by zero"}, ExitError, "division by zero (SQLSTATE 22012)"},
		{"not-pg", errors.New("dial tcp: refused"), ExitError, "dial tcp: refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := PGError(tt.err)
			if got := ExitCode(err); got != tt.want {
				t.Errorf("exit %d, want %d (%v)", got, tt.want, err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("%q does not say %q", err, tt.says)
			}
		})
	}
}

func TestCheckReason(t *testing.T) {
	if err := CheckReason(strings.Repeat("r", MaxReason)); err != nil {
		t.Errorf("a reason of MaxReason bytes: %v", err)
	}
	err := CheckReason(strings.Repeat("r", MaxReason+1))
	if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), "at most 4096") {
		t.Errorf("a reason over MaxReason: %v (exit %d), want a usage error naming the limit", err, ExitCode(err))
	}
}

func TestTokenOrder(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/tok"
	if err := writeFile(file, "from-file\n"); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GATECTL_TOKEN": "from-env"}
	f := &Factory{IO: Test(nil, nil, nil), Getenv: func(k string) string { return env[k] }, TokenFile: file}
	if got, err := f.Token(); err != nil || got != "from-file" {
		t.Errorf("--token-file must win over GATECTL_TOKEN: got %q, %v; want from-file", got, err)
	}
	f.TokenFile = ""
	if got, _ := f.Token(); got != "from-env" {
		t.Errorf("without --token-file: got %q, want GATECTL_TOKEN's from-env", got)
	}
	// A file named on the command line that cannot be read is an error,
	// never a fall-back to GATECTL_TOKEN's identity.
	f.TokenFile = dir + "/missing"
	var fe *AuthError
	if got, err := f.Token(); !errors.As(err, &fe) {
		t.Errorf("unreadable --token-file with GATECTL_TOKEN set: got %q, %v; want an AuthError", got, err)
	}
	f = &Factory{IO: Test(nil, nil, nil), Getenv: func(string) string { return "" }}
	var ae *AuthError
	if _, err := f.Token(); !errors.As(err, &ae) {
		t.Errorf("no token: got %v, want an AuthError", err)
	}
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o600) }

func TestPGErrorUntrustedCA(t *testing.T) {
	err := PGError(fmt.Errorf("connect: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}))
	if err == nil || !strings.Contains(err.Error(), "set GATECTL_CA") || ExitCode(err) != 1 {
		t.Errorf("got %v (exit %d), want exit 1 telling to set GATECTL_CA", err, ExitCode(err))
	}
}
