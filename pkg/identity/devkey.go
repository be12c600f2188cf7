package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	jose "github.com/go-jose/go-jose/v4"
)

// loadOrCreateKey returns the signing key stored at path, creating an ECDSA
// P-256 key there (mode 0600) when the file does not exist yet. A key file
// that other users can read is refused: whoever holds it can mint any
// identity for this gateway.
func loadOrCreateKey(path string) (crypto.Signer, error) {
	key, err := loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := createKey(path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	// Load what is on disk now, which is ours or that of a process that
	// created the key at the same moment: both then sign with the same key.
	return loadKey(path)
}

func loadKey(path string) (crypto.Signer, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("dev issuer key %s is accessible by other users (mode %04o): run chmod 600 on it", path, info.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read dev issuer key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("dev issuer key %s is not a PEM \"PRIVATE KEY\": delete it to have a new one created", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("dev issuer key %s: %w: delete it to have a new one created", path, err)
	}
	switch k := parsed.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("dev issuer key %s: ECDSA curve %s is not supported, use P-256", path, k.Curve.Params().Name)
		}
		return k, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("dev issuer key %s: RSA keys need at least 2048 bits, this one has %d", path, k.N.BitLen())
		}
		return k, nil
	}
	return nil, fmt.Errorf("dev issuer key %s: %T keys are not supported, use ECDSA P-256 or RSA", path, parsed)
}

// createKey writes a new key to a temporary file and links it into place, so
// no reader ever sees a partly written key and an existing key is never
// replaced (os.Link fails with fs.ErrExist).
func createKey(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create dev issuer key directory: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate dev issuer key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode dev issuer key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".devkey-*")
	if err != nil {
		return fmt.Errorf("create dev issuer key: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp already uses 0600; Chmod states it for the reader.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("create dev issuer key: %w", err)
	}
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return fmt.Errorf("write dev issuer key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write dev issuer key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write dev issuer key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("install dev issuer key: %w", err)
	}
	return nil
}

// signingAlgorithm is the JOSE algorithm the dev issuer uses with key.
func signingAlgorithm(key crypto.Signer) jose.SignatureAlgorithm {
	if _, ok := key.(*rsa.PrivateKey); ok {
		return jose.RS256
	}
	return jose.ES256
}

// keyID derives a stable key id from the public key (its RFC 7638
// thumbprint), so it survives restarts like the key does.
func keyID(key crypto.Signer) (string, error) {
	jwk := jose.JSONWebKey{Key: key.Public()}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("dev issuer key id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}
