package sqlite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/audit"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// event i of the fixture: three principals, two sessions, one minute apart.
func fixture(i int) audit.Event {
	return audit.Event{
		Time:         t0.Add(time.Duration(i) * time.Minute),
		Principal:    []string{"user:alice", "user:bob", "service:etl"}[i%3],
		Action:       []string{"session.start", "statement"}[min(i%5, 1)],
		Target:       "orders",
		Decision:     []string{"allow", "deny"}[i%2],
		Rule:         "no-drop",
		PolicyCommit: "3f2a9c1",
		Session:      fmt.Sprintf("s-%d", i%2),
		Detail:       map[string]string{"statement": fmt.Sprintf("SELECT %d", i)},
	}
}

func openLog(t *testing.T, st audit.Store, opts audit.Options) *audit.Log {
	t.Helper()
	opts.Logger = quiet
	l, err := audit.Open(context.Background(), st, opts)
	if err != nil {
		t.Fatalf("audit.Open: %v", err)
	}
	return l
}

// seed writes n fixture events through an audit.Log.
func seed(t *testing.T, db *DB, n int) {
	t.Helper()
	l := openLog(t, db.Audit(), audit.Options{Batch: 32})
	for i := range n {
		if err := l.Record(fixture(i)); err != nil {
			t.Fatalf("Record: %v", err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// seedBlocks appends n sealed fixture events to an empty log, size events
// per block, so that tests know where the blocks start.
func seedBlocks(t *testing.T, db *DB, n, size int) {
	t.Helper()
	events := make([]audit.Event, n)
	for i := range events {
		events[i] = fixture(i)
	}
	chain(events, 1, audit.Genesis)
	for from := 0; from < n; from += size {
		if err := db.Audit().Append(context.Background(), events[from:min(from+size, n)]); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
}

func scanAll(t *testing.T, st audit.Store, f audit.Filter) []audit.Event {
	t.Helper()
	var got []audit.Event
	if err := st.Scan(context.Background(), f, func(e audit.Event) error {
		got = append(got, e)
		return nil
	}); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return got
}

func verify(t *testing.T, st audit.Store) audit.Report {
	t.Helper()
	r, err := audit.Verify(context.Background(), st)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return r
}

func TestAuditRoundTrip(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "gatectl.db"))
	in := []audit.Event{
		fixture(0),
		{Time: t0.Add(123456789), Principal: "user:zoë", Action: "auth.refuse", Reason: "token expired",
			Detail: map[string]string{"sql": "SELECT '<a>' || $1 -- ünïcode", "empty": ""}},
		{Time: t0.In(time.FixedZone("CET", 3600)), Action: "policy.load", Reason: "bad \xff utf-8"},
	}
	l := openLog(t, db.Audit(), audit.Options{})
	for _, e := range in {
		if err := l.Record(e); err != nil {
			t.Fatalf("Record: %v", err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	got := scanAll(t, db.Audit(), audit.Filter{})
	if len(got) != len(in) {
		t.Fatalf("read %d events, want %d", len(got), len(in))
	}
	for i, e := range got {
		want := in[i]
		want.Seq, want.Prev, want.Hash = e.Seq, e.Prev, e.Hash
		want.Reason = strings.ToValidUTF8(want.Reason, "\uFFFD")
		if !e.Time.Equal(want.Time) {
			t.Errorf("event %d: time %v, want %v", i+1, e.Time, want.Time)
		}
		e.Time, want.Time = time.Time{}, time.Time{}
		gotJSON, _ := json.Marshal(e)
		wantJSON, _ := json.Marshal(want)
		if !bytes.Equal(gotJSON, wantJSON) {
			t.Errorf("event %d:\ngot  %s\nwant %s", i+1, gotJSON, wantJSON)
		}
	}
	if r := verify(t, db.Audit()); !r.OK() || r.Events != 3 || r.Head != got[2].Hash {
		t.Errorf("Verify = %+v, want 3 intact events ending at %s", r, got[2].Hash)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	// The log is blocks 1-32 and 33-60.
	tests := []struct {
		name         string
		tamper       func(t *testing.T, db *DB)
		wantFirstBad int64
		wantProblem  string
	}{
		{"clean", func(*testing.T, *DB) {}, 0, ""},
		{"edit-principal", setField(42, "principal", "user:mallory"),
			42, "event 42 was edited: its hash does not match its contents"},
		{"edit-time", setField(5, "time", t0.Add(5*time.Minute+1)),
			5, "event 5 was edited"},
		{"edit-detail", setField(33, "detail", map[string]string{"statement": "SELECT 1"}),
			33, "event 33 was edited"},
		{"drop-detail", setField(34, "detail", nil),
			34, "event 34 was edited"},
		{"edit-detail-garbage", setField(9, "detail", "not json"),
			9, "event 9 was edited: its stored form cannot be read"},
		{"edit-time-type", setField(12, "time", "yesterday"),
			12, "event 12 was edited: its stored form cannot be read"},
		{"garbage-line", editLines(14, func(lines []string, i int) []string {
			lines[i] = "not an event"
			return lines
		}), 14, "event 14 was edited: its stored form cannot be read"},
		{"blank-line", editLines(50, func(lines []string, i int) []string {
			lines[i] = ""
			return lines
		}), 50, "event 50 was edited: its stored form cannot be read"},
		{"change-prev", func(t *testing.T, db *DB) {
			setField(12, "prev", readEvent(t, db, 3).Hash)(t, db)
		}, 12, "event 12 was edited"},
		{"delete-one", deleteLines(17, 17), 17, "event 17 is missing: 16 is followed by 18"},
		{"delete-range", deleteLines(17, 19), 17, "events 17 to 19 are missing: 16 is followed by 20"},
		{"delete-first", deleteLines(1, 1), 1, "event 1 is missing: the log starts at event 2"},
		{"delete-across-blocks", deleteLines(31, 34), 31, "events 31 to 34 are missing: 30 is followed by 35"},
		{"delete-block", tamperSQL(`DELETE FROM audit_blocks WHERE first_seq = 1`),
			1, "events 1 to 32 are missing: the log starts at event 33"},
		{"swap-lines", editLines(30, func(lines []string, i int) []string {
			lines[i], lines[i+1] = lines[i+1], lines[i]
			return lines
		}), 30, "event 30 is missing: 29 is followed by 31"},
		{"swap-renumbered", swapContents(30, 31), 30, "event 30 is out of place: it holds the contents of event 31"},
		{"swap-across-blocks", swapContents(10, 50), 10, "event 10 is out of place: it holds the contents of event 50"},
		{"swap-blocks", tamperSQL(
			`UPDATE audit_blocks SET first_seq = -first_seq`,
			`UPDATE audit_blocks SET first_seq = CASE first_seq WHEN -1 THEN 33 ELSE 1 END`,
		), 1, "events 1 to 32 are missing: the log starts at event 33"},
		{"delete-and-renumber", func(t *testing.T, db *DB) {
			deleteLines(25, 25)(t, db)
			for seq := int64(26); seq <= 60; seq++ {
				setField(seq, "seq", seq-1)(t, db)
			}
		}, 25, "event 25 is out of place: it holds the contents of event 26"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openDB(t, filepath.Join(t.TempDir(), "gatectl.db"))
			seedBlocks(t, db, 60, 32)
			tt.tamper(t, db)
			r := verify(t, db.Audit())
			if r.FirstBad != tt.wantFirstBad {
				t.Errorf("FirstBad = %d (%q), want %d", r.FirstBad, r.Problem, tt.wantFirstBad)
			}
			if !strings.Contains(r.Problem, tt.wantProblem) || (tt.wantProblem == "") != (r.Problem == "") {
				t.Errorf("Problem = %q, want it to contain %q", r.Problem, tt.wantProblem)
			}
		})
	}
}

func TestVerifyDetectsARelinkedEvent(t *testing.T) {
	// An attacker who knows the encoding edits event 20 and recomputes its
	// hash; event 21 still names the old hash.
	db := openDB(t, filepath.Join(t.TempDir(), "gatectl.db"))
	seed(t, db, 30)
	e := readEvent(t, db, 20)
	e.Principal = "user:mallory"
	setField(20, "principal", e.Principal)(t, db)
	setField(20, "hash", e.ComputeHash())(t, db)
	r := verify(t, db.Audit())
	if want := "event 21 does not follow event 20"; r.FirstBad != 21 || !strings.Contains(r.Problem, want) {
		t.Errorf("Verify = %d %q, want 21 %q", r.FirstBad, r.Problem, want)
	}
}

func TestConcurrentRecordsLandContiguously(t *testing.T) {
	const writers, each = 8, 1250
	db := openDB(t, filepath.Join(t.TempDir(), "gatectl.db"))
	// A small queue makes writers block on backpressure while batches commit.
	l := openLog(t, db.Audit(), audit.Options{Batch: 100, Queue: 64})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				e := audit.Event{Principal: fmt.Sprintf("service:w%d", w), Action: "statement",
					Detail: map[string]string{"i": fmt.Sprint(i)}}
				if err := l.Record(e); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Record: %v", err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	got := scanAll(t, db.Audit(), audit.Filter{})
	if len(got) != writers*each {
		t.Fatalf("stored %d events, want %d", len(got), writers*each)
	}
	seen := make(map[string]bool, len(got))
	for i, e := range got {
		if e.Seq != int64(i+1) {
			t.Fatalf("event at index %d has seq %d, want %d", i, e.Seq, i+1)
		}
		seen[e.Principal+"/"+e.Detail["i"]] = true
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct events, want %d", len(seen), writers*each)
	}
	if r := verify(t, db.Audit()); !r.OK() || r.Events != writers*each {
		t.Errorf("Verify = %+v, want %d intact events", r, writers*each)
	}
}

func TestReopenContinuesTheChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatectl.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	seed(t, db, 5)
	wantSeq, wantHash, err := db.Audit().Tail(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, path)
	seq, hash, err := db.Audit().Tail(context.Background())
	if err != nil || seq != wantSeq || hash != wantHash || seq != 5 {
		t.Fatalf("Tail after reopen = %d %s %v, want 5 %s", seq, hash, err, wantHash)
	}
	seed(t, db, 5)
	got := scanAll(t, db.Audit(), audit.Filter{AfterSeq: 5, Limit: 1})
	if len(got) != 1 || got[0].Seq != 6 || got[0].Prev != wantHash {
		t.Errorf("first event after reopen = %+v, want seq 6 with prev %s", got, wantHash)
	}
	if r := verify(t, db.Audit()); !r.OK() || r.Events != 10 {
		t.Errorf("Verify = %+v, want 10 intact events", r)
	}
}

func TestTailOfAnEmptyLog(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "gatectl.db"))
	seq, hash, err := db.Audit().Tail(context.Background())
	if seq != 0 || hash != "" || err != nil {
		t.Errorf("Tail = %d %q %v, want 0 \"\" nil", seq, hash, err)
	}
}

func TestStoreFailureSurfacesThroughErr(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "gatectl.db"))
	seed(t, db, 3)
	l := openLog(t, db.Audit(), audit.Options{Batch: 10})
	// The store starts refusing writes, as a full disk or a lost lock would.
	if _, err := db.w.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON audit_blocks BEGIN SELECT RAISE(ABORT, 'refused by test'); END`); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(fixture(3)); err != nil {
		t.Fatalf("Record before the failure is known: %v", err)
	}
	if err := l.Flush(context.Background()); err == nil || !strings.Contains(err.Error(), "refused by test") {
		t.Errorf("Flush = %v, want the store's error", err)
	}
	if err := l.Err(); err == nil {
		t.Error("Err = nil after a failed write, want the failure")
	}
	if err := l.Record(fixture(4)); err == nil {
		t.Error("Record after the failure = nil, want the failure")
	}
	if err := l.Close(context.Background()); err == nil {
		t.Error("Close = nil after a failed write, want the failure")
	}
	// The failed batch left nothing behind: the chain is intact.
	if r := verify(t, db.Audit()); !r.OK() || r.Events != 3 {
		t.Errorf("Verify = %+v, want 3 intact events", r)
	}
}

func TestScanFilters(t *testing.T) {
	// The same answers whether each event is its own block, blocks cut
	// across the answers, or one block holds everything.
	for _, size := range []int{1, 3, 32} {
		t.Run(fmt.Sprintf("blocks-of-%d", size), func(t *testing.T) {
			db := openDB(t, filepath.Join(t.TempDir(), "gatectl.db"))
			seedBlocks(t, db, 20, size)
			testScanFilters(t, db)
		})
	}
}

func testScanFilters(t *testing.T, db *DB) {
	tests := []struct {
		name   string
		filter audit.Filter
		want   []int64
	}{
		{"all-limit", audit.Filter{Limit: 3}, []int64{1, 2, 3}},
		{"principal", audit.Filter{Principal: "user:bob", Limit: 3}, []int64{2, 5, 8}},
		{"session-desc", audit.Filter{Session: "s-1", Desc: true, Limit: 2}, []int64{20, 18}},
		{"action", audit.Filter{Action: "session.start"}, []int64{1, 6, 11, 16}},
		{"decision-target", audit.Filter{Decision: "deny", Target: "orders", Limit: 2}, []int64{2, 4}},
		{"target-none", audit.Filter{Target: "billing"}, nil},
		{"since-until", audit.Filter{Since: t0.Add(3 * time.Minute), Until: t0.Add(6 * time.Minute)}, []int64{4, 5, 6}},
		{"after-seq", audit.Filter{AfterSeq: 17}, []int64{18, 19, 20}},
		{"before-seq-desc", audit.Filter{BeforeSeq: 4, Desc: true}, []int64{3, 2, 1}},
		{"combined", audit.Filter{Principal: "service:etl", Since: t0.Add(5 * time.Minute), AfterSeq: 6, Limit: 2}, []int64{9, 12}},
		{"all-desc", audit.Filter{Desc: true, Limit: 5}, []int64{20, 19, 18, 17, 16}},
		{"seq-window", audit.Filter{AfterSeq: 3, BeforeSeq: 8}, []int64{4, 5, 6, 7}},
		{"seq-window-desc", audit.Filter{AfterSeq: 3, BeforeSeq: 8, Desc: true}, []int64{7, 6, 5, 4}},
		{"after-last", audit.Filter{AfterSeq: 20}, nil},
		{"until-desc", audit.Filter{Until: t0.Add(4 * time.Minute), Desc: true}, []int64{4, 3, 2, 1}},
		{"since-exact", audit.Filter{Since: t0.Add(19 * time.Minute)}, []int64{20}},
		{"principal-action-desc", audit.Filter{Principal: "user:alice", Action: "statement", Desc: true}, []int64{19, 13, 10, 7, 4}},
		{"session-decision", audit.Filter{Session: "s-0", Decision: "deny"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int64
			for _, e := range scanAll(t, db.Audit(), tt.filter) {
				got = append(got, e.Seq)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Scan(%+v) = %v, want %v", tt.filter, got, tt.want)
			}
		})
	}
}

func TestScanStopsWhenTheCallbackFails(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "gatectl.db"))
	seed(t, db, 10)
	stop := errors.New("enough")
	calls := 0
	err := db.Audit().Scan(context.Background(), audit.Filter{}, func(audit.Event) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Errorf("Scan = %v after %d calls, want the callback's error after 3", err, calls)
	}
}

func TestExport(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "gatectl.db"))
	seed(t, db, 12)
	var buf bytes.Buffer
	n, err := audit.Export(context.Background(), &buf, db.Audit(), audit.Filter{Principal: "user:alice"})
	if err != nil || n != 4 {
		t.Fatalf("Export = %d, %v, want 4 events", n, err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("Export wrote %d lines, want 4", len(lines))
	}
	for i, line := range lines {
		var e audit.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if e.Principal != "user:alice" || e.Hash != e.ComputeHash() {
			t.Errorf("line %d: principal %q hash %s, want user:alice and a hash matching its contents", i+1, e.Principal, e.Hash)
		}
	}
}
