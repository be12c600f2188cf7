package audit

import (
	"fmt"
	"time"
)

// seal is the sealing goroutine. It takes recorded events in the order
// Record accepted them, seals them into the chain after (seq, prev), and
// hands them to the committer: a full batch as soon as it is pending, a
// partial one after FlushEvery, and everything on Flush and Close. While
// the committer is busy, sealed events accumulate in one group, which it
// writes next in one transaction.
func (l *Log) seal(seq int64, prev string) {
	defer close(l.groups)
	s := sealer{l: l, seq: seq, prev: prev, cur: l.newGroup()}
	timer := time.NewTimer(l.opts.FlushEvery)
	timer.Stop()
	armed := false
	for {
		var out chan *group // nil, so never ready, while there is nothing to hand over
		if len(s.cur.events) > 0 || len(s.cur.flushes) > 0 {
			out = l.groups
		}
		select {
		case out <- s.cur:
			s.cur = l.newGroup()
		case <-l.wake:
			if partial := s.take(false); partial && !armed {
				timer.Reset(l.opts.FlushEvery)
				armed = true
			}
		case <-timer.C:
			armed = false
			s.take(true)
		case req := <-l.flushes:
			// Everything recorded before Flush was called is pending or
			// sealed already: Record returns only after appending.
			s.take(true)
			s.cur.flushes = append(s.cur.flushes, req)
		case <-l.stop:
			// Close turned new records away, so pending only shrinks now.
			s.take(true)
			if len(s.cur.events) > 0 || len(s.cur.flushes) > 0 {
				l.groups <- s.cur
			}
			return
		}
	}
}

// sealer is the state of the sealing goroutine.
type sealer struct {
	l    *Log
	h    hasher
	seq  int64  // Seq of the last sealed event
	prev string // Hash of the last sealed event
	cur  *group // sealed events not yet handed to the committer
}

// take seals pending batches into s.cur: with all, every batch pending when
// it starts (the last one possibly partial); otherwise only full batches.
// It reports whether a partial batch is left pending.
func (s *sealer) take(all bool) (partial bool) {
	l := s.l
	l.mu.Lock()
	n := len(l.pending)
	for ; n > 0; n-- {
		b := l.pending[0]
		if !all && len(b) < l.opts.Batch {
			break
		}
		copy(l.pending, l.pending[1:])
		l.pending[len(l.pending)-1] = nil
		l.pending = l.pending[:len(l.pending)-1]
		l.queued -= len(b)
		l.space.Broadcast()
		l.mu.Unlock()

		s.sealBatch(b)
		clear(b) // drop the events' strings and maps now that cur holds them

		l.mu.Lock()
		l.free = append(l.free, b[:0])
		if len(s.cur.events) >= l.opts.Queue {
			// The committer is behind by a whole queue: wait for it rather
			// than let sealed events pile up without bound. Records block
			// meanwhile (backpressure).
			l.mu.Unlock()
			l.groups <- s.cur
			s.cur = l.newGroup()
			l.mu.Lock()
		}
	}
	partial = len(l.pending) > 0
	l.mu.Unlock()
	return partial
}

// sealBatch seals b's events into s.cur. After a failure it discards them
// and counts them as lost: the chain cannot continue past events whose
// fate is unknown.
func (s *sealer) sealBatch(b []Event) {
	if s.l.Err() != nil {
		s.l.lost.Add(int64(len(b)))
		return
	}
	g := s.cur
	start := len(g.events)
	g.events = append(g.events, b...)
	for i := range g.events[start:] {
		e := &g.events[start+i]
		s.seq++
		s.h.seal(e, s.seq, s.prev)
		s.prev = e.Hash
		if s.l.ls != nil {
			// Sealing left e's Detail sorted and its plain strings marked,
			// and its Time lies in 1677-2262, which JSON can hold.
			g.lines = s.h.appendLine(g.lines, e, e.Time)
			g.ends = append(g.ends, len(g.lines))
		} else if e.Details != nil {
			// A Store that is not a LineStore reads Detail only.
			e.Detail, e.Details = s.h.detailMap(), nil
		}
	}
	s.h.forget()
}

// newGroup returns an empty group, reusing one the committer gave back.
func (l *Log) newGroup() *group {
	select {
	case g := <-l.spare:
		return g
	default:
		return &group{events: make([]Event, 0, l.opts.Batch)}
	}
}

// commit is the committing goroutine: it writes each group in one
// transaction, answers the Flush calls waiting for it, and returns once the
// sealer is done.
func (l *Log) commit() {
	for g := range l.groups {
		l.write(g)
		for _, req := range g.flushes {
			req <- l.Err()
		}
		clear(g.events) // let the events' strings and maps go
		clear(g.flushes)
		g.events, g.flushes = g.events[:0], g.flushes[:0]
		g.lines, g.ends = g.lines[:0], g.ends[:0]
		select {
		case l.spare <- g:
		default:
		}
	}
	if lost := l.lost.Load(); lost > 0 {
		l.opts.Logger.Error("audit events were not written because the audit log failed",
			"events", lost, "err", l.Err())
	}
}

// write appends g's events in one transaction. On failure the Log fails
// for good: the chain cannot continue past events whose fate is unknown,
// so every later Record is refused (fail closed).
func (l *Log) write(g *group) {
	events := g.events
	n := len(events)
	if n == 0 {
		return
	}
	if l.Err() != nil {
		l.lost.Add(int64(n))
		return
	}
	var err error
	if l.ls != nil {
		err = l.ls.AppendLines(l.ctx, events, g.lines, g.ends)
	} else {
		err = l.st.Append(l.ctx, events)
	}
	if err == nil {
		return
	}
	first, last := events[0].Seq, events[n-1].Seq
	ferr := fmt.Errorf("audit log failed and records nothing more; restart the gateway once the audit store works: write events %d-%d: %w", first, last, err)
	l.failed.CompareAndSwap(nil, &ferr)
	l.opts.Logger.Error("audit store write failed; audit log stopped",
		"first_seq", first, "last_seq", last, "events_lost", n, "err", err)
	// Records waiting for space return the failure instead.
	l.mu.Lock()
	l.space.Broadcast()
	l.mu.Unlock()
}
