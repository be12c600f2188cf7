package pgserver

import (
	"context"
	"os"
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
