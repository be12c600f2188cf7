package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/policy"
)

func TestTargetRoots(t *testing.T) {
	dir := t.TempDir()
	caPEM, ca := testCA(t)
	good := filepath.Join(dir, "ca.pem")
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(good, caPEM, 0o644)
	os.WriteFile(empty, []byte("no certificate here\n"), 0o644)

	pool, err := targetRoots(&policy.Target{Name: "orders", TLS: "verify-full", TLSCA: "file:" + good})
	if err != nil {
		t.Fatal(err)
	}
	// The pool verifies a certificate the CA signed, and only the pool
	// does: the system roots do not know this CA.
	if _, err := ca.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Errorf("the CA from tls_ca does not verify itself: %v", err)
	}
	if pool, err := targetRoots(&policy.Target{Name: "orders", TLS: "verify-full"}); pool != nil || err != nil {
		t.Errorf("without tls_ca: got %v, %v; want nil (the system roots), nil", pool, err)
	}

	for _, tc := range []struct{ name, ref, want string }{
		{"missing-file", "file:" + filepath.Join(dir, "nope.pem"), "no such file"},
		{"no-certificate", "file:" + empty, "holds no PEM certificate"},
		{"not-a-file-ref", "env:CA", "is not file:PATH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool, err := targetRoots(&policy.Target{Name: "orders", TLS: "verify-full", TLSCA: tc.ref})
			if err == nil || pool != nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, %v; want no pool and an error containing %q", pool, err, tc.want)
			}
		})
	}
}

// testCA is a self-signed CA certificate, as PEM and parsed.
func testCA(t *testing.T) ([]byte, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "orders test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert
}
