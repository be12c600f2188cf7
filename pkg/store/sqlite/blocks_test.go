package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/audit"
)

// chain seals events as the audit log would, from seq first after prev.
func chain(events []audit.Event, first int64, prev string) []audit.Event {
	for i := range events {
		e := &events[i]
		e.Time = time.Unix(0, e.Time.UnixNano()).UTC()
		if len(e.Detail) == 0 {
			e.Detail = nil
		}
		e.Seq, e.Prev = first+int64(i), prev
		e.Hash = e.ComputeHash()
		prev = e.Hash
	}
	return events
}

// openVersion1 creates a database at schema version 1, the one-row-per-event
// layout, with events in it.
func openVersion1(t *testing.T, path string, events []audit.Event) {
	t.Helper()
	w, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := migrateTo(context.Background(), w, 1); err != nil {
		t.Fatalf("migrate to version 1: %v", err)
	}
	for _, e := range events {
		var detail any
		if len(e.Detail) > 0 {
			b, err := json.Marshal(e.Detail)
			if err != nil {
				t.Fatal(err)
			}
			detail = string(b)
		}
		if _, err := w.Exec(`INSERT INTO audit_events (seq, time_ns, principal, action, target, decision, reason, rule, policy_commit, session, detail, prev, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Seq, e.Time.UnixNano(), e.Principal, e.Action, e.Target, e.Decision, e.Reason, e.Rule, e.PolicyCommit, e.Session,
			detail, e.Prev, e.Hash); err != nil {
			t.Fatalf("insert version 1 event %d: %v", e.Seq, err)
		}
	}
}

func TestMigrationFromVersion1KeepsTheLog(t *testing.T) {
	in := chain([]audit.Event{
		fixture(0),
		{Time: t0.Add(123456789), Principal: "user:zoë", Action: "auth.refuse", Reason: "token expired",
			Detail: map[string]string{"sql": "SELECT '<a>' || $1 -- ünïcode", "empty": "", "ctl": "\x00\b\f\n\r\t\x1f\x7f\u2028"}},
		{Time: t0.Add(120 * time.Millisecond), Action: "policy.load", Reason: `quote " backslash \ slash /`},
		{Time: time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), Action: "clock.skew"},
		{Time: time.Date(1901, 1, 1, 0, 0, 0, 1, time.UTC), Principal: "😀", Session: "s-9"},
		{Time: time.Date(2262, 4, 11, 23, 47, 16, 0, time.UTC), Detail: map[string]string{}},
		fixture(7),
	}, 1, audit.Genesis)
	path := filepath.Join(t.TempDir(), "gatectl.db")
	openVersion1(t, path, in)

	db := openDB(t, path)
	got := scanAll(t, db.Audit(), audit.Filter{})
	if !reflect.DeepEqual(got, in) {
		t.Errorf("events after migration:\n got %+v\nwant %+v", got, in)
	}
	if r := verify(t, db.Audit()); !r.OK() || r.Events != int64(len(in)) {
		t.Errorf("Verify = %+v, want %d intact events", r, len(in))
	}
	seq, hash, err := db.Audit().Tail(context.Background())
	if last := in[len(in)-1]; err != nil || seq != last.Seq || hash != last.Hash {
		t.Errorf("Tail = %d %s %v, want %d %s", seq, hash, err, last.Seq, last.Hash)
	}
	// The keys were migrated too: filtered scans find the migrated events.
	for _, f := range []audit.Filter{{Principal: "😀"}, {Session: "s-9"}, {Action: "clock.skew"}, {Decision: "deny"}, {Target: "orders"}} {
		var want []int64
		for _, e := range in {
			if matches(&f, &e) {
				want = append(want, e.Seq)
			}
		}
		var gotSeqs []int64
		for _, e := range scanAll(t, db.Audit(), f) {
			gotSeqs = append(gotSeqs, e.Seq)
		}
		if len(want) == 0 || !slices.Equal(gotSeqs, want) {
			t.Errorf("Scan(%+v) = %v, want %v", f, gotSeqs, want)
		}
	}
	// The log continues after the migrated events.
	seed(t, db, 3)
	if r := verify(t, db.Audit()); !r.OK() || r.Events != int64(len(in))+3 {
		t.Errorf("Verify after appending = %+v, want %d intact events", r, len(in)+3)
	}
}

