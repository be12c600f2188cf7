package postgres

import (
	"bytes"
	"strconv"
	"sync/atomic"
)

// The statement cache keeps the texts a session parses as its unnamed
// statement prepared on the target under names of the gateway's own, so
// that the target parses, analyzes and plans a repeated one-shot query
// once rather than at every run. Drivers send most queries with
// parameters that way (libpq's PQexecParams, lib/pq, pgbench -M
// extended): a Parse of the unnamed statement, then Bind and Execute.
//
// A Parse of the unnamed statement whose text (and parameter types) the
// cache holds goes to the target as a Parse of an empty unnamed statement,
// which the target answers with ParseComplete at almost no cost; the
// client's Binds and Describes of the unnamed statement then name the
// cached statement. A Parse the cache does not hold goes to the target
// under a new cache name, after a Close of the unnamed statement, so that
// the target's unnamed statement never holds a text other than the one
// the gateway recorded. Every message still gets the answer it would get
// without the cache, in the same order; the checks and the audit see the
// client's statements, not the rewritten ones.
//
// What differs is what any prepared statement differs in: after five
// runs PostgreSQL may use a generic plan for it (plan_cache_mode), and a
// run after another session changed a table the statement returns rows
// of (SELECT * after ADD COLUMN) fails once with 0A000 "cached plan must
// not change result type"; the gateway then drops the entry, and the next
// Parse of the text prepares it afresh. Only single SELECT, INSERT,
// UPDATE, DELETE and MERGE statements are cached (Verdict.Cacheable):
// nothing else is planned. Upstream.StatementCache sets the size, and 0
// turns the cache off.

// cachePrefix starts the names of the gateway's cached statements. Clients
// may not use names with it (reservedName): a statement of theirs under
// such a name would be run by a Bind the gateway rewrote.
const cachePrefix = "gatectl."

// maxCachedText is the longest text (with its parameter types) the cache
// keeps.
const maxCachedText = 16 << 10

// cachedStmt is one statement the gateway prepared on the target.
type cachedStmt struct {
	name string
	// state is cachePending until the target answers the Parse that
	// prepares it, then cacheReady, or cacheFailed when that Parse failed
	// or was skipped: then the name holds nothing on the target.
	state atomic.Int32
	// stale is set when a run of the statement failed because its plan
	// could no longer return the same row type: the entry is dropped at
	// the next lookup.
	stale atomic.Bool
}

const (
	cachePending int32 = iota
	cacheReady
	cacheFailed
)

// stmtCache is a session's statement cache, owned by its client side; the
// target side sets the entries' state.
type stmtCache struct {
	max     int
	next    uint64
	entries map[string]*cachedStmt
}

func newStmtCache(max int) *stmtCache {
	if max <= 0 {
		return nil
	}
	return &stmtCache{max: max}
}

// lookup returns the entry for key (a Parse's text and parameter types) if
// the target holds it, and otherwise a new pending entry to prepare it
// under (miss). It returns nil when the Parse should go to the target as it
// is: the entry for key is still pending, or the cache is full.
func (c *stmtCache) lookup(key []byte) (e *cachedStmt, miss bool) {
	if e = c.entries[string(key)]; e != nil {
		switch {
		case e.stale.Load() || e.state.Load() == cacheFailed:
			delete(c.entries, string(key))
		case e.state.Load() == cacheReady:
			return e, false
		default:
			return nil, false
		}
	}
	if len(key) > maxCachedText || len(c.entries) >= c.max {
		return nil, false
	}
	if c.entries == nil {
		c.entries = make(map[string]*cachedStmt)
	}
	c.next++
	e = &cachedStmt{name: cachePrefix + strconv.FormatUint(c.next, 10)}
	c.entries[string(key)] = e
	return e, true
}

// clear forgets every entry: a DEALLOCATE or DISCARD may drop them on the
// target. Names are never reused, so an entry that survives there is only
// unused.
func (c *stmtCache) clear() { clear(c.entries) }

// reservedName reports whether a client's statement name is one the cache
// may use.
func reservedName(name []byte) bool { return bytes.HasPrefix(name, []byte(cachePrefix)) }

