// Package identity verifies the OIDC tokens that callers present and maps
// them to policy principals; it also holds the embedded OIDC issuer that
// `gatectl gateway --dev` serves.
//
// Verification fails closed: a token is accepted only when its signature,
// issuer, audience, expiry and not-before all check out against an issuer
// that the policy trusts. Every refusal is an *AuthError whose Reason is safe
// to show to the caller and to write to the audit log; no error of this
// package ever carries a token or key material. Use Fingerprint to refer to
// a token in logs.
package identity
