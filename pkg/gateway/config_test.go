package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigMaxStartups(t *testing.T) {
	for _, tc := range []struct {
		text    string
		want    int
		wantErr string
	}{
		{text: "dev = true\n", want: 0},
		{text: "dev = true\n[postgres]\nmax_startups = 8\n", want: 8},
		{text: "dev = true\n[postgres]\nmax_startups = -1\n", wantErr: "postgres.max_startups = -1: want 1 to 65536"},
		{text: "dev = true\n[postgres]\nmax_startup = 8\n", wantErr: "unknown key postgres.max_startup"},
	} {
		path := filepath.Join(t.TempDir(), "gateway.toml")
		if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(path)
		if err == nil {
			err = c.fill()
		}
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: err = %v, want %q", tc.text, err, tc.wantErr)
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tc.text, err)
		case tc.wantErr == "" && c.Postgres.MaxStartups != tc.want:
			t.Errorf("%q: max_startups = %d, want %d", tc.text, c.Postgres.MaxStartups, tc.want)
		}
	}
}

func TestConfigAllowCleartextPassword(t *testing.T) {
	for text, want := range map[string]bool{
		"dev = true\n": false,
		"dev = true\n[postgres]\nallow_cleartext_password = true\n": true,
	} {
		path := filepath.Join(t.TempDir(), "gateway.toml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		if c.Postgres.AllowCleartextPassword != want {
			t.Errorf("%q: allow_cleartext_password = %v, want %v", text, c.Postgres.AllowCleartextPassword, want)
		}
	}
}
