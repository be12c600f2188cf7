package audit

import (
	"fmt"
	"time"
)

// run is the writer goroutine: it seals events in the order it receives them
// and writes a batch when it is full, when FlushEvery has passed since its
// first event, on Flush, and on Close.
func (l *Log) run() {
	defer close(l.done)
	timer := time.NewTimer(l.opts.FlushEvery)
	timer.Stop()
	armed := false
	write := func() {
		if armed {
			timer.Stop()
			armed = false
		}
		l.write()
	}
	for {
		select {
		case e := <-l.queue:
			if l.add(e) {
				write()
			} else if !armed && len(l.batch) > 0 {
				timer.Reset(l.opts.FlushEvery)
				armed = true
			}
		case <-timer.C:
			armed = false
			l.write()
		case req := <-l.flushes:
			// Everything recorded before Flush was called is in the queue
			// already: Record returns only after enqueueing.
			for n := len(l.queue); n > 0; n-- {
				if l.add(<-l.queue) {
					write()
				}
			}
			write()
			req <- l.Err()
		case <-l.stop:
			// Close holds new records off, so the queue only shrinks now.
		drain:
			for {
				select {
				case e := <-l.queue:
					if l.add(e) {
						write()
					}
				default:
					break drain
				}
			}
			write()
			if l.lost > 0 {
				l.opts.Logger.Error("audit events were not written because the audit log failed",
					"events", l.lost, "err", l.Err())
			}
			return
		}
	}
}

// add seals e into the pending batch and reports whether the batch is full.
// After a failure it discards e and counts it as lost.
func (l *Log) add(e Event) (full bool) {
	if l.Err() != nil {
		l.lost++
		return false
	}
	prev := l.prev
	if n := len(l.batch); n > 0 {
		prev = l.batch[n-1].Hash
	}
	l.h.seal(&e, l.seq+int64(len(l.batch))+1, prev)
	l.batch = append(l.batch, e)
	return len(l.batch) >= l.opts.Batch
}

// write appends the pending batch in one transaction. On failure the Log
// fails for good: the chain cannot continue past events whose fate is
// unknown, so every later Record is refused (fail closed).
func (l *Log) write() {
	n := len(l.batch)
	if n == 0 {
		return
	}
	err := l.st.Append(l.ctx, l.batch)
	if err == nil {
		l.seq = l.batch[n-1].Seq
		l.prev = l.batch[n-1].Hash
	} else {
		first, last := l.batch[0].Seq, l.batch[n-1].Seq
		ferr := fmt.Errorf("audit log failed and records nothing more; restart the gateway once the audit store works: write events %d-%d: %w", first, last, err)
		l.failed.CompareAndSwap(nil, &ferr)
		l.opts.Logger.Error("audit store write failed; audit log stopped",
			"first_seq", first, "last_seq", last, "events_lost", n, "err", err)
	}
	clear(l.batch)
	l.batch = l.batch[:0]
}
