package pgserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"path/filepath"
	"time"
)

// certLifetime bounds the throwaway certificates: a test server lives for
// minutes, a demo for hours.
const certLifetime = 7 * 24 * time.Hour

// serverCerts is a throwaway CA and a server certificate it signed.
type serverCerts struct {
	ca                     *x509.Certificate
	caPEM, certPEM, keyPEM []byte
}

// newServerCerts makes an ECDSA P-256 CA and a server certificate for
// 127.0.0.1 and localhost signed by it. The CA's key is discarded: nothing
// else is ever signed with it. Serial numbers are left nil so that
// x509.CreateCertificate picks random ones.
func newServerCerts() (*serverCerts, error) {
	notBefore := time.Now().Add(-time.Hour) // tolerate a little clock skew
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "gatectl pgserver throwaway CA"},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(certLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate server key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		NotBefore:   notBefore,
		NotAfter:    notBefore.Add(certLifetime),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode server key: %w", err)
	}
	return &serverCerts{
		ca:      ca,
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// setupSSL writes server.crt and server.key into the data directory, owned
// by the server's OS user with mode 0600 as PostgreSQL demands of the key,
// records the CA, and returns the postgresql.conf lines that turn SSL on.
func (s *Server) setupSSL(data string) ([]string, error) {
	c, err := newServerCerts()
	if err != nil {
		return nil, err
	}
	if err := s.writeOwned(filepath.Join(data, "server.crt"), c.certPEM); err != nil {
		return nil, fmt.Errorf("write server certificate: %w", err)
	}
	if err := s.writeOwned(filepath.Join(data, "server.key"), c.keyPEM); err != nil {
		return nil, fmt.Errorf("write server key: %w", err)
	}
	s.CACertPEM, s.ca = c.caPEM, c.ca
	return []string{"ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'"}, nil
}

// CertPool returns a new pool holding the server's CA, for a client's
// RootCAs in verify-full mode. It is nil when the server was started
// without SSL.
func (s *Server) CertPool() *x509.CertPool {
	if s.ca == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.ca)
	return pool
}
