package postgres

import "sync/atomic"

// stmtInfo is what the gateway knows of a prepared statement (or, without
// text, the mark of a Close of one: see session.closing).
type stmtInfo struct {
	text    string
	verdict Verdict
	// read is the client read (session.readNo) that brought the Parse the
	// verdict was made for.
	read uint64

	// The gateway records a Parse or Close when it forwards it, before the
	// target has answered; the target may skip it (an earlier error in its
	// pipeline) or refuse it (a duplicate name), and the gateway then puts
	// its record back (see session.applyReverts). seg is the number of
	// Syncs the client had sent before the Parse or Close (session.segs);
	// settled is set once the target answered or skipped it, after any
	// revert is queued. uncertain marks a Parse that replaced a statement
	// or followed an unanswered Close of one: until it is settled, the
	// target may hold either statement under the name.
	seg       uint64
	settled   atomic.Bool
	uncertain bool

	// cached is the statement cache's entry that Binds and Describes of
	// this unnamed statement name on the target (see stmtCache); dropped
	// is set once a simple Query dropped the unnamed statement there, so
	// that they fail as PostgreSQL's would. cached is client side
	// only; the target side sets dropped when it answers the Query.
	cached  *cachedStmt
	dropped atomic.Bool
	// queried is set when a Query was sent after this Parse, in step
	// querySeg (session.segs). Client side only.
	queried  bool
	querySeg uint64
}

// stmtTable tracks the client's prepared statements and portals so that an
// Execute can be attributed to its statement text and a Bind of a refused
// statement can be rewritten. The unnamed statement and portal, used for
// every one-shot query, live in fields so the hot path needs no map.
type stmtTable struct {
	unnamed       *stmtInfo
	named         map[string]*stmtInfo
	unnamedPortal portalRec
	portals       map[string]portalRec
	// swept is the message number before which the gateway has dropped
	// the portals the target dropped (see sweepPortals).
	swept uint64
	// namedBytes is the names and text held for named statements, bounded by
	// maxNamedBytes so one session cannot grow the gateway without limit.
	namedBytes int
}

// portalRec is a Bind the gateway forwarded: the statement bound, and the
// client message number (session.msgNo) and read (session.readNo) of the
// Bind.
type portalRec struct {
	info     *stmtInfo
	at, read uint64
	// hold marks a WITH HOLD cursor, which its transaction's end keeps.
	hold bool
}

// maxPortals bounds the named portals one session's record keeps. The
// target drops portals at the end of their transaction, and the gateway
// with it (sweepPortals), so only a transaction that binds this many
// names without closing them reaches it.
const maxPortals = 1 << 16

// maxNamedBytes bounds the statement text one session keeps for its named
// prepared statements.
const maxNamedBytes = 64 << 20

// stmt returns the statement called name, or nil.
func (t *stmtTable) stmt(name []byte) *stmtInfo {
	if len(name) == 0 {
		return t.unnamed
	}
	return t.named[string(name)]
}

// setStmt records a Parse of name.
func (t *stmtTable) setStmt(name []byte, info *stmtInfo) {
	if len(name) == 0 {
		t.unnamed = info
		return
	}
	if t.named == nil {
		t.named = make(map[string]*stmtInfo)
	}
	if old := t.named[string(name)]; old != nil {
		t.namedBytes -= len(name) + len(old.text)
	}
	t.named[string(name)] = info
	t.namedBytes += len(name) + len(info.text)
}

// full reports whether the named statements hold more text than allowed.
func (t *stmtTable) full() bool { return t.namedBytes > maxNamedBytes }

// portal returns the Bind of portal name, or a zero portalRec.
func (t *stmtTable) portal(name []byte) portalRec {
	if len(name) == 0 {
		return t.unnamedPortal
	}
	return t.portals[string(name)]
}

// bind records a Bind of stmt to portal; false when the session holds
// maxPortals named portals already.
func (t *stmtTable) bind(portal []byte, rec portalRec) bool {
	if len(portal) == 0 {
		t.unnamedPortal = rec
		return true
	}
	if t.portals == nil {
		t.portals = make(map[string]portalRec)
	}
	if _, ok := t.portals[string(portal)]; !ok && len(t.portals) >= maxPortals {
		return false
	}
	t.portals[string(portal)] = rec
	return true
}

// sweepPortals forgets the portals bound by client messages before number
// before: the target ended the transaction they belonged to, which drops
// every portal a Bind made.
func (t *stmtTable) sweepPortals(before uint64) {
	if before <= t.swept {
		return
	}
	t.swept = before
	if t.unnamedPortal.at < before {
		t.unnamedPortal = portalRec{}
	}
	for name, rec := range t.portals {
		if rec.at < before && !rec.hold {
			delete(t.portals, name)
		}
	}
	if len(t.portals) == 0 {
		t.portals = nil // a map keeps its size after deletes
	}
}

// close records a Close of a statement ('S') or portal ('P').
func (t *stmtTable) close(kind byte, name []byte) {
	switch {
	case kind == 'S' && len(name) == 0:
		t.unnamed = nil
	case kind == 'S':
		if old := t.named[string(name)]; old != nil {
			t.namedBytes -= len(name) + len(old.text)
		}
		delete(t.named, string(name))
	case kind == 'P' && len(name) == 0:
		t.unnamedPortal = portalRec{}
	case kind == 'P':
		delete(t.portals, string(name))
	}
}
