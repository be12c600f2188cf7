package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit log is closed")

// Options tunes a Log. Zero fields take the defaults below.
type Options struct {
	// Batch is the number of pending events that makes the writer seal and
	// write them without waiting for FlushEvery (default 1024). While a
	// write is in progress, the batches sealed meanwhile wait and go to the
	// store together in the next write (group commit), so that one
	// transaction holds up to Queue events and the store's per-transaction
	// cost is shared by more events the busier the log is. Under a
	// pgbench load through the gateway (about 9,000 statement events a
	// second), 1024-event batches took about 4 µs of CPU per event less
	// than 256-event ones: the store's cost per write is large.
	Batch int
	// FlushEvery bounds how long a recorded event waits before it is written
	// when fewer than Batch events are pending (default 100ms).
	FlushEvery time.Duration
	// Queue is the number of recorded events that may wait for the writer
	// before Record blocks (default 8192).
	Queue int
	// Logger receives store failures (default slog.Default()).
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Batch <= 0 {
		o.Batch = 1024
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = 100 * time.Millisecond
	}
	if o.Queue <= 0 {
		o.Queue = 8192
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Log is the writer of the audit log. Any number of goroutines may Record;
// a sealing goroutine takes the recorded events in batches and seals them
// into the chain, and a committing goroutine writes sealed events to the
// Store, so that sealing the next events overlaps the store's write.
//
// A Log that fails to write stays failed: Record returns the failure, Err
// reports it, and callers whose decisions must be audited deny from then on
// (fail closed). Restarting the process reopens the chain at the store's
// tail; no event that reached the store is lost or re-sealed.
type Log struct {
	st      Store
	ls      LineStore // st, when it takes JSON lines
	opts    Options
	flushes chan chan error
	stop    chan struct{}
	done    chan struct{}      // closed when both goroutines have returned
	cancel  context.CancelFunc // aborts a store write that outlives Close
	failed  atomic.Pointer[error]
	lost    atomic.Int64    // events accepted by Record but discarded after a failure
	ctx     context.Context // of store writes; cancel ends it

	// mu guards the events recorded and not yet taken by the sealer.
	// Record appends to the last batch of pending; the sealer takes whole
	// batches from the front, so neither copies under the lock.
	mu      sync.Mutex
	space   sync.Cond // signalled when pending shrinks, the Log closes or fails
	pending [][]Event
	queued  int       // events in pending
	free    [][]Event // emptied batches for Record to reuse
	closed  bool
	// wake tells the sealer that the first event is pending or that a
	// batch is full: Record sends at most twice per Batch events, never
	// once per event.
	wake     chan struct{}
	stopOnce sync.Once

	// groups carries sealed events from the sealer to the committer;
	// spare carries emptied groups back.
	groups chan *group
	spare  chan *group
}

// group is what one Store.Append writes, and the Flush calls that wait for
// it.
type group struct {
	events  []Event
	flushes []chan error
	// lines and ends hold the events' JSON lines when the store is a
	// LineStore (see LineStore.AppendLines).
	lines []byte
	ends  []int
}

// Open starts a Log that continues the chain at st's tail.
func Open(ctx context.Context, st Store, opts Options) (*Log, error) {
	opts.defaults()
	seq, hash, err := st.Tail(ctx)
	if err != nil {
		return nil, fmt.Errorf("open audit log: read the chain's tail: %w", err)
	}
	if seq == 0 {
		hash = Genesis
	} else if hash == "" {
		// Fail closed: continuing from an unknown hash would start a chain
		// that Verify cannot tie to what came before.
		return nil, fmt.Errorf("open audit log: event %d has no hash; run `gatectl audit verify`", seq)
	}
	wctx, cancel := context.WithCancel(context.Background())
	l := &Log{
		st:      st,
		opts:    opts,
		flushes: make(chan chan error),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		cancel:  cancel,
		ctx:     wctx,
		wake:    make(chan struct{}, 1),
		groups:  make(chan *group),
		spare:   make(chan *group, 2),
	}
	l.ls, _ = st.(LineStore)
	l.space.L = &l.mu
	go l.seal(seq, hash)
	go func() {
		// The committer returns after the sealer, which closes groups.
		l.commit()
		close(l.done)
	}()
	return l, nil
}

// Record hands e to the writer and returns without waiting for I/O.
// Seq, Prev and Hash are assigned by the writer; a zero Time becomes now.
// The caller must not modify e.Detail, or what e.Details appends,
// afterwards.
//
// Audit is never dropped to keep a hot path fast: when Queue events are
// already waiting, Record blocks until the writer catches up.
//
// Record returns ErrClosed after Close, and the failure after the Log has
// failed; the event is then not recorded, and a caller that requires audit
// must refuse the action it was about to take (fail closed). Events
// accepted just before a failure are lost with the failing write; the Log
// says how many in an error log line, and Flush and Err report the failure.
func (l *Log) Record(e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	l.mu.Lock()
	for l.queued >= l.opts.Queue && !l.closed && l.failed.Load() == nil {
		l.space.Wait()
	}
	// Fail closed: after a failure or Close nothing more enters.
	if err := l.Err(); err != nil {
		l.mu.Unlock()
		return err
	}
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	n := len(l.pending)
	if n == 0 || len(l.pending[n-1]) == l.opts.Batch {
		l.pending = append(l.pending, l.newBatch())
		n++
	}
	l.pending[n-1] = append(l.pending[n-1], e)
	l.queued++
	signal := l.queued == 1 || len(l.pending[n-1]) == l.opts.Batch
	l.mu.Unlock()
	if signal {
		select {
		case l.wake <- struct{}{}:
		default: // a wakeup is already due
		}
	}
	return nil
}

// newBatch returns an empty batch for pending. l.mu must be held.
func (l *Log) newBatch() []Event {
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		return b
	}
	return make([]Event, 0, l.opts.Batch)
}

// Err returns the failure that stopped the Log, or nil while it is healthy.
func (l *Log) Err() error {
	if p := l.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Flush returns once every event recorded before the call is durable, or
// with the Log's failure, or with ctx's error.
func (l *Log) Flush(ctx context.Context) error {
	req := make(chan error, 1)
	select {
	case l.flushes <- req:
	case <-l.done:
		// Close already wrote everything it could.
		return l.Err()
	case <-ctx.Done():
		return fmt.Errorf("flush audit log: %w", ctx.Err())
	}
	select {
	case err := <-req:
		return err
	case <-ctx.Done():
		return fmt.Errorf("flush audit log: %w", ctx.Err())
	}
}

// Close turns new records away, writes every event already recorded, and
// stops the writer. It returns the Log's failure, if any. If ctx ends first,
// the write in progress is aborted and Close returns ctx's error.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	l.closed = true
	l.space.Broadcast() // Records waiting for space return ErrClosed
	l.mu.Unlock()
	l.stopOnce.Do(func() { close(l.stop) })
	select {
	case <-l.done:
		l.cancel()
		return l.Err()
	case <-ctx.Done():
		l.cancel()
		return fmt.Errorf("close audit log: events may not have been written: %w", ctx.Err())
	}
}
