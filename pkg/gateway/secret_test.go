package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/policy"
)

func TestSecretRules(t *testing.T) {
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	outside := filepath.Join(dir, "outside")
	for _, d := range []string{secrets, outside, filepath.Join(secrets, "sub")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(secrets, "orders_rw"), "s3cret\n")
	write(filepath.Join(secrets, "sub", "nested"), "nested")
	write(filepath.Join(outside, "host-key"), "PRIVATE")
	write(filepath.Join(secrets, "big"), strings.Repeat("x", maxSecretFile+1))
	if err := os.Symlink(filepath.Join(outside, "host-key"), filepath.Join(secrets, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(secrets, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ORDERS_RW_PASSWORD", "from-env")
	t.Setenv("CLOUD_SECRET_KEY", "cloud")

	r, err := newSecretRules(DefaultSecretEnv, []string{secrets})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref, want, wantErr string
	}{
		{ref: "env:ORDERS_RW_PASSWORD", want: "from-env"},
		{ref: "env:CLOUD_SECRET_KEY", wantErr: `does not let targets use ([secrets] env = ["*_PASSWORD"])`},
		{ref: "env:PATH", wantErr: "an admin must add it there"},
		{ref: "file:" + filepath.Join(secrets, "orders_rw"), want: "s3cret"},
		{ref: "file:" + filepath.Join(secrets, "sub", "nested"), want: "nested"},
		{ref: "file:" + filepath.Join(outside, "host-key"), wantErr: "is not in a directory gateway.toml lets targets use"},
		{ref: "file:" + secrets + "/../outside/host-key", wantErr: "is not in a directory"},
		{ref: "file:/proc/self/environ", wantErr: "is not in a directory"},
		{ref: "file:relative/orders_rw", wantErr: "is not in a directory"},
		{ref: "file:" + filepath.Join(secrets, "escape"), wantErr: "escape"},
		{ref: "file:" + filepath.Join(secrets, "fifo"), wantErr: "not a regular file"},
		{ref: "file:" + filepath.Join(secrets, "big"), wantErr: "larger than 64 KiB"},
	} {
		done := make(chan struct{})
		var got string
		var err error
		go func() {
			defer close(done)
			got, err = r.resolve(policy.Secret(tc.ref))
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: resolve blocked", tc.ref)
		}
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: got %q, %v; want an error containing %q", tc.ref, got, err, tc.wantErr)
			} else if strings.Contains(err.Error(), "PRIVATE") || strings.Contains(err.Error(), "cloud") {
				t.Errorf("%s: the error holds the secret: %v", tc.ref, err)
			}
		case err != nil || got != tc.want:
			t.Errorf("%s: got %q, %v; want %q", tc.ref, got, err, tc.want)
		}
	}
}

func TestSecretRulesConfig(t *testing.T) {
	if _, err := newSecretRules([]string{"["}, nil); err == nil {
		t.Error("a malformed env pattern was accepted")
	}
	if _, err := newSecretRules(nil, []string{"run/secrets"}); err == nil || !strings.Contains(err.Error(), "not an absolute directory") {
		t.Errorf("a relative secrets directory: %v", err)
	}
}
