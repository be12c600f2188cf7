package sqlite

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/gatectl/gatectl/pkg/audit"
)

// The helpers below edit the stored log the way an attacker with write
// access to the file would: by rewriting the text of a block.

type tamper = func(t *testing.T, db *DB)

// tamperSQL runs statements against the database.
func tamperSQL(queries ...string) tamper {
	return func(t *testing.T, db *DB) {
		t.Helper()
		for _, q := range queries {
			if _, err := db.w.Exec(q); err != nil {
				t.Fatalf("tamper %q: %v", q, err)
			}
		}
	}
}

// readBlock returns the block holding the line of event seq.
func readBlock(t *testing.T, db *DB, seq int64) (firstSeq int64, lines []string) {
	t.Helper()
	var events string
	err := db.r.QueryRow(`SELECT first_seq, events FROM audit_blocks WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1`, seq).
		Scan(&firstSeq, &events)
	if err != nil {
		t.Fatalf("read the block of event %d: %v", seq, err)
	}
	return firstSeq, strings.Split(strings.TrimSuffix(events, "\n"), "\n")
}

func writeBlock(t *testing.T, db *DB, firstSeq int64, lines []string) {
	t.Helper()
	events := strings.Join(lines, "\n") + "\n"
	if _, err := db.w.Exec(`UPDATE audit_blocks SET events = ? WHERE first_seq = ?`, events, firstSeq); err != nil {
		t.Fatalf("write block %d: %v", firstSeq, err)
	}
}

// lineIndex finds the line whose seq field is seq.
func lineIndex(t *testing.T, lines []string, seq int64) int {
	t.Helper()
	for i, line := range lines {
		var e struct{ Seq int64 }
		if json.Unmarshal([]byte(line), &e) == nil && e.Seq == seq {
			return i
		}
	}
	t.Fatalf("no line holds event %d", seq)
	return -1
}

// editLines lets edit rewrite the lines of the block that holds event seq;
// i is the index of that event's line.
func editLines(seq int64, edit func(lines []string, i int) []string) tamper {
	return func(t *testing.T, db *DB) {
		t.Helper()
		first, lines := readBlock(t, db, seq)
		writeBlock(t, db, first, edit(lines, lineIndex(t, lines, seq)))
	}
}

// setField sets one JSON field of event seq's line, or removes it when v is
// nil.
func setField(seq int64, field string, v any) tamper {
	return editLines(seq, func(lines []string, i int) []string {
		lines[i] = withField(lines[i], field, v)
		return lines
	})
}

func withField(line, field string, v any) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		panic(err)
	}
	if v == nil {
		delete(m, field)
	} else {
		m[field] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// deleteLines removes the lines of events from to to.
func deleteLines(from, to int64) tamper {
	return func(t *testing.T, db *DB) {
		t.Helper()
		for seq := from; seq <= to; seq++ {
			editLines(seq, func(lines []string, i int) []string {
				return slices.Delete(lines, i, i+1)
			})(t, db)
		}
	}
}

// swapContents swaps the lines of events a and b and gives each the
// other's seq, so that the Seqs still ascend.
func swapContents(a, b int64) tamper {
	return func(t *testing.T, db *DB) {
		t.Helper()
		firstA, linesA := readBlock(t, db, a)
		i := lineIndex(t, linesA, a)
		lineA := linesA[i]
		firstB, linesB := readBlock(t, db, b)
		j := lineIndex(t, linesB, b)
		lineB := linesB[j]
		if firstA == firstB {
			linesB = linesA
		}
		linesA[i] = withField(lineB, "seq", a)
		linesB[j] = withField(lineA, "seq", b)
		writeBlock(t, db, firstA, linesA)
		writeBlock(t, db, firstB, linesB)
	}
}

// readEvent reads event seq through Scan.
func readEvent(t *testing.T, db *DB, seq int64) audit.Event {
	t.Helper()
	got := scanAll(t, db.Audit(), audit.Filter{AfterSeq: seq - 1, Limit: 1})
	if len(got) != 1 || got[0].Seq != seq {
		t.Fatalf("read event %d: got %+v", seq, got)
	}
	return got[0]
}
