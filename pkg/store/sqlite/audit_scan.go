package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/gatectl/gatectl/pkg/audit"
)

// Scan streams the matching events block by block from a read connection.
// SQL picks the blocks that may hold a match; each is decoded line by line
// and the filter applied exactly, so memory stays bounded by one block.
// Events come in the order of their lines (reversed with Desc), which is
// ascending Seq unless the store was tampered with; Verify tells.
func (s auditStore) Scan(ctx context.Context, f audit.Filter, fn func(audit.Event) error) error {
	query, args := blockQuery(f)
	rows, err := s.db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("scan audit events: %w", err)
	}
	defer rows.Close()
	delivered := 0
	var (
		firstSeq int64
		events   sql.RawBytes
		lines    [][]byte
	)
	for rows.Next() {
		if err := rows.Scan(&firstSeq, &events); err != nil {
			return fmt.Errorf("scan audit events: block %d: %w", firstSeq, &audit.CorruptEventError{Seq: firstSeq, Err: err})
		}
		lines = splitLines(lines[:0], events)
		for i := range lines {
			at := i
			if f.Desc {
				at = len(lines) - 1 - i
			}
			e, err := decodeEventLine(lines[at])
			if err != nil {
				seq, ok := lineSeq(lines[at])
				if !ok {
					// The line's own Seq is unreadable: name it by its
					// position, which is its Seq in an untouched block.
					seq = firstSeq + int64(at)
				}
				return fmt.Errorf("scan audit events: %w", &audit.CorruptEventError{Seq: seq, Err: err})
			}
			if !matches(&f, &e) {
				continue
			}
			if err := fn(e); err != nil {
				return fmt.Errorf("scan audit events: stopped at event %d: %w", e.Seq, err)
			}
			if delivered++; f.Limit > 0 && delivered >= f.Limit {
				return nil
			}
		}
		clear(lines) // they alias events, which the next row overwrites
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan audit events: %w", err)
	}
	return nil
}

// splitLines appends to dst the newline-terminated lines of b, without
// their newlines. A final line without a newline counts as a line.
func splitLines(dst [][]byte, b []byte) [][]byte {
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte{'\n'})
		dst = append(dst, line)
		b = rest
	}
	return dst
}

// matches applies f to e exactly; blockQuery only narrows the blocks.
func matches(f *audit.Filter, e *audit.Event) bool {
	switch {
	case !f.Since.IsZero() && e.Time.Before(f.Since),
		!f.Until.IsZero() && !e.Time.Before(f.Until),
		f.AfterSeq > 0 && e.Seq <= f.AfterSeq,
		f.BeforeSeq > 0 && e.Seq >= f.BeforeSeq:
		return false
	}
	for i, v := range keyValues(e) {
		if want := filterKey(f, i); want != "" && v != want {
			return false
		}
	}
	return true
}

// filterKey returns f's value for keyFields[i].
func filterKey(f *audit.Filter, i int) string {
	return [...]string{f.Principal, f.Action, f.Target, f.Decision, f.Session}[i]
}

// blockQuery builds the SELECT of the blocks that may hold events matching
// f. Only placeholders carry values.
func blockQuery(f audit.Filter) (string, []any) {
	var where []string
	var args []any
	add := func(cond string, vs ...any) {
		where = append(where, cond)
		args = append(args, vs...)
	}
	if f.AfterSeq > 0 {
		// The lower bound on first_seq lets SQLite seek the primary key
		// instead of reading every block's last_seq: blocks do not
		// overlap, so the block holding AfterSeq+1 starts at or after the
		// last block that starts at or before AfterSeq.
		add(`last_seq > ? AND first_seq >= coalesce((SELECT first_seq FROM audit_blocks WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1), 0)`,
			f.AfterSeq, f.AfterSeq)
	}
	if f.BeforeSeq > 0 {
		add("first_seq < ?", f.BeforeSeq)
	}
	if !f.Since.IsZero() {
		add("time_max_ns >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("time_min_ns < ?", f.Until.UnixNano())
	}
	for i, field := range keyFields {
		if v := filterKey(&f, i); v != "" {
			add("first_seq IN (SELECT first_seq FROM audit_block_keys WHERE field = ? AND value = ?)", field, v)
		}
	}
	var q strings.Builder
	q.WriteString("SELECT first_seq, events FROM audit_blocks")
	if len(where) > 0 {
		q.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	q.WriteString(" ORDER BY first_seq")
	if f.Desc {
		q.WriteString(" DESC")
	}
	return q.String(), args
}
