package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are the schema changes in order; migration i brings the
// database to version i+1. Never edit one that has shipped: append.
var migrations = []string{
	`CREATE TABLE audit_events (
		seq           INTEGER PRIMARY KEY,
		time_ns       INTEGER NOT NULL,
		principal     TEXT NOT NULL,
		action        TEXT NOT NULL,
		target        TEXT NOT NULL,
		decision      TEXT NOT NULL,
		reason        TEXT NOT NULL,
		rule          TEXT NOT NULL,
		policy_commit TEXT NOT NULL,
		session       TEXT NOT NULL,
		detail        TEXT,
		prev          TEXT NOT NULL,
		hash          TEXT NOT NULL
	);
	CREATE INDEX audit_events_time ON audit_events (time_ns);
	CREATE INDEX audit_events_principal ON audit_events (principal, seq);
	CREATE INDEX audit_events_session ON audit_events (session, seq) WHERE session <> '';`,
}

// migrate applies the migrations the database has not seen, each in its own
// transaction with its version row.
func migrate(ctx context.Context, w *sql.DB) error {
	if _, err := w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var version int
	if err := w.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		// Fail closed: an older binary must not write into a schema it does
		// not know.
		return fmt.Errorf("schema version %d is newer than this gatectl knows (%d); run a newer gatectl", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		if err := apply(ctx, w, i+1, migrations[i]); err != nil {
			return err
		}
	}
	return nil
}

func apply(ctx context.Context, w *sql.DB, version int, stmt string) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate schema to version %d: %w", version, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("migrate schema to version %d: %w", version, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, time.Now().Unix()); err != nil {
		return fmt.Errorf("migrate schema to version %d: %w", version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate schema to version %d: %w", version, err)
	}
	return nil
}
