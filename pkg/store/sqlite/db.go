// Package sqlite is gatectl's embedded storage: one SQLite file, through the
// pure-Go modernc.org/sqlite driver, holding the audit log.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/gatectl/gatectl/pkg/audit"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// busyTimeoutMS is how long a connection waits for a lock held by another
// process (a second gatectl on the same file, a backup) before failing.
const busyTimeoutMS = 10000

// readers caps the read pool; reads never block the writer under WAL.
const readers = 4

// pageSize is the page size of a new database file.
const pageSize = 64 << 10

// writerCacheKiB is the writer connection's page cache, in KiB: room for
// an audit block of maxBlockEvents large events, several times over.
const writerCacheKiB = 8 << 10

// DB is an open gatectl SQLite database. It is safe for concurrent use.
type DB struct {
	// w is the single writer connection: SQLite admits one writer at a time,
	// and queuing writers in Go is cheaper and clearer than SQLITE_BUSY.
	w *sql.DB
	// r is a pool of read-only connections.
	r *sql.DB
	// blocks writes the audit log through w.
	blocks *blockWriter
}

// Open opens or creates the database at path, switches it to WAL, and
// brings its schema up to date.
func Open(path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// A file: URI keeps '?' or '#' in a directory name from being read as
	// DSN syntax.
	uri := (&url.URL{Scheme: "file", Path: abs}).String()
	// The driver runs _pragma values before _journal_mode, which lets
	// page_size apply to a new file before WAL fixes it. Audit blocks are
	// large texts: pages of pageSize bytes take a sixteenth of the
	// syscalls, WAL frames and page headers that 4 KiB pages would. An
	// existing database keeps its page size.
	params := fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=page_size(%d)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_journal_mode=WAL",
		busyTimeoutMS, pageSize)

	// _txlock=immediate takes the write lock at BEGIN, so a transaction never
	// fails halfway on a lock upgrade. The writer's page cache holds a whole
	// audit block, so that writing one does not spill pages to the WAL
	// mid-transaction and read them back.
	w, err := sql.Open("sqlite", uri+params+fmt.Sprintf("&_pragma=cache_size(-%d)&_txlock=immediate", writerCacheKiB))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)

	db := &DB{w: w}
	// The schema must exist before the read pool opens: a query_only
	// connection cannot switch a new file to WAL.
	if err := migrate(context.Background(), w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	if db.blocks, err = newBlockWriter(context.Background(), w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	r, err := sql.Open("sqlite", uri+params+"&_query_only=1")
	if err != nil {
		db.blocks.close()
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	db.r = r
	return db, nil
}

// Close closes the database. Stop the audit.Log that writes to it first.
func (db *DB) Close() error {
	return errors.Join(db.r.Close(), db.blocks.close(), db.w.Close())
}

// Audit returns the audit log store kept in this database.
func (db *DB) Audit() audit.Store {
	return auditStore{db: db}
}
