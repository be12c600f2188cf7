package identity

import (
	"crypto/sha256"
	"encoding/hex"
)

// Fingerprint returns a short, non-reversible id for a raw token: the first
// 12 hex digits of its SHA-256. Logs and audit events use it to tell tokens
// apart without holding the token itself.
func Fingerprint(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])[:12]
}
