package pgserver

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSSLVerifyFullWithPsql starts a server that accepts TCP logins only
// over TLS and connects to it with psql in sslmode=verify-full.
func TestSSLVerifyFullWithPsql(t *testing.T) {
	if _, ok := Installed(); !ok {
		t.Fatal("PostgreSQL is not installed; run `make deps`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{SSL: true, HBA: []string{"hostnossl all all 127.0.0.1/32 reject"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	const password = "app-S3cret-Tq42"
	if out, err := s.Psql(ctx, "postgres", "CREATE ROLE app LOGIN PASSWORD '"+password+"';"); err != nil {
		t.Fatal(err, out)
	}
	if s.CertPool() == nil {
		t.Fatal("CertPool of an SSL server: got nil")
	}
	checkKeyFile(t, filepath.Join(s.Dir, "data", "server.key"))

	tmp := t.TempDir()
	rightCA := filepath.Join(tmp, "right-ca.crt")
	if err := os.WriteFile(rightCA, s.CACertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	other, err := newServerCerts()
	if err != nil {
		t.Fatal(err)
	}
	wrongCA := filepath.Join(tmp, "wrong-ca.crt")
	if err := os.WriteFile(wrongCA, other.caPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	port := strconv.Itoa(s.Port)
	tests := []struct {
		name    string
		conn    string
		wantOut string // psql's output on success
		wantErr string // part of psql's error on failure
	}{
		{"verify-full-by-ip", "host=127.0.0.1 sslmode=verify-full sslrootcert=" + rightCA, "t", ""},
		{"verify-full-by-name", "host=localhost hostaddr=127.0.0.1 sslmode=verify-full sslrootcert=" + rightCA, "t", ""},
		{"wrong-ca", "host=127.0.0.1 sslmode=verify-full sslrootcert=" + wrongCA, "", "certificate verify failed"},
		{"no-tls", "host=127.0.0.1 sslmode=disable", "", "no encryption"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := tt.conn + " port=" + port + " user=app dbname=postgres"
			cmd := exec.CommandContext(ctx, s.tool("psql"), "-X", "-A", "-t", "-d", conn,
				"-c", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
			cmd.Env = append(Environ(), "PGPASSWORD="+password)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("psql: %v: %s", err, errb.String())
				}
				if got := strings.TrimSpace(out.String()); got != tt.wantOut {
					t.Errorf("pg_stat_ssl.ssl: got %q, want %q", got, tt.wantOut)
				}
				return
			}
			if err == nil {
				t.Fatalf("psql: got success (%q), want an error containing %q", out.String(), tt.wantErr)
			}
			if got := errb.String(); !strings.Contains(got, tt.wantErr) {
				t.Errorf("psql error: got %q, want it to contain %q", got, tt.wantErr)
			}
		})
	}
}

// checkKeyFile checks what PostgreSQL demands of its key file: mode 0600 and,
// when the server runs as the postgres OS user, owned by that user.
func checkKeyFile(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("%s mode: got %v, want %v", path, got, want)
	}
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strconv.FormatUint(uint64(st.Sys().(*syscall.Stat_t).Uid), 10), u.Uid; got != want {
		t.Errorf("%s owner: got uid %s, want the postgres user's %s", path, got, want)
	}
}
