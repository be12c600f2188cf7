package postgres

import (
	"sync"
	"sync/atomic"
	"time"
)

// entryKind is what a pending entry waits for in the target's responses.
type entryKind uint8

const (
	entryQuery entryKind = iota + 1
	entryExecute
	entryFunctionCall
	entrySync
	// entryBind is a client Bind; its BindComplete pops it.
	entryBind
	// entryRefusedParse is a refused Parse that the gateway replaced with a
	// Parse of the refusal and an injected Bind and Execute of it; the
	// ParseComplete and the BindComplete are dropped, so the client sees
	// the error alone, as PostgreSQL answers a Parse that fails.
	entryRefusedParse
	// entryParse is an allowed Parse; its ParseComplete pops it.
	entryParse
	// entryDescribe is a Describe; the RowDescription or NoData that ends
	// its answer pops it.
	entryDescribe
	// entryClose is a Close; its CloseComplete pops it.
	entryClose
)

// extended reports whether k is a message of the extended protocol that
// the target skips, after an error, up to the next Sync.
func (k entryKind) extended() bool {
	switch k {
	case entryExecute, entryBind, entryRefusedParse, entryParse, entryDescribe, entryClose:
		return true
	}
	return false
}

// endsRequest reports whether the target answers k with ReadyForQuery.
func (k entryKind) endsRequest() bool {
	return k == entrySync || k == entryQuery || k == entryFunctionCall
}

// entry is one client request whose completion the backend side tracks. The
// client side pushes it before forwarding the request, so it is always
// queued before its responses can arrive.
type entry struct {
	kind entryKind
	// portal is the portal of a Bind or an Execute.
	portal  string
	text    string
	verdict Verdict
	// parseSeen and bindSeen are set once the Parse of the refusal that
	// replaced a refused Parse, and its injected Bind, completed.
	parseSeen, bindSeen bool
	// closeFirst marks a Parse (allowed or refused) that the gateway
	// preceded with a Close of the name (see session.onParse), until its
	// CloseComplete, which is dropped; closeMore counts further Closes
	// the statement cache sent before it (see session.parseCached), whose
	// CloseCompletes are dropped too.
	closeFirst bool
	closeMore  uint8
	// closes are the cache statements that closeMore's Closes close: if
	// the target skips them, it still holds these (session.unclosed).
	closes []string
	// copyMaybe marks a Sync sent right after an Execute (see
	// session.copyMaybe); copyIn marks an Execute that started COPY FROM
	// STDIN.
	copyMaybe, copyIn bool
	// name, stmt and prev are set on a Parse (allowed or refused) that
	// replaced the gateway's record of an existing statement: if the
	// Parse does not take effect on the target, the target keeps prev
	// under the name (see session.revert). A Close sets name and prev to
	// the statement or portal it removed, and closesPortal for a portal.
	name         string
	stmt, prev   *stmtInfo
	closesPortal bool
	prevPortal   portalRec
	// at is the client message number (session.msgNo) of a Sync, Query
	// or Bind. A Bind also keeps in prevPortal the record of its portal
	// before it, and an Execute in bindAt the at of the Bind that made
	// the record it ran from (0 for none).
	at, bindAt uint64
	// seg is the number of Syncs the client had sent before this request
	// (session.segs): a Sync's own seg is that of the step it ends.
	seg uint64
	// settles is the record or Close mark of a Parse or Close, settled
	// when the entry leaves the queue.
	settles *stmtInfo
	// cached is the statement cache's entry that a Parse prepares, or
	// that a Bind names (see stmtCache).
	cached *cachedStmt
	// drops is the unnamed statement's record that a Query drops on the
	// target if the target runs it (see stmtInfo.dropped).
	drops *stmtInfo
	start time.Time

	// Filled by the backend side.
	tag      string
	rows     int64
	errCode  string
	executed bool
	// interrupted marks the statement in flight when the session ended.
	interrupted bool
}

// pendingQueue hands entries from the client-side goroutine to the
// backend-side goroutine. The producer appends under the lock; the consumer
// swaps the whole slice out and works on its own copy without locking, so
// the steady state allocates nothing.
type pendingQueue struct {
	mu sync.Mutex
	in []entry
	n  atomic.Int64 // entries pushed and not popped
	// ends counts the Syncs, Queries and FunctionCalls pushed and not
	// popped: while one is, the target's last transaction status may
	// be out of date (see session.cacheFor).
	ends atomic.Int64
	// seg stamps the entries pushed (entry.seg); the producer sets it.
	seg uint64

	// Owned by the consumer.
	local []entry
	next  int
}

func (q *pendingQueue) push(e entry) {
	e.seg = q.seg
	if e.kind.endsRequest() {
		q.ends.Add(1)
	}
	q.mu.Lock()
	q.in = append(q.in, e)
	q.mu.Unlock()
	q.n.Add(1)
}

// anyAfterHead reports whether an entry after the head satisfies f.
// Consumer only.
func (q *pendingQueue) anyAfterHead(f func(*entry) bool) bool {
	for i := q.next + 1; i < len(q.local); i++ {
		if f(&q.local[i]) {
			return true
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.in {
		if f(&q.in[i]) {
			return true
		}
	}
	return false
}

// len is the number of entries waiting.
func (q *pendingQueue) len() int64 { return q.n.Load() }

// maxSkipped and maxPending bound the client messages waiting for the
// target's answers in one session, about 300 bytes each in the queue.
// While the target skips a failed pipeline up to its Sync it answers
// nothing, and nothing else slows the client down: the Binds, Executes and
// Describes it will skip are forwarded without an entry (forwardSkipped),
// and maxSkipped bounds the rest (Parses, Closes). Otherwise answers bound
// the queue (a target whose answers the client does not read stops
// reading, and the gateway then stops reading the client) by what the
// sockets' buffers hold, which maxPending is far above.
const (
	maxSkipped = 1 << 18
	maxPending = 1 << 20
)

// head returns the oldest unfinished entry, or nil. Consumer only.
func (q *pendingQueue) head() *entry {
	if q.next == len(q.local) {
		q.refill()
		if len(q.local) == 0 {
			return nil
		}
	}
	return &q.local[q.next]
}

// pop removes the head. Consumer only.
func (q *pendingQueue) pop() {
	if st := q.local[q.next].settles; st != nil {
		st.settled.Store(true)
	}
	if q.local[q.next].kind.endsRequest() {
		q.ends.Add(-1)
	}
	q.local[q.next] = entry{}
	q.next++
	q.n.Add(-1)
}

func (q *pendingQueue) refill() {
	q.mu.Lock()
	q.local, q.in = q.in, q.local[:0]
	if cap(q.in) > maxKeptEntries {
		q.in = nil // a burst is over: do not keep its memory for the session
	}
	q.mu.Unlock()
	q.next = 0
}

// maxKeptEntries is the capacity of a drained slice of entries that the
// queue keeps for reuse.
const maxKeptEntries = 1 << 12
