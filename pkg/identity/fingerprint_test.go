package identity

import "testing"

func TestFingerprint(t *testing.T) {
	a, b := Fingerprint("token-a"), Fingerprint("token-b")
	if len(a) != 12 {
		t.Errorf("length: got %d, want 12", len(a))
	}
	if a != Fingerprint("token-a") {
		t.Errorf("not deterministic: %q, %q", a, Fingerprint("token-a"))
	}
	if a == b {
		t.Errorf("two tokens share the fingerprint %q", a)
	}
	// `printf token-a | sha256sum`, first 12 hex digits.
	if got, want := a, "a70bf50e531c"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