// errReservedName refuses a client's statement name that starts with
// cachePrefix.
var errReservedName = &refusedSessionError{code: codeFeatureNotSupported,
	msg: "prepared statement names starting with \"" + cachePrefix + "\" are reserved for the gateway's statement cache; choose another name"}

// rewritesTo returns the cached statement that a Bind or Describe of the
// statement info should name instead, or nil.
func (info *stmtInfo) rewritesTo() *cachedStmt {
	if info == nil || info.cached == nil || info.dropped || info.cached.state.Load() == cacheFailed {
		return nil
	}
	return info.cached
}

// appendNamedParse encodes the Parse msg (of the unnamed statement) under
// the name e.
func appendNamedParse(dst, msg []byte, name string) []byte {
	dst, start := beginMsg(dst, 'P')
	dst = append(dst, name...)
	dst = append(dst, msg[5:]...) // the unnamed statement's NUL, text and types
	return finishMsg(dst, start)
}

// appendEmptyParse encodes a Parse of an empty unnamed statement.
func appendEmptyParse(dst []byte) []byte {
	dst, start := beginMsg(dst, 'P')
	dst = append(dst, 0, 0, 0, 0) // name, text, no parameter types
	return finishMsg(dst, start)
}

// appendRenamedBind encodes the Bind msg, of the unnamed statement to
// portal, with the statement name instead.
func appendRenamedBind(dst, msg, portal []byte, name string) []byte {
	dst, start := beginMsg(dst, 'B')
	dst = append(dst, portal...)
	dst = append(dst, 0)
	dst = append(dst, name...)
	dst = append(dst, msg[5+len(portal)+1:]...) // the statement name's NUL and the rest
	return finishMsg(dst, start)
}

// appendDescribeStmt encodes a Describe of the prepared statement name.
func appendDescribeStmt(dst []byte, name string) []byte {
	dst, start := beginMsg(dst, 'D')
	dst = append(dst, 'S')
	dst = append(dst, name...)
	dst = append(dst, 0)
	return finishMsg(dst, start)
}

// cacheFor returns the session's statement cache if a Parse of name with
// verdict v may use it: an allowed Parse of the unnamed statement, of a
// text PostgreSQL plans, outside a failed transaction (where the target
// refuses the Parse itself, and the cache's empty Parse would move that
// error to the Bind).
func (s *session) cacheFor(name []byte, v Verdict) *stmtCache {
	if s.cache == nil || len(name) != 0 || !v.Allow || !v.Cacheable || s.txStatus.Load() == 'E' {
		return nil
	}
	return s.cache
}

// parseCached sends the allowed Parse msg of the unnamed statement, whose
// record is info and queue entry e, through the cache c (see stmtCache).
func (s *session) parseCached(c *stmtCache, msg []byte, info *stmtInfo, e entry) error {
	ce, miss := c.lookup(msg[6:]) // after the empty name's NUL: text and types
	switch {
	case ce == nil:
		s.queue.push(e)
		return s.fe.write(msg)
	case miss:
		// Close the target's unnamed statement, so that it holds
		// nothing the gateway did not record, and prepare the text
		// under the entry's name.
		e.closeFirst, e.cached = true, ce
		s.scratch = appendCloseStmt(s.scratch[:0], nil)
		s.scratch = appendNamedParse(s.scratch, msg, ce.name)
	default:
		s.scratch = appendEmptyParse(s.scratch[:0])
	}
	info.cached = ce
	s.queue.push(e)
	return s.fe.write(s.scratch)
}

// onDescribeUnnamed handles a Describe of body length 2: of the unnamed
// statement or portal. One of the unnamed statement describes the
// cached statement when the cache holds its text.
func (s *session) onDescribeUnnamed(n int) error {
	msg, err := s.fe.whole(n)
	if err != nil {
		return err
	}
	if c := s.stmts.unnamed.rewritesTo(); c != nil && msg[5] == 'S' {
		s.scratch = appendDescribeStmt(s.scratch[:0], c.name)
		return s.fe.write(s.scratch)
	}
	return s.fe.write(msg)
}
