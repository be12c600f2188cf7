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
}

// stmtTable tracks the client's prepared statements and portals so that an
// Execute can be attributed to its statement text and a Bind of a refused
// statement can be rewritten. The unnamed statement and portal, used for
// every one-shot query, live in fields so the hot path needs no map.
type stmtTable struct {
	unnamed       *stmtInfo
	named         map[string]*stmtInfo
	unnamedPortal *stmtInfo
	portals       map[string]*stmtInfo
	// namedBytes is the names and text held for named statements, bounded by
	// maxNamedBytes so one session cannot grow the gateway without limit.
	namedBytes int
}

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

// portal returns the statement bound to portal name, or nil.
func (t *stmtTable) portal(name []byte) *stmtInfo {
	if len(name) == 0 {
		return t.unnamedPortal
	}
	return t.portals[string(name)]
}

// bind records a Bind of stmt to portal.
func (t *stmtTable) bind(portal []byte, info *stmtInfo) {
	if len(portal) == 0 {
		t.unnamedPortal = info
		return
	}
	if t.portals == nil {
		t.portals = make(map[string]*stmtInfo)
	}
	t.portals[string(portal)] = info
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
		t.unnamedPortal = nil
	case kind == 'P':
		delete(t.portals, string(name))
	}
}
