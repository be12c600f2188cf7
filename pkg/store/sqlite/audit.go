package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatectl/gatectl/pkg/audit"
)

// auditStore implements audit.Store over the audit_events table.
type auditStore struct{ db *DB }

const auditColumns = `seq, time_ns, principal, action, target, decision, reason, rule, policy_commit, session, detail, prev, hash`

// rowsPerInsert is how many events one INSERT statement carries: a batch is
// written with few statements, since the per-statement cost in
// database/sql and the driver, not SQLite's b-tree work, dominated a
// row-per-statement Append. 13 columns × 64 rows stays far below SQLite's
// limit of 32766 parameters.
const rowsPerInsert = 64

// Append writes events in one immediate transaction on the writer
// connection.
func (s auditStore) Append(ctx context.Context, events []audit.Event) error {
	if len(events) == 0 {
		return nil
	}
	tx, err := s.db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append audit events: begin: %w", err)
	}
	defer tx.Rollback()
	args := make([]any, 0, 13*min(len(events), rowsPerInsert))
	var stmt *sql.Stmt
	stmtRows := 0
	for len(events) > 0 {
		chunk := events[:min(len(events), rowsPerInsert)]
		events = events[len(chunk):]
		if len(chunk) != stmtRows {
			if stmt != nil {
				stmt.Close()
			}
			if stmt, err = tx.PrepareContext(ctx, insertSQL(len(chunk))); err != nil {
				return fmt.Errorf("append audit events: prepare: %w", err)
			}
			stmtRows = len(chunk)
		}
		args = args[:0]
		for i := range chunk {
			e := &chunk[i]
			detail, err := encodeDetail(e.Detail)
			if err != nil {
				stmt.Close()
				return fmt.Errorf("append audit event %d: %w", e.Seq, err)
			}
			args = append(args, e.Seq, e.Time.UnixNano(), e.Principal, e.Action, e.Target, e.Decision,
				e.Reason, e.Rule, e.PolicyCommit, e.Session, detail, e.Prev, e.Hash)
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			stmt.Close()
			return fmt.Errorf("append audit events %d-%d: %w", chunk[0].Seq, chunk[len(chunk)-1].Seq, err)
		}
	}
	stmt.Close()
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append audit events: commit: %w", err)
	}
	return nil
}

// insertSQL is an INSERT of n rows.
func insertSQL(n int) string {
	const row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	var b strings.Builder
	b.WriteString("INSERT INTO audit_events (" + auditColumns + ") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	return b.String()
}

// Tail returns the last event's Seq and Hash.
func (s auditStore) Tail(ctx context.Context) (int64, string, error) {
	var seq int64
	var hash string
	err := s.db.r.QueryRowContext(ctx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	switch {
	case err == sql.ErrNoRows:
		return 0, "", nil
	case err != nil:
		return 0, "", fmt.Errorf("read audit log tail: %w", err)
	}
	return seq, hash, nil
}

// Scan streams the matching events row by row from a read connection.
func (s auditStore) Scan(ctx context.Context, f audit.Filter, fn func(audit.Event) error) error {
	query, args := scanQuery(f)
	rows, err := s.db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("scan audit events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e audit.Event
		var timeNS int64
		var detail sql.NullString
		if err := rows.Scan(&e.Seq, &timeNS, &e.Principal, &e.Action, &e.Target, &e.Decision, &e.Reason,
			&e.Rule, &e.PolicyCommit, &e.Session, &detail, &e.Prev, &e.Hash); err != nil {
			// Rows.Scan converts columns in order and seq, an INTEGER PRIMARY
			// KEY, always converts, so e.Seq names the row a bad value was
			// written into.
			return fmt.Errorf("scan audit events: %w", &audit.CorruptEventError{Seq: e.Seq, Err: err})
		}
		e.Time = time.Unix(0, timeNS).UTC()
		if e.Detail, err = decodeDetail(detail); err != nil {
			return fmt.Errorf("scan audit events: %w", &audit.CorruptEventError{Seq: e.Seq, Err: err})
		}
		if err := fn(e); err != nil {
			return fmt.Errorf("scan audit events: stopped at event %d: %w", e.Seq, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan audit events: %w", err)
	}
	return nil
}

// scanQuery builds the SELECT for f. Only placeholders carry values.
func scanQuery(f audit.Filter) (string, []any) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if !f.Since.IsZero() {
		add("time_ns >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("time_ns < ?", f.Until.UnixNano())
	}
	for _, c := range []struct{ col, v string }{
		{"principal", f.Principal}, {"action", f.Action}, {"target", f.Target},
		{"decision", f.Decision}, {"session", f.Session},
	} {
		if c.v != "" {
			add(c.col+" = ?", c.v)
		}
	}
	if f.AfterSeq > 0 {
		add("seq > ?", f.AfterSeq)
	}
	if f.BeforeSeq > 0 {
		add("seq < ?", f.BeforeSeq)
	}
	var q strings.Builder
	q.WriteString("SELECT " + auditColumns + " FROM audit_events")
	if len(where) > 0 {
		q.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	q.WriteString(" ORDER BY seq")
	if f.Desc {
		q.WriteString(" DESC")
	}
	if f.Limit > 0 {
		q.WriteString(" LIMIT ?")
		args = append(args, f.Limit)
	}
	return q.String(), args
}

// encodeDetail stores Detail as a JSON object with sorted keys, or NULL
// when it is empty, so that it stays readable with the sqlite3 shell. It is
// on the audit writer's per-event path, so it appends into one buffer
// instead of going through reflection; decodeDetail reads it back with
// encoding/json.
func encodeDetail(d map[string]string) (any, error) {
	if len(d) == 0 {
		return nil, nil
	}
	var keysBuf [16]string
	keys := keysBuf[:0]
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := make([]byte, 0, 256)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, d[k])
	}
	b = append(b, '}')
	return string(b), nil
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 cannot occur:
// the audit log replaces it before events reach the store.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func decodeDetail(s sql.NullString) (map[string]string, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var d map[string]string
	if err := json.Unmarshal([]byte(s.String), &d); err != nil {
		return nil, fmt.Errorf("decode detail: %w", err)
	}
	if len(d) == 0 {
		return nil, nil
	}
	return d, nil
}