func TestMigrationKeepsEditsDetectable(t *testing.T) {
	tests := []struct {
		name        string
		tamper      string
		wantProblem string
	}{
		{"detail-garbage", `UPDATE audit_events SET detail = 'not json' WHERE seq = 2`,
			"event 2 was edited: its stored form cannot be read"},
		{"detail-array", `UPDATE audit_events SET detail = '[1]' WHERE seq = 2`,
			"event 2 was edited: its stored form cannot be read"},
		{"time-type", `UPDATE audit_events SET time_ns = 'yesterday' WHERE seq = 2`,
			"event 2 was edited"},
		{"principal-number", `UPDATE audit_events SET principal = 5 WHERE seq = 2`,
			"event 2 was edited"},
		{"principal-blob", `UPDATE audit_events SET principal = x'00ff' WHERE seq = 2`,
			"event 2 was edited"},
		{"detail-blob", `UPDATE audit_events SET detail = x'7b7d' WHERE seq = 2`,
			"event 2 was edited"},
		{"principal", `UPDATE audit_events SET principal = 'user:mallory' WHERE seq = 2`,
			"event 2 was edited: its hash does not match its contents"},
		{"deleted", `DELETE FROM audit_events WHERE seq = 2`,
			"event 2 is missing: 1 is followed by 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := make([]audit.Event, 4)
			for i := range events {
				events[i] = fixture(i)
			}
			path := filepath.Join(t.TempDir(), "gatectl.db")
			openVersion1(t, path, chain(events, 1, audit.Genesis))
			w, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Exec(tt.tamper); err != nil {
				t.Fatalf("tamper: %v", err)
			}
			w.Close()

			db := openDB(t, path)
			r := verify(t, db.Audit())
			if r.FirstBad != 2 || !strings.Contains(r.Problem, tt.wantProblem) {
				t.Errorf("Verify = %d %q, want 2 %q", r.FirstBad, r.Problem, tt.wantProblem)
			}
		})
	}
}

