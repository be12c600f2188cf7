package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/gatectl/gatectl/pkg/audit"
)

// auditStore implements audit.LineStore over blocks of sealed events.
//
// One Append writes one row of audit_blocks: its events as JSON Lines (see
// audit.AppendJSONLine), the Seq range and time range they cover and the
// last event's hash. audit_block_keys lists, for each block, the distinct
// non-empty principal, action, target, decision and session values, so a
// filtered Scan reads only blocks that can match. Writing an event thus
// costs an encoding into a buffer, which the audit.Log does as it seals
// the event, rather than a row with secondary indexes.
type auditStore struct{ db *DB }

// maxBlockEvents caps the events of one block, so that Scan's memory stays
// bounded by one block however large a batch the Log writes.
const maxBlockEvents = 4096

// keyFields are the Filter fields audit_block_keys indexes, as named in its
// field column.
var keyFields = [...]string{"principal", "action", "target", "decision", "session"}

func keyValues(e *audit.Event) [len(keyFields)]string {
	return [...]string{e.Principal, e.Action, e.Target, e.Decision, e.Session}
}

// blockWriter holds Append's reused buffers and prepared statements. Its
// mutex serializes Appends, which the single writer connection serializes
// anyway.
type blockWriter struct {
	mu         sync.Mutex
	insertRow  *sql.Stmt
	insertKeys *sql.Stmt
	enc        audit.LineEncoder
	lines      []byte // Append's encoding of its events
	ends       []int
	keys       [][2]string // a block's distinct [field, value] pairs
	seen       map[blockKey]struct{}
}

type blockKey struct {
	field int
	value string
}

const (
	insertBlockSQL = `INSERT INTO audit_blocks (first_seq, last_seq, time_min_ns, time_max_ns, last_hash, events)
		VALUES (?, ?, ?, ?, ?, ?)`
	// insertKeysSQL takes the block's keys as one JSON array of
	// [field, value] pairs, so that any number of keys is one statement.
	insertKeysSQL = `INSERT INTO audit_block_keys (field, value, first_seq)
		SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), ? FROM json_each(?)`
)

func newBlockWriter(ctx context.Context, w *sql.DB) (*blockWriter, error) {
	row, err := w.PrepareContext(ctx, insertBlockSQL)
	if err != nil {
		return nil, fmt.Errorf("prepare audit block insert: %w", err)
	}
	keys, err := w.PrepareContext(ctx, insertKeysSQL)
	if err != nil {
		row.Close()
		return nil, fmt.Errorf("prepare audit block keys insert: %w", err)
	}
	// keys starts non-nil: a nil slice would encode as null, which
	// json_each reads as one row.
	return &blockWriter{insertRow: row, insertKeys: keys, keys: make([][2]string, 0, 16), seen: make(map[blockKey]struct{})}, nil
}

func (bw *blockWriter) close() error {
	return errors.Join(bw.insertRow.Close(), bw.insertKeys.Close())
}

// Append encodes events as JSON lines and writes them as AppendLines does.
func (s auditStore) Append(ctx context.Context, events []audit.Event) error {
	if len(events) == 0 {
		return nil
	}
	bw := s.db.blocks
	bw.mu.Lock()
	defer bw.mu.Unlock()
	lines, ends := bw.lines[:0], bw.ends[:0]
	for i := range events {
		var err error
		if lines, err = bw.enc.Append(lines, &events[i]); err != nil {
			return fmt.Errorf("append audit events: %w", err)
		}
		ends = append(ends, len(lines))
	}
	bw.lines, bw.ends = lines, ends
	return bw.append(ctx, s.db.w, events, lines, ends)
}

// AppendLines writes events, whose JSON lines the caller encoded, as one
// block (several when there are more than maxBlockEvents) in one immediate
// transaction on the writer connection. It refuses events whose Seqs do
// not ascend by one, since a block's Seq range must describe its lines,
// and lines that do not end where ends says, since a block's lines must
// be its events'.
func (s auditStore) AppendLines(ctx context.Context, events []audit.Event, lines []byte, ends []int) error {
	if len(events) == 0 {
		return nil
	}
	bw := s.db.blocks
	bw.mu.Lock()
	defer bw.mu.Unlock()
	return bw.append(ctx, s.db.w, events, lines, ends)
}

