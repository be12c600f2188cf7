package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigPostgresNumbers: [postgres] max_startups and statement_cache,
// their defaults and their bounds.
func TestConfigPostgresNumbers(t *testing.T) {
	maxStartups := func(c *Config) int { return c.Postgres.MaxStartups }
	for _, tc := range []struct {
		text    string
		get     func(*Config) int
		want    int
		wantErr string
	}{
		{text: "dev = true\n", get: maxStartups, want: 0},
		{text: "dev = true\n[postgres]\nmax_startups = 8\n", get: maxStartups, want: 8},
		{text: "dev = true\n[postgres]\nmax_startups = -1\n", wantErr: "postgres.max_startups = -1: want 1 to 65536"},
		{text: "dev = true\n[postgres]\nmax_startup = 8\n", wantErr: "unknown key postgres.max_startup"},
		{text: "dev = true\n", get: (*Config).statementCache, want: DefaultStatementCache},
		{text: "dev = true\n[postgres]\nstatement_cache = 0\n", get: (*Config).statementCache, want: 0},
		{text: "dev = true\n[postgres]\nstatement_cache = 20\n", get: (*Config).statementCache, want: 20},
		{text: "dev = true\n[postgres]\nstatement_cache = -1\n", wantErr: "postgres.statement_cache = -1: want 0 (off) to 10000"},
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
		case tc.wantErr == "" && tc.get(c) != tc.want:
			t.Errorf("%q: got %d, want %d", tc.text, tc.get(c), tc.want)
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

// TestConfigFetchTimeout: policy.fetch_timeout reaches the policy
// follower, so a repository that accepts connections and never answers
// fails the start within it rather than after the default two minutes.
func TestConfigFetchTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered, until the test ends
		}
	}()
	path := filepath.Join(t.TempDir(), "gateway.toml")
	text := fmt.Sprintf("dev = true\ndata_dir = %q\n[listen]\napi = \"127.0.0.1:0\"\npostgres = \"off\"\n[policy]\nsource = \"http://%s/policy.git\"\nfetch_timeout = \"1s\"\n",
		t.TempDir(), ln.Addr())
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(*cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = g.start(ctx)
	if err == nil || !strings.Contains(err.Error(), "within 1s") {
		t.Fatalf("start = %v; want the fetch to give up within 1s", err)
	}
}

func TestConfigFetchTimeoutMustBePositive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.toml")
	if err := os.WriteFile(path, []byte("[policy]\nfetch_timeout = \"0s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "not a positive duration") {
		t.Fatalf("LoadConfig = %v; want a positive duration asked for", err)
	}
}
