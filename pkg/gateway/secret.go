package gateway

import (
	"fmt"
	"os"
	"strings"

	"github.com/gatectl/gatectl/pkg/policy"
)

// resolveSecret reads a policy secret reference ("env:NAME" or
// "file:PATH"). Errors name the reference, never a value.
func resolveSecret(s policy.Secret) (string, error) {
	kind, ref, _ := strings.Cut(string(s), ":")
	switch kind {
	case "env":
		v, ok := os.LookupEnv(ref)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s (from %q) is not set in the gateway's environment", ref, s)
		}
		return v, nil
	case "file":
		b, err := os.ReadFile(ref)
		if err != nil {
			return "", fmt.Errorf("read secret file %s: %w", ref, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	// The policy loader refuses anything else; fail closed if one slips by.
	return "", fmt.Errorf("secret reference %q is neither env:NAME nor file:PATH", kind+":…")
}
