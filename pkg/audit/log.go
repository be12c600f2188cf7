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
	// Batch is the most events written in one transaction (default 256).
	Batch int
	// FlushEvery bounds how long a recorded event waits before it is written
	// when fewer than Batch events are pending (default 100ms).
	FlushEvery time.Duration
	// Queue is the number of recorded events that may wait for the writer
	// before Record blocks (default 4096).
	Queue int
	// Logger receives store failures (default slog.Default()).
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = 100 * time.Millisecond
	}
	if o.Queue <= 0 {
		o.Queue = 4096
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Log is the writer of the audit log. Any number of goroutines may Record;
// one writer goroutine seals events into the chain and writes them to the
// Store in batches.
//
// A Log that fails to write stays failed: Record returns the failure, Err
// reports it, and callers whose decisions must be audited deny from then on
// (fail closed). Restarting the process reopens the chain at the store's
// tail; no event that reached the store is lost or re-sealed.
type Log struct {
	st      Store
	opts    Options
	queue   chan Event
	flushes chan chan error
	stop    chan struct{}
	done    chan struct{}
	cancel  context.CancelFunc // aborts a store write that outlives Close
	failed  atomic.Pointer[error]

	// mu is held shared by Record while it enqueues and exclusively by Close
	// to turn new records away, so that no event enters the queue after the
	// writer's final drain.
	mu       sync.RWMutex
	closed   bool
	stopOnce sync.Once

	// Owned by the writer goroutine.
	ctx   context.Context
	seq   int64  // last durable Seq
	prev  string // last durable Hash
	batch []Event
	h     hasher
	lost  int // events accepted by Record but discarded after a failure
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
		queue:   make(chan Event, opts.Queue),
		flushes: make(chan chan error),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		cancel:  cancel,
		ctx:     wctx,
		seq:     seq,
		prev:    hash,
		batch:   make([]Event, 0, opts.Batch),
	}
	go l.run()
	return l, nil
}

// Record enqueues e for the writer and returns without waiting for I/O.
// Seq, Prev and Hash are assigned by the writer; a zero Time becomes now.
// The caller must not modify e.Detail afterwards.
//
// Audit is never dropped to keep a hot path fast: when Queue events are
// already waiting, Record blocks until the writer catches up.
//
// Record returns ErrClosed after Close, and the failure after the Log has
// failed; the event is then not recorded, and a caller that requires audit
// must refuse the action it was about to take (fail closed). Events
// accepted just before a failure are lost with the failing batch; the Log
// says how many in an error log line, and Flush and Err report the failure.
func (l *Log) Record(e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if err := l.Err(); err != nil {
		return err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	l.queue <- e
	return nil
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
	// Taking mu waits for Records blocked on a full queue, which wait for
	// the writer, which may wait for the store: do it aside so that ctx
	// still bounds Close.
	go func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		l.stopOnce.Do(func() { close(l.stop) })
	}()
	select {
	case <-l.done:
		l.cancel()
		return l.Err()
	case <-ctx.Done():
		l.cancel()
		return fmt.Errorf("close audit log: events may not have been written: %w", ctx.Err())
	}
}
