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

	// Version 2 keeps the audit log in blocks of events (see auditStore):
	// each audit_events row becomes a block of one event, with the JSON
	// line that audit.AppendJSONLine would write, so an existing log keeps
	// verifying. The JSON comes from SQLite's json_object, whose escaping
	// differs from encoding/json's in bytes but not in meaning. Values an
	// edited row may hold (a BLOB, a detail that is not JSON) become JSON
	// strings, so the migration succeeds and Verify reports the event.
	`CREATE TABLE audit_blocks (
		first_seq   INTEGER PRIMARY KEY,
		last_seq    INTEGER NOT NULL,
		time_min_ns INTEGER NOT NULL,
		time_max_ns INTEGER NOT NULL,
		last_hash   TEXT NOT NULL,
		events      TEXT NOT NULL
	);
	CREATE TABLE audit_block_keys (
		field     TEXT NOT NULL,
		value     TEXT NOT NULL,
		first_seq INTEGER NOT NULL,
		PRIMARY KEY (field, value, first_seq)
	) WITHOUT ROWID;
	INSERT INTO audit_blocks (first_seq, last_seq, time_min_ns, time_max_ns, last_hash, events)
	SELECT seq, seq, time_ns, time_ns, hash,
		CASE WHEN detail IS NULL THEN json_object(
			'seq', seq, 'time', time_text,
			'principal', CAST(principal AS TEXT), 'action', CAST(action AS TEXT),
			'target', CAST(target AS TEXT), 'decision', CAST(decision AS TEXT),
			'reason', CAST(reason AS TEXT), 'rule', CAST(rule AS TEXT),
			'policy_commit', CAST(policy_commit AS TEXT), 'session', CAST(session AS TEXT),
			'prev', CAST(prev AS TEXT), 'hash', CAST(hash AS TEXT))
		ELSE json_object(
			'seq', seq, 'time', time_text,
			'principal', CAST(principal AS TEXT), 'action', CAST(action AS TEXT),
			'target', CAST(target AS TEXT), 'decision', CAST(decision AS TEXT),
			'reason', CAST(reason AS TEXT), 'rule', CAST(rule AS TEXT),
			'policy_commit', CAST(policy_commit AS TEXT), 'session', CAST(session AS TEXT),
			'detail', CASE WHEN json_valid(detail) THEN json(detail) ELSE CAST(detail AS TEXT) END,
			'prev', CAST(prev AS TEXT), 'hash', CAST(hash AS TEXT))
		END || char(10)
	FROM (
		-- time_ns as RFC 3339 in UTC with nanoseconds, trailing zeros
		-- trimmed, as Go's time.RFC3339Nano writes it.
		SELECT *, strftime('%Y-%m-%dT%H:%M:%S', (time_ns - frac) / 1000000000, 'unixepoch')
			|| CASE WHEN frac = 0 THEN '' ELSE '.' || rtrim(printf('%09d', frac), '0') END
			|| 'Z' AS time_text
		FROM (SELECT *, ((time_ns % 1000000000) + 1000000000) % 1000000000 AS frac FROM audit_events)
	)
	ORDER BY seq;
	INSERT INTO audit_block_keys (field, value, first_seq)
		      SELECT 'principal', principal, seq FROM audit_events WHERE principal <> ''
		UNION SELECT 'action', action, seq FROM audit_events WHERE action <> ''
		UNION SELECT 'target', target, seq FROM audit_events WHERE target <> ''
		UNION SELECT 'decision', decision, seq FROM audit_events WHERE decision <> ''
		UNION SELECT 'session', session, seq FROM audit_events WHERE session <> '';
	DROP TABLE audit_events;`,
}

// migrate applies the migrations the database has not seen, each in its own
// transaction with its version row.
func migrate(ctx context.Context, w *sql.DB) error {
	return migrateTo(ctx, w, len(migrations))
}

// migrateTo brings the database to schema version target (tests build old
// databases with it).
func migrateTo(ctx context.Context, w *sql.DB, target int) error {
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
	for i := version; i < target; i++ {
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