func TestAppendWritesOneBlockPerBatch(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "gatectl.db"))
	st := db.Audit()
	events := make([]audit.Event, 2*maxBlockEvents+5)
	for i := range events {
		events[i] = fixture(i)
	}
	chain(events, 1, audit.Genesis)
	if err := st.Append(context.Background(), events[:3]); err != nil {
		t.Fatalf("Append: %v", err)
	}
	// A huge batch is split so that a block stays bounded.
	if err := st.Append(context.Background(), events[3:]); err != nil {
		t.Fatalf("Append: %v", err)
	}
	type block struct {
		first, last int64
		min, max    int64
		hash        string
	}
	var got []block
	rows, err := db.r.Query(`SELECT first_seq, last_seq, time_min_ns, time_max_ns, last_hash FROM audit_blocks ORDER BY first_seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var b block
		if err := rows.Scan(&b.first, &b.last, &b.min, &b.max, &b.hash); err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
	}
	rows.Close()
	span := func(from, to int) block {
		return block{int64(from + 1), int64(to), events[from].Time.UnixNano(), events[to-1].Time.UnixNano(), events[to-1].Hash}
	}
	want := []block{span(0, 3), span(3, 3+maxBlockEvents), span(3+maxBlockEvents, 3+2*maxBlockEvents), span(3+2*maxBlockEvents, len(events))}
	if !slices.Equal(got, want) {
		t.Errorf("blocks:\n got %+v\nwant %+v", got, want)
	}
	if r := verify(t, st); !r.OK() || r.Events != int64(len(events)) {
		t.Errorf("Verify = %+v, want %d intact events", r, len(events))
	}
}

func TestAppendIndexesDistinctKeys(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "gatectl.db"))
	events := chain([]audit.Event{
		{Time: t0, Principal: "user:alice", Action: "statement", Target: "orders", Decision: "allow", Session: "s-1"},
		{Time: t0, Principal: "user:alice", Action: "statement", Target: "orders", Decision: "deny", Session: "s-1"},
		{Time: t0, Principal: "user:bob", Action: "auth.refuse"},
		{Time: t0, Principal: `we"ird ü`, Action: "statement"},
	}, 1, audit.Genesis)
	if err := db.Audit().Append(context.Background(), events); err != nil {
		t.Fatalf("Append: %v", err)
	}
	got := map[string]bool{}
	rows, err := db.r.Query(`SELECT field, value, first_seq FROM audit_block_keys`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var field, value string
		var first int64
		if err := rows.Scan(&field, &value, &first); err != nil {
			t.Fatal(err)
		}
		got[fmt.Sprintf("%s=%s@%d", field, value, first)] = true
	}
	rows.Close()
	want := map[string]bool{
		"principal=user:alice@1": true, "principal=user:bob@1": true, `principal=we"ird ü@1`: true,
		"action=statement@1": true, "action=auth.refuse@1": true, "target=orders@1": true,
		"decision=allow@1": true, "decision=deny@1": true, "session=s-1@1": true,
	}
	if !maps.Equal(got, want) {
		t.Errorf("keys:\n got %v\nwant %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

func TestAppendRefusesEventsOutOfOrder(t *testing.T) {
	tests := []struct {
		name string
		seqs []int64
	}{
		{"gap", []int64{1, 3}},
		{"repeat", []int64{1, 1}},
		{"descending", []int64{2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openDB(t, filepath.Join(t.TempDir(), "gatectl.db"))
			events := make([]audit.Event, len(tt.seqs))
			for i, seq := range tt.seqs {
				events[i] = audit.Event{Seq: seq, Time: t0, Hash: "h"}
			}
			err := db.Audit().Append(context.Background(), events)
			if err == nil || !strings.Contains(err.Error(), "must ascend by one") {
				t.Errorf("Append(%v) = %v, want a refusal", tt.seqs, err)
			}
			if seq, _, _ := db.Audit().Tail(context.Background()); seq != 0 {
				t.Errorf("Tail after a refused Append = %d, want 0", seq)
			}
		})
	}
}

// TestAppendLinesRefusesLinesThatDoNotMatch checks that lines that cannot
// be the events' fail the write instead of storing a block whose text
// does not describe its events.
func TestAppendLinesRefusesLinesThatDoNotMatch(t *testing.T) {
	events := make([]audit.Event, 3)
	for i := range events {
		events[i] = fixture(i)
	}
	chain(events, 1, audit.Genesis)
	var lines []byte
	var ends []int
	for i := range events {
		var err error
		if lines, err = audit.AppendJSONLine(lines, &events[i]); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, len(lines))
	}
	tests := []struct {
		name  string
		lines []byte
		ends  []int
	}{
		{"missing-end", lines, ends[:2]},
		{"extra-end", lines, append(slices.Clone(ends), len(lines))},
		{"short-lines", lines[:len(lines)-1], ends},
		{"long-lines", append(slices.Clone(lines), '\n'), ends},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openDB(t, filepath.Join(t.TempDir(), "gatectl.db"))
			st := db.Audit().(audit.LineStore)
			if err := st.AppendLines(context.Background(), events, tt.lines, tt.ends); err == nil {
				t.Fatal("AppendLines succeeded, want an error")
			}
			if seq, _, err := st.Tail(context.Background()); err != nil || seq != 0 {
				t.Errorf("Tail after a refused AppendLines = %d, %v, want an empty log", seq, err)
			}
		})
	}
}
