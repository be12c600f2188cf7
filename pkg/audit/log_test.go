package audit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/audit"
)

// quiet keeps expected failure logs out of test output.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// never is a FlushEvery long enough that only Batch, Flush and Close write.
const never = time.Hour

func openLog(t *testing.T, st audit.Store, opts audit.Options) *audit.Log {
	t.Helper()
	opts.Logger = quiet
	l, err := audit.Open(context.Background(), st, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func record(t *testing.T, l *audit.Log, n int, principal string) {
	t.Helper()
	for i := range n {
		e := audit.Event{Principal: principal, Action: "statement", Target: "orders", Decision: "allow",
			Detail: map[string]string{"n": fmt.Sprint(i)}}
		if err := l.Record(e); err != nil {
			t.Fatalf("Record: %v", err)
		}
	}
}

func checkChain(t *testing.T, st audit.Store, wantEvents int64) {
	t.Helper()
	r, err := audit.Verify(context.Background(), st)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !r.OK() || r.Events != wantEvents {
		t.Fatalf("Verify = %+v, want %d intact events", r, wantEvents)
	}
}

func TestLogSealsAChain(t *testing.T) {
	st := &memStore{}
	l := openLog(t, st, audit.Options{Batch: 2, FlushEvery: never})
	before := time.Now()
	record(t, l, 5, "user:alice")
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := st.snapshot()
	if len(got) != 5 {
		t.Fatalf("stored %d events, want 5", len(got))
	}
	prev := audit.Genesis
	for i, e := range got {
		if e.Seq != int64(i+1) || e.Prev != prev || e.Hash != e.ComputeHash() {
			t.Errorf("event %d: seq %d prev %.8s hash %.8s, want seq %d prev %.8s hash %.8s",
				i, e.Seq, e.Prev, e.Hash, i+1, prev, e.ComputeHash())
		}
		if e.Time.Before(before) || e.Time.Location() != time.UTC {
			t.Errorf("event %d: time %v, want a UTC time after %v", i, e.Time, before)
		}
		if got, want := e.Detail["n"], fmt.Sprint(i); got != want {
			t.Errorf("event %d: detail n = %q, want %q", i, got, want)
		}
		prev = e.Hash
	}
	checkChain(t, st, 5)
}

func TestFlushMakesRecordedEventsDurable(t *testing.T) {
	st := &memStore{}
	l := openLog(t, st, audit.Options{Batch: 1000, FlushEvery: never})
	defer l.Close(context.Background())
	record(t, l, 3, "user:alice")
	if err := l.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got, want := len(st.snapshot()), 3; got != want {
		t.Errorf("stored %d events after Flush, want %d", got, want)
	}
}

func TestCloseFlushes(t *testing.T) {
	st := &memStore{}
	l := openLog(t, st, audit.Options{Batch: 1000, FlushEvery: never})
	record(t, l, 7, "user:alice")
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, want := len(st.snapshot()), 7; got != want {
		t.Errorf("stored %d events after Close, want %d", got, want)
	}
	if err := l.Record(audit.Event{Action: "statement"}); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Record after Close = %v, want ErrClosed", err)
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Errorf("Flush after Close = %v, want nil", err)
	}
}

func TestFlushEveryWritesWithoutFlush(t *testing.T) {
	st := &memStore{}
	l := openLog(t, st, audit.Options{Batch: 1000, FlushEvery: time.Millisecond})
	defer l.Close(context.Background())
	record(t, l, 1, "user:alice")
	// The timer, not Flush, writes the event; the test waits for it with no
	// deadline of its own beyond the test's.
	for len(st.snapshot()) == 0 {
		time.Sleep(time.Millisecond)
	}
}

func TestReopenContinuesTheChain(t *testing.T) {
	st := &memStore{}
	for round := range 3 {
		l := openLog(t, st, audit.Options{Batch: 2, FlushEvery: never})
		record(t, l, 3, fmt.Sprintf("user:%d", round))
		if err := l.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	checkChain(t, st, 9)
}

func TestStoreFailureSurfaces(t *testing.T) {
	st := &memStore{}
	l := openLog(t, st, audit.Options{Batch: 1000, FlushEvery: never})
	record(t, l, 2, "user:alice")
	if err := l.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("Err before failure = %v, want nil", err)
	}

	diskFull := errors.New("disk full")
	st.failWith(diskFull)
	record(t, l, 1, "user:alice")
	if err := l.Flush(context.Background()); !errors.Is(err, diskFull) {
		t.Errorf("Flush = %v, want the store's error", err)
	}
	if err := l.Err(); !errors.Is(err, diskFull) {
		t.Errorf("Err = %v, want the store's error", err)
	}
	if err := l.Record(audit.Event{Action: "statement"}); !errors.Is(err, diskFull) {
		t.Errorf("Record after failure = %v, want the store's error", err)
	}
	if err := l.Close(context.Background()); !errors.Is(err, diskFull) {
		t.Errorf("Close = %v, want the store's error", err)
	}
	// What was durable before the failure is still a valid chain.
	checkChain(t, st, 2)
}

func TestOpenRefusesATailWithoutHash(t *testing.T) {
	st := &memStore{events: []audit.Event{{Seq: 1}}}
	if _, err := audit.Open(context.Background(), st, audit.Options{Logger: quiet}); err == nil {
		t.Fatal("Open on a tail without hash succeeded, want an error")
	}
}

// BenchmarkRecord measures the hot path: what a proxy pays per audit event.
func BenchmarkRecord(b *testing.B) {
	l, err := audit.Open(context.Background(), &discardStore{}, audit.Options{})
	if err != nil {
		b.Fatal(err)
	}
	e := audit.Event{Principal: "service:etl", Action: "statement", Target: "orders", Decision: "allow",
		PolicyCommit: "3f2a9c1", Session: "s-1", Detail: map[string]string{"statement": "SELECT 1"}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Record(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	if err := l.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// discardStore accepts every batch and keeps only the tail.
type discardStore struct {
	seq  int64
	hash string
}

func (d *discardStore) Append(_ context.Context, events []audit.Event) error {
	d.seq, d.hash = events[len(events)-1].Seq, events[len(events)-1].Hash
	return nil
}

func (d *discardStore) Tail(context.Context) (int64, string, error) { return d.seq, d.hash, nil }

func (d *discardStore) Scan(context.Context, audit.Filter, func(audit.Event) error) error {
	return nil
}

func TestCloseIsBoundedByItsContext(t *testing.T) {
	st := &blockingStore{release: make(chan struct{}), entered: make(chan struct{}, 8)}
	l := openLog(t, st, audit.Options{Batch: 1, Queue: 1, FlushEvery: never})
	record(t, l, 2, "user:alice")
	// Wait until the writer is stuck in Append: were the write to start
	// only after release below, it could succeed.
	<-st.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with a cancelled context = %v, want context.Canceled", err)
	}
	// Close aborted the stuck write, so the Log has failed rather than
	// claiming events it could not write.
	close(st.release)
	if err := l.Close(context.Background()); !errors.Is(err, context.Canceled) {
		t.Errorf("second Close = %v, want the aborted write's error", err)
	}
}

// blockingStore's Append waits for release or for its context. When
// entered is not nil, Append first sends on it, so a test knows that a
// write is in progress.
type blockingStore struct {
	memStore
	release chan struct{}
	entered chan struct{}
}

func (b *blockingStore) Append(ctx context.Context, events []audit.Event) error {
	if b.entered != nil {
		b.entered <- struct{}{}
	}
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	// A store that sees its context ended fails the write, even when
	// release came too: select picks at random among ready cases.
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.memStore.Append(ctx, events)
}

func TestLogReplacesInvalidUTF8(t *testing.T) {
	st := &memStore{}
	l := openLog(t, st, audit.Options{FlushEvery: never})
	detail := map[string]string{"k\xff": "v\xfe", "ok": "ünï"}
	in := audit.Event{Principal: "user:\xffx", Reason: "fine ✓", Detail: detail}
	if err := l.Record(in); err != nil {
		t.Fatalf("Record: %v", err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := st.snapshot()[0]
	want := map[string]string{"k\uFFFD": "v\uFFFD", "ok": "ünï"}
	if got.Principal != "user:\uFFFDx" || got.Reason != "fine ✓" || !maps.Equal(got.Detail, want) {
		t.Errorf("stored principal %q reason %q detail %q, want %q %q %q", got.Principal, got.Reason, got.Detail, "user:\uFFFDx", "fine ✓", want)
	}
	if got.Hash != got.ComputeHash() {
		t.Errorf("stored hash %s does not match the stored contents (%s)", got.Hash, got.ComputeHash())
	}
	if _, ok := detail["k\xff"]; !ok || len(detail) != 2 {
		t.Errorf("the caller's Detail was modified: %q", detail)
	}
}

// TestCloseReleasesRecordsWaitingForSpace fills the Log while its store
// never finishes a write: Record must block (backpressure, never drop), and
// Close must then release the blocked Record with an error instead of
// leaving it waiting forever.
func TestCloseReleasesRecordsWaitingForSpace(t *testing.T) {
	st := &blockingStore{release: make(chan struct{})}
	l := openLog(t, st, audit.Options{Batch: 1, Queue: 4, FlushEvery: never})
	const attempts = 1000
	var accepted atomic.Int64
	done := make(chan error, 1)
	go func() {
		for range attempts {
			if err := l.Record(audit.Event{Principal: "user:alice", Action: "statement"}); err != nil {
				done <- err
				return
			}
			accepted.Add(1)
		}
		done <- nil
	}()
	// Let the recorder get past the queue's size, so that it is about to
	// block or blocked when Close comes.
	for accepted.Load() < 4 {
		runtime.Gosched()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Close(ctx)
	if err := <-done; err == nil {
		t.Fatalf("all %d Records succeeded against a store that never finishes a write: no backpressure", attempts)
	}
	if n := accepted.Load(); n >= attempts {
		t.Fatalf("accepted %d events, want far fewer than %d", n, attempts)
	}
	close(st.release)
}

// TestLogHandsALineStoreTheLinesOfWhatItSealed checks that the lines the
// sealer encodes are AppendJSONLine of the sealed events, whatever their
// contents, across batches and groups.
func TestLogHandsALineStoreTheLinesOfWhatItSealed(t *testing.T) {
	st := &lineStore{}
	l := openLog(t, st, audit.Options{Batch: 3, FlushEvery: never})
	many := make(map[string]string)
	for i := range 30 {
		many[fmt.Sprint("key-", i)] = fmt.Sprint("<", i, ">")
	}
	events := []audit.Event{
		{Principal: "service:etl", Action: "statement", Target: "orders", Decision: "allow", Session: "s-1",
			Detail: map[string]string{"text": "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", "kind": "execute", "rows": "1"}},
		{Principal: "user:zoë", Action: "statement", Reason: "quote \" backslash \\ <html> & \u2028", Detail: map[string]string{"é": "ü"}},
		{Principal: "user:\xffbad", Detail: map[string]string{"k\xff": "v\xc3", "ok": "\x00\x1f"}},
		{Action: "session.end", Time: time.Date(1901, 12, 13, 20, 45, 52, 999, time.UTC)},
		{Action: "many", Detail: many},
		{Action: "empty-detail", Detail: map[string]string{}},
	}
	for round := range 3 {
		for _, e := range events {
			if err := l.Record(e); err != nil {
				t.Fatalf("Record: %v", err)
			}
		}
		if round == 1 {
			if err := l.Flush(context.Background()); err != nil {
				t.Fatalf("Flush: %v", err)
			}
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, want := st.lines, 3*len(events); got != want {
		t.Errorf("events written with their lines = %d, want %d", got, want)
	}
	for _, m := range st.mismatch {
		t.Error(m)
	}
	checkChain(t, st, int64(3*len(events)))
}

// entries is an audit.Details over fixed entries.
type entries []audit.Field

func (e entries) AppendDetail(dst []audit.Field) []audit.Field { return append(dst, e...) }

// TestLogStoresDetailsAsDetail records events whose Detail comes from
// Details: a Store that is not a LineStore must get it as Detail, hashed
// as that Detail hashes.
func TestLogStoresDetailsAsDetail(t *testing.T) {
	st := &memStore{}
	l := openLog(t, st, audit.Options{Batch: 2, FlushEvery: never})
	in := []struct {
		d    entries
		want map[string]string
	}{
		{entries{{Key: "text", Value: "SELECT 1"}, {Key: "rows", Value: "1"}}, map[string]string{"text": "SELECT 1", "rows": "1"}},
		{entries{{Key: "a", Value: "1"}, {Key: "a", Value: "2"}}, map[string]string{"a": "2"}},
		{entries{{Key: "k\xff", Value: "ok"}}, map[string]string{"k\uFFFD": "ok"}},
		{nil, nil},
	}
	for _, tt := range in {
		if err := l.Record(audit.Event{Action: "statement", Details: tt.d}); err != nil {
			t.Fatalf("Record: %v", err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := st.snapshot()
	if len(got) != len(in) {
		t.Fatalf("stored %d events, want %d", len(got), len(in))
	}
	for i, e := range got {
		if e.Details != nil || !maps.Equal(e.Detail, in[i].want) || (in[i].want == nil && e.Detail != nil) {
			t.Errorf("event %d: stored Detail %q Details %v, want Detail %q", i, e.Detail, e.Details, in[i].want)
		}
		if e.Hash != e.ComputeHash() {
			t.Errorf("event %d: stored hash %s does not match its Detail (%s)", i, e.Hash, e.ComputeHash())
		}
	}
	checkChain(t, st, int64(len(in)))
}
