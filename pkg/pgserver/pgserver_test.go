package pgserver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStartPsqlStop(t *testing.T) {
	if _, ok := Installed(); !ok {
		t.Fatal("PostgreSQL is not installed; run `make deps`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.Dir
	if s.CACertPEM != nil || s.CertPool() != nil {
		t.Error("a server started without SSL has a CA")
	}
	out, err := s.Psql(ctx, "postgres", "CREATE ROLE app LOGIN PASSWORD 'pw'; SELECT 40 + 2;")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(out), "42"; got != want {
		t.Errorf("psql output: got %q, want %q", got, want)
	}
	if _, err := s.Psql(ctx, "postgres", "SELECT nope"); err == nil {
		t.Error("psql with a bad statement: got no error")
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Psql(ctx, "postgres", "SELECT 1"); err == nil {
		t.Error("psql after Stop: got no error")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after Stop, %s: got %v, want it removed", dir, err)
	}
}

// TestStartReapsOrphans checks that a server whose owner process died
// without calling Stop is stopped and removed by the next Start.
func TestStartReapsOrphans(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	orphan, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Pretend the owner died: a PID that cannot exist on Linux.
	if err := os.WriteFile(filepath.Join(orphan.Dir, ownerFile), []byte("2147483647"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if _, err := os.Stat(orphan.Dir); !os.IsNotExist(err) {
		orphan.Stop()
		t.Fatalf("orphaned server %s: got %v, want it stopped and removed", orphan.Dir, err)
	}
	if _, err := s.Psql(ctx, "postgres", "SELECT 1"); err != nil {
		t.Errorf("new server: %v", err)
	}
}