func (bw *blockWriter) append(ctx context.Context, w *sql.DB, events []audit.Event, lines []byte, ends []int) error {
	if len(ends) != len(events) || ends[len(ends)-1] != len(lines) {
		// Fail closed: a block whose text does not match its events
		// could not be verified.
		return fmt.Errorf("append audit events %d-%d: %d lines of %d bytes for %d events",
			events[0].Seq, events[len(events)-1].Seq, len(ends), len(lines), len(events))
	}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append audit events: begin: %w", err)
	}
	defer tx.Rollback()
	insertRow := tx.StmtContext(ctx, bw.insertRow)
	insertKeys := tx.StmtContext(ctx, bw.insertKeys)
	start := 0
	for i := 0; i < len(events); i += maxBlockEvents {
		j := min(len(events), i+maxBlockEvents)
		end := ends[j-1]
		if end < start {
			return fmt.Errorf("append audit events %d-%d: line ends out of order", events[i].Seq, events[j-1].Seq)
		}
		if err := bw.insert(ctx, insertRow, insertKeys, events[i:j], lines[start:end]); err != nil {
			return err
		}
		start = end
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append audit events: commit: %w", err)
	}
	return nil
}

// insert writes one block with its lines, and its keys.
func (bw *blockWriter) insert(ctx context.Context, insertRow, insertKeys *sql.Stmt, block []audit.Event, lines []byte) error {
	first, last := block[0].Seq, block[len(block)-1].Seq
	// The key set refers to the events' strings: let them go with the batch.
	defer func() {
		clear(bw.seen)
		clear(bw.keys)
		bw.keys = bw.keys[:0]
	}()
	tmin, tmax := block[0].Time.UnixNano(), block[0].Time.UnixNano()
	prev := keyValues(&block[0])
	bw.addKeys(prev, nil)
	for i := range block {
		e := &block[i]
		if e.Seq != first+int64(i) {
			return fmt.Errorf("append audit events %d-%d: event %d is at position %d: events must ascend by one", first, last, e.Seq, i)
		}
		ns := e.Time.UnixNano()
		tmin, tmax = min(tmin, ns), max(tmax, ns)
		cur := keyValues(e)
		bw.addKeys(cur, &prev)
		prev = cur
	}
	keys, err := json.Marshal(bw.keys)
	if err != nil {
		return fmt.Errorf("append audit events %d-%d: index keys: %w", first, last, err)
	}
	// Both texts are bound as strings: a []byte would be stored as a BLOB,
	// which the sqlite3 shell's text and JSON functions do not read as
	// text. The lines are a megabyte or more, and their buffer is reused
	// only after ExecContext returns: the driver copies a bound string into
	// SQLite's memory (modernc.org/sqlite's bindText), and neither it nor
	// database/sql keeps the argument, so the string may alias the buffer
	// rather than copy it once more.
	text := unsafe.String(unsafe.SliceData(lines), len(lines))
	if _, err := insertRow.ExecContext(ctx, first, last, tmin, tmax, block[len(block)-1].Hash, text); err != nil {
		return fmt.Errorf("append audit events %d-%d: %w", first, last, err)
	}
	if _, err := insertKeys.ExecContext(ctx, first, string(keys)); err != nil {
		return fmt.Errorf("append audit events %d-%d: index keys: %w", first, last, err)
	}
	return nil
}

// addKeys adds the non-empty values of one event's key fields to the
// block's keys, once each. Consecutive events mostly share them, so a value
// equal to the previous event's is known already.
func (bw *blockWriter) addKeys(values [len(keyFields)]string, prev *[len(keyFields)]string) {
	for f, v := range values {
		if v == "" || prev != nil && v == prev[f] {
			continue
		}
		k := blockKey{f, v}
		if _, dup := bw.seen[k]; dup {
			continue
		}
		bw.seen[k] = struct{}{}
		bw.keys = append(bw.keys, [2]string{keyFields[f], v})
	}
}

// Tail returns the last block's last Seq and Hash.
func (s auditStore) Tail(ctx context.Context) (int64, string, error) {
	var seq int64
	var hash string
	err := s.db.r.QueryRowContext(ctx, `SELECT last_seq, last_hash FROM audit_blocks ORDER BY first_seq DESC LIMIT 1`).Scan(&seq, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, "", nil
	case err != nil:
		return 0, "", fmt.Errorf("read audit log tail: %w", err)
	}
	return seq, hash, nil
}
