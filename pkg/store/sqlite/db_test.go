package sqlite

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func openDB(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenConfiguresTheDatabase(t *testing.T) {
	// A '?' and a '#' in the path must not be read as DSN syntax.
	dir := filepath.Join(t.TempDir(), "odd?dir#x")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gatectl.db")
	db := openDB(t, path)
	tests := []struct {
		name, query, want string
	}{
		{"wal", "PRAGMA journal_mode", "wal"},
		{"busy-timeout", "PRAGMA busy_timeout", "10000"},
		{"synchronous-full", "PRAGMA synchronous", "2"},
		{"page-size", "PRAGMA page_size", "65536"},
		{"schema-version", "SELECT max(version) FROM schema_migrations", "2"},
		{"file-name", "SELECT file FROM pragma_database_list WHERE name = 'main'", path},
	}
	for _, tt := range tests {
		for _, pool := range []struct {
			name string
			db   *sql.DB
		}{{"writer", db.w}, {"reader", db.r}} {
			t.Run(tt.name+"-"+pool.name, func(t *testing.T) {
				var got string
				if err := pool.db.QueryRow(tt.query).Scan(&got); err != nil {
					t.Fatalf("%s: %v", tt.query, err)
				}
				if got != tt.want {
					t.Errorf("%s = %q, want %q", tt.query, got, tt.want)
				}
			})
		}
	}
	var cache int
	if err := db.w.QueryRow("PRAGMA cache_size").Scan(&cache); err != nil || cache != -writerCacheKiB {
		t.Errorf("writer PRAGMA cache_size = %d (%v), want %d", cache, err, -writerCacheKiB)
	}
	if _, err := db.r.Exec("DELETE FROM audit_blocks"); err == nil || !strings.Contains(err.Error(), "readonly") {
		t.Errorf("write through the read pool: err = %v, want a readonly error", err)
	}
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatectl.db")
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	db.Close()

	// Reopening applies nothing twice.
	db = openDB(t, path)
	var rows int
	if err := db.r.QueryRow("SELECT count(*) FROM schema_migrations").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if got, want := rows, len(migrations); got != want {
		t.Errorf("schema_migrations has %d rows, want %d", got, want)
	}

	// A database from a newer gatectl is refused, not written into.
	if _, err := db.w.Exec("INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)", len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(path)
	if err == nil || !strings.Contains(err.Error(), "newer than this gatectl knows") {
		t.Errorf("Open on a newer schema: err = %v, want a refusal naming the version", err)
	}
}

func TestOpenFailsOnAnUnwritablePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "gatectl.db")
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Open(%s): err = %v, want an error naming the path", path, err)
	}
}
