package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/gatectl/gatectl/pkg/audit"
)

// auditStore implements audit.Store over blocks of sealed events.
//
// One Append writes one row of audit_blocks: its events as JSON Lines (see
// appendEventLine), the Seq range and time range they cover and the last
// event's hash. audit_block_keys lists, for each block, the distinct
// non-empty principal, action, target, decision and session values, so a
// filtered Scan reads only blocks that can match. Writing an event thus
// costs an encoding into a buffer rather than a row with secondary indexes.
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
	enc        lineEncoder
	events     []byte
	keysJSON   []byte
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
	return &blockWriter{insertRow: row, insertKeys: keys, seen: make(map[blockKey]struct{})}, nil
}

func (bw *blockWriter) close() error {
	return errors.Join(bw.insertRow.Close(), bw.insertKeys.Close())
}

// Append writes events as one block (several when there are more than
// maxBlockEvents) in one immediate transaction on the writer connection.
// It refuses events whose Seqs do not ascend by one, since a block's Seq
// range must describe its lines.
func (s auditStore) Append(ctx context.Context, events []audit.Event) error {
	if len(events) == 0 {
		return nil
	}
	bw := s.db.blocks
	bw.mu.Lock()
	defer bw.mu.Unlock()
	tx, err := s.db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append audit events: begin: %w", err)
	}
	defer tx.Rollback()
	insertRow := tx.StmtContext(ctx, bw.insertRow)
	insertKeys := tx.StmtContext(ctx, bw.insertKeys)
	for len(events) > 0 {
		block := events[:min(len(events), maxBlockEvents)]
		events = events[len(block):]
		if err := bw.insert(ctx, insertRow, insertKeys, block); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append audit events: commit: %w", err)
	}
	return nil
}

// insert writes one block and its keys.
func (bw *blockWriter) insert(ctx context.Context, insertRow, insertKeys *sql.Stmt, block []audit.Event) error {
	first, last := block[0].Seq, block[len(block)-1].Seq
	// The key set refers to the events' strings: let them go with the batch.
	defer clear(bw.seen)
	lines := bw.events[:0]
	keys := append(bw.keysJSON[:0], '[')
	tmin, tmax := block[0].Time.UnixNano(), block[0].Time.UnixNano()
	var err error
	for i := range block {
		e := &block[i]
		if e.Seq != first+int64(i) {
			return fmt.Errorf("append audit events %d-%d: event %d is at position %d: events must ascend by one", first, last, e.Seq, i)
		}
		if lines, err = bw.enc.appendEventLine(lines, e); err != nil {
			return fmt.Errorf("append audit events: %w", err)
		}
		ns := e.Time.UnixNano()
		tmin, tmax = min(tmin, ns), max(tmax, ns)
		for f, v := range keyValues(e) {
			if v == "" {
				continue
			}
			k := blockKey{f, v}
			if _, dup := bw.seen[k]; dup {
				continue
			}
			bw.seen[k] = struct{}{}
			if len(keys) > 1 {
				keys = append(keys, ',')
			}
			keys = append(keys, `["`...)
			keys = append(keys, keyFields[f]...)
			keys = append(keys, `",`...)
			keys = appendJSONString(keys, v)
			keys = append(keys, ']')
		}
	}
	keys = append(keys, ']')
	bw.events, bw.keysJSON = lines, keys
	// Both texts are bound as strings: a []byte would be stored as a BLOB,
	// which the sqlite3 shell's text and JSON functions do not read as
	// text.
	if _, err := insertRow.ExecContext(ctx, first, last, tmin, tmax, block[len(block)-1].Hash, string(lines)); err != nil {
		return fmt.Errorf("append audit events %d-%d: %w", first, last, err)
	}
	if _, err := insertKeys.ExecContext(ctx, first, string(keys)); err != nil {
		return fmt.Errorf("append audit events %d-%d: index keys: %w", first, last, err)
	}
	return nil
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
