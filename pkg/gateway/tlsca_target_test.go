package gateway

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatectl/gatectl/pkg/policy"
)

func TestTargetRoots(t *testing.T) {
	// Any private CA will do; the dev CA writes its certificate to ca.pem.
	dir := t.TempDir()
	ca, err := loadOrCreateDevCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "ca.pem")
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("no certificate here\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	rules, err := newSecretRules(nil, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := rules.targetRoots(&policy.Target{Name: "orders", TLS: "verify-full", TLSCA: "file:" + good})
	if err != nil {
		t.Fatal(err)
	}
	// The pool verifies a certificate the CA signed, and only the pool
	// does: the system roots do not know this CA.
	if _, err := ca.cert.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Errorf("the CA from tls_ca does not verify itself: %v", err)
	}
	if pool, err := rules.targetRoots(&policy.Target{Name: "orders", TLS: "verify-full"}); pool != nil || err != nil {
		t.Errorf("without tls_ca: got %v, %v; want nil (the system roots), nil", pool, err)
	}

	for _, tc := range []struct{ name, ref, want string }{
		{"missing-file", "file:" + filepath.Join(dir, "nope.pem"), "no such file"},
		{"no-certificate", "file:" + empty, "holds no PEM certificate"},
		{"not-a-file-ref", "env:CA", "is not file:PATH"},
		// The policy names it: a host file outside [secrets] files is not
		// even opened.
		{"outside-secrets-files", "file:/etc/hostname", "is not in a directory gateway.toml lets targets use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool, err := rules.targetRoots(&policy.Target{Name: "orders", TLS: "verify-full", TLSCA: tc.ref})
			if err == nil || pool != nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, %v; want no pool and an error containing %q", pool, err, tc.want)
			}
		})
	}
}
