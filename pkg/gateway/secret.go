package gateway

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/gatectl/gatectl/pkg/policy"
)

// Whoever can commit to the policy branch names the secrets a target's
// credential comes from, and the address it is sent to. So the gateway's
// operator, not the policy, says which secrets may be used at all: an
// env:NAME must match one of the gateway.toml [secrets] env patterns, and a
// file:PATH must be a regular file inside one of its directories. Without
// that, a policy commit could send any file or variable of the gateway's
// host (its own keys, a cloud credential, /proc/self/environ) to a server
// of its author's as a password.

// Defaults of gateway.toml [secrets].
var (
	// DefaultSecretEnv are the environment variables a target may name:
	// the ORDERS_RO_PASSWORD of the policy template and the demo.
	DefaultSecretEnv = []string{"*_PASSWORD"}
	// DefaultSecretFiles are the directories a target's file: may name:
	// where Docker and Kubernetes mount secrets.
	DefaultSecretFiles = []string{"/run/secrets"}
)

// maxSecretFile bounds what a file: reference or a tls_ca file may hold:
// a password or a few certificates, never /dev/zero.
const maxSecretFile = 64 << 10

// secretRules resolves policy secret references within what gateway.toml
// [secrets] allows.
type secretRules struct {
	env   []string // path.Match patterns of variable names
	files []string // absolute, clean directories
}

func newSecretRules(env, files []string) (secretRules, error) {
	r := secretRules{env: env}
	for _, p := range env {
		if _, err := path.Match(p, ""); err != nil {
			return r, fmt.Errorf("[secrets] env pattern %q: %w", p, err)
		}
	}
	for _, d := range files {
		if !filepath.IsAbs(d) {
			return r, fmt.Errorf("[secrets] files: %q is not an absolute directory", d)
		}
		r.files = append(r.files, filepath.Clean(d))
	}
	return r, nil
}

// resolve reads a policy secret reference ("env:NAME" or "file:PATH").
// Errors name the reference and what to change, never a value.
func (r secretRules) resolve(s policy.Secret) (string, error) {
	kind, ref, _ := strings.Cut(string(s), ":")
	switch kind {
	case "env":
		if !r.envAllowed(ref) {
			return "", fmt.Errorf("%q names a variable gateway.toml does not let targets use ([secrets] env = %q); an admin must add it there", s, r.env)
		}
		v, ok := os.LookupEnv(ref)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s (from %q) is not set in the gateway's environment", ref, s)
		}
		return v, nil
	case "file":
		b, err := r.readFile(ref)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	// The policy loader refuses anything else; fail closed if one slips by.
	return "", fmt.Errorf("secret reference %q is neither env:NAME nor file:PATH", kind+":…")
}

// readFile reads the file at p, which a target names (a file: secret or its
// tls_ca), if it lies in a directory [secrets] files allows. It is opened
// through os.Root, so neither ".." nor a symbolic link leads out of that
// directory, and without blocking, and must be a small regular file.
func (r secretRules) readFile(p string) ([]byte, error) {
	dir, rel, ok := r.fileDir(p)
	if !ok {
		return nil, fmt.Errorf("%q is not in a directory gateway.toml lets targets use ([secrets] files = %q); an admin must move the file or add its directory there", "file:"+p, r.files)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	defer root.Close()
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read %s: no such file", p)
		}
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	defer f.Close()
	// A FIFO or a device would block a login or exhaust memory.
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: not a regular file (%s)", p, st.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("read %s: larger than %d KiB", p, maxSecretFile>>10)
	}
	return b, nil
}

func (r secretRules) envAllowed(name string) bool {
	for _, p := range r.env {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// fileDir finds the allowed directory that holds p, and p relative to it.
func (r secretRules) fileDir(p string) (dir, rel string, ok bool) {
	if !filepath.IsAbs(p) {
		return "", "", false
	}
	p = filepath.Clean(p)
	for _, d := range r.files {
		if rel, err := filepath.Rel(d, p); err == nil && filepath.IsLocal(rel) {
			return d, rel, true
		}
	}
	return "", "", false
}
