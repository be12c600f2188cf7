package postgres

import (
	"bytes"
	"encoding/binary"
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
// The cache is used only where the bytes of a text mean what they meant
// when it was prepared: client_encoding UTF8, and no change since of a
// setting the target reports (TimeZone, DateStyle, …: a ParameterStatus),
// nor a statement that may change how the target analyzes others (SET,
// RESET, DISCARD ALL, set_config, CREATE, ALTER, DROP:
// Verdict.ChangesAnalysis) at its Parse or its Execute, nor, after one,
// a ReadyForQuery before the transaction ends (a ROLLBACK undoes a SET);
// each starts a new generation (session.cacheGen), and an entry of an
// older one is prepared afresh and the old statement closed. It is not used
// in a failed transaction, nor while a Sync or Query is unanswered (the
// transaction may just have failed): there the target fails the Parse
// itself, which the cache's empty Parse would move to the Bind. A
// statement the checker cannot see into (DO, CALL, a user's function:
// Verdict.Opaque) could replace a cached statement on the target, so it
// turns the session's cache off.
//
// What differs is what any prepared statement differs in: after five
// runs PostgreSQL may use a generic plan for it (plan_cache_mode); after
// another session changes a table the statement uses, its first run
// fails (0A000 "cached plan must not change result type" after ADD
// COLUMN under SELECT *; 42703 at the Bind, not the Parse, after DROP
// COLUMN), and the gateway drops the entry so that the next Parse
// prepares it afresh. A DEALLOCATE ALL run with the extended protocol
// between a Parse of the unnamed statement and its Bind drops the
// cached statement too, and the Bind fails with 26000. So does a Bind or
// Describe pipelined into a later step than a Parse the target skipped
// (an error before it in its step) that the cache sent under a new name:
// PostgreSQL would use the unnamed statement it kept; no other text runs.
// Statements the cache gives up are closed with the Parse that replaces
// them, or, if the target skipped that Close, with the next Parse the
// cache prepares (session.unclosed), as are those of a DEALLOCATE ALL
// that may not have run. Only single
// SELECT, INSERT, UPDATE, DELETE and MERGE statements are cached
// (Verdict.Cacheable): nothing else is planned. Upstream.StatementCache
// sets the size, and 0 turns the cache off; a full cache gives up its
// oldest statement (closed on the target) for a new text.

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
	// gen is the session's cacheGen when the entry was made (client
	// side): after a change of settings it is prepared afresh. revoked is
	// set (client side) when an opaque statement may have replaced it.
	gen     uint64
	revoked bool
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
	// order holds the entries' keys, oldest first, for eviction; a key
	// dropped since may still be in it.
	order []string
}

func newStmtCache(max int) *stmtCache {
	if max <= 0 {
		return nil
	}
	return &stmtCache{max: max}
}

// lookup returns the entry for key (a Parse's text and parameter types) if
// the target holds it as prepared under settings generation gen, and
// otherwise a new pending entry to prepare it under (miss), with the names
// of statements the target may still hold that the caller must close:
// old, the entry this one replaces, and evicted, the oldest one, which a
// full cache gives up for this one. It returns nil when the Parse should
// go to the target as it is: the entry for key is still pending, or every
// entry of a full cache is.
func (c *stmtCache) lookup(key []byte, gen uint64) (e *cachedStmt, miss bool, old, evicted string) {
	if e = c.entries[string(key)]; e != nil {
		state := e.state.Load()
		switch {
		case state == cachePending:
			return nil, false, "", ""
		case state == cacheReady && !e.stale.Load() && e.gen == gen:
			return e, false, "", ""
		case state == cacheReady:
			old = e.name
		}
		delete(c.entries, string(key))
	}
	if len(key) > maxCachedText {
		return nil, false, old, ""
	}
	if len(c.entries) >= c.max {
		var ok bool
		if evicted, ok = c.evict(); !ok {
			return nil, false, old, ""
		}
	}
	if c.entries == nil {
		c.entries = make(map[string]*cachedStmt)
	}
	c.next++
	e = &cachedStmt{name: cachePrefix + strconv.FormatUint(c.next, 10), gen: gen}
	c.entries[string(key)] = e
	if len(c.order) > 2*c.max+16 {
		c.compact()
	}
	c.order = append(c.order, string(key))
	return e, true, old, evicted
}

// compact drops from order the keys of entries dropped since, and a key's
// later copies.
func (c *stmtCache) compact() {
	seen := make(map[string]bool, len(c.entries))
	keep := c.order[:0]
	for _, key := range c.order {
		if c.entries[key] != nil && !seen[key] {
			seen[key] = true
			keep = append(keep, key)
		}
	}
	clear(c.order[len(keep):])
	c.order = keep
}

// evict drops the oldest entry whose Parse the target answered, and
// returns its name if the target holds it (to be closed); false when
// every entry is pending. The unnamed statement's record may still name
// the entry: a Parse is replacing that record as this runs.
func (c *stmtCache) evict() (name string, ok bool) {
	for range len(c.order) {
		key := c.order[0]
		c.order = c.order[1:]
		e := c.entries[key]
		if e == nil {
			continue // dropped since
		}
		switch e.state.Load() {
		case cachePending:
			c.order = append(c.order, key)
			continue
		case cacheReady:
			name = e.name
		}
		delete(c.entries, key)
		return name, true
	}
	return "", false
}

// clear forgets every entry: a DEALLOCATE ALL or DISCARD ALL drops them on
// the target. It returns the names of those the target may still hold:
// the statement that drops them is only on its way, and may never run (a
// Parse of it not executed, a Query the target ignores after an error).
func (c *stmtCache) clear() (names []string) {
	for _, e := range c.entries {
		if e.state.Load() != cacheFailed {
			names = append(names, e.name)
		}
	}
	clear(c.entries)
	c.order = c.order[:0]
	return names
}

// revoke marks every entry as one an opaque statement may have replaced
// on the target: a Bind of one is refused (errRevokedCache).
func (c *stmtCache) revoke() {
	for _, e := range c.entries {
		e.revoked = true
	}
	c.clear()
}

// errRevokedCache refuses a Bind of the unnamed statement that the cache
// prepared before an opaque statement ran: that statement could have
// replaced the cache's on the target, and the target's unnamed statement
// holds nothing to run instead.
var errRevokedCache = &refusedSessionError{msg: "Bind of the unnamed statement after a statement the gateway cannot inspect (DO, CALL or a user's function) ran: that statement may have replaced the one the gateway prepared for it, so the session is closed; Parse the unnamed statement again before binding it"}

// reservedName reports whether a client's statement name is one the cache
// may use.
func reservedName(name []byte) bool { return bytes.HasPrefix(name, []byte(cachePrefix)) }

// errReservedName refuses a client's statement name that starts with
// cachePrefix.
var errReservedName = &refusedSessionError{code: codeFeatureNotSupported,
	msg: "prepared statement names starting with \"" + cachePrefix + "\" are reserved for the gateway's statement cache; choose another name"}

// rewritesTo returns the cached statement that a Bind or Describe of the
// statement info, in pipeline step seg, should name instead, or nil.
// After a simple Query the target dropped the unnamed statement if it ran
// the Query, but not if it ignored it (after an error, up to the Sync):
// a Bind in the Query's own step goes out as it is (if the target ignored
// the Query, it ignores the Bind too); one in a later step names the
// cached statement, which holds the recorded text, until the target
// answered the Query (stmtInfo.dropped).
func (info *stmtInfo) rewritesTo(seg uint64) *cachedStmt {
	if info == nil || info.cached == nil || info.cached.revoked || info.dropped.Load() || info.queried && info.querySeg == seg || info.cached.state.Load() == cacheFailed {
		return nil
	}
	return info.cached
}

// maxCloses bounds the Closes of cache statements sent before one Parse
// (entry.closeMore).
const maxCloses = 32

// maxUnclosed bounds the names session.unclosed keeps; past it the
// target may keep statements the session no longer closes, until it ends.
const maxUnclosed = 1024

// keepUnclosed adds names to the statements the next Parse the cache
// prepares closes (session.unclosed). Either side calls it.
func (s *session) keepUnclosed(names []string) {
	s.unclosedMu.Lock()
	s.unclosed = append(s.unclosed, names[:min(len(names), maxUnclosed-len(s.unclosed))]...)
	s.unclosedMu.Unlock()
}

// appendNamedParse encodes the Parse msg (of the unnamed statement) under
// name.
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

// appendRenamedBindHead encodes the start of a Bind, of length size, of
// the unnamed statement to portal, as a Bind of the statement name: its
// header, portal and name. The rest of the Bind follows as it is, from
// the unnamed statement name's NUL on.
func appendRenamedBindHead(dst []byte, size int, portal []byte, name string) []byte {
	dst = append(dst, 'B')
	dst = binary.BigEndian.AppendUint32(dst, uint32(size-1+len(name)))
	dst = append(dst, portal...)
	dst = append(dst, 0)
	return append(dst, name...)
}

// appendDescribeStmt encodes a Describe of the prepared statement name.
func appendDescribeStmt(dst []byte, name string) []byte {
	dst, start := beginMsg(dst, 'D')
	dst = append(dst, 'S')
	dst = append(dst, name...)
	dst = append(dst, 0)
	return finishMsg(dst, start)
}

// tellCache tells the statement cache about an allowed statement the
// session forwards (at its Query or Parse, and at its Execute): one that
// is opaque turns the cache off, one that drops every prepared statement
// empties it, and one that may change how the target analyzes statements
// starts a new generation.
func (s *session) tellCache(v *Verdict) {
	if s.cache == nil {
		return
	}
	switch {
	case v.Opaque:
		s.cache.revoke()
		s.cache = nil
		// The unnamed statement may name an entry that the map no longer
		// holds (a DEALLOCATE ALL cleared it): the opaque statement may
		// have prepared its freed name.
		if u := s.stmts.unnamed; u != nil && u.cached != nil {
			u.cached.revoked = true
		}
		return
	case v.DropsPrepared:
		if names := s.cache.clear(); len(names) > 0 {
			// Closed with the next Parse the cache prepares (a Close
			// of a statement the target no longer holds is answered
			// all the same).
			s.keepUnclosed(names)
		}
	}
	if v.ChangesAnalysis {
		s.cacheGen.Add(1)
		s.analysisChanged.Store(true)
	}
}

// cacheFor returns the session's statement cache if a Parse of name with
// verdict v may use it: an allowed Parse of the unnamed statement, of a
// text PostgreSQL plans, outside a failed transaction (where the target
// refuses the Parse itself, and the cache's empty Parse would move that
// error to the Bind).
func (s *session) cacheFor(name []byte, v Verdict) *stmtCache {
	if s.cache == nil || len(name) != 0 || !v.Allow || !v.Cacheable {
		return nil
	}
	// The status is current only when no Sync, Query or FunctionCall is
	// unanswered: one in flight may fail the transaction.
	if s.queue.ends.Load() != 0 || s.txStatus.Load() == 'E' {
		return nil
	}
	// The key is the text's bytes, which the target reads in the
	// client_encoding: keep to UTF8, where the bytes are the text.
	if s.clientEnc.Load() != nil {
		return nil
	}
	return s.cache
}

// parseCached sends the allowed Parse msg of the unnamed statement, whose
// record is info and queue entry e, through the cache c (see stmtCache).
func (s *session) parseCached(c *stmtCache, msg []byte, info *stmtInfo, e entry) error {
	ce, miss, old, evicted := c.lookup(msg[6:], s.cacheGen.Load()) // after the empty name's NUL: text and types
	switch {
	case ce == nil:
		if old != "" {
			// Dropped, not replaced: close it with the Parse.
			e.closeFirst, e.closes = true, []string{old}
			s.scratch = appendCloseStmt(s.scratch[:0], []byte(old))
			s.queue.push(e)
			if err := s.fe.write(s.scratch); err != nil {
				return err
			}
			return s.fe.write(msg)
		}
		s.queue.push(e)
		return s.fe.write(msg)
	case miss:
		// Close the target's unnamed statement, so that it holds
		// nothing the gateway did not record, and the statements the
		// cache gives up, and prepare the text under the entry's name.
		e.closeFirst, e.cached = true, ce
		s.scratch = appendCloseStmt(s.scratch[:0], nil)
		for _, name := range [...]string{old, evicted} {
			if name != "" {
				e.closes = append(e.closes, name)
			}
		}
		// And those whose Close the target skipped before.
		s.unclosedMu.Lock()
		n := min(len(s.unclosed), maxCloses-len(e.closes))
		e.closes = append(e.closes, s.unclosed[:n]...)
		s.unclosed = append(s.unclosed[:0], s.unclosed[n:]...)
		s.unclosedMu.Unlock()
		for _, name := range e.closes {
			e.closeMore++
			s.scratch = appendCloseStmt(s.scratch, []byte(name))
		}
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
	if u := s.stmts.unnamed; msg[5] == 'S' && u != nil && u.cached != nil && u.cached.revoked {
		return errRevokedCache
	}
	if c := s.stmts.unnamed.rewritesTo(s.segs); c != nil && msg[5] == 'S' {
		s.queue.push(entry{kind: entryDescribe, cached: c})
		s.scratch = appendDescribeStmt(s.scratch[:0], c.name)
		return s.fe.write(s.scratch)
	}
	s.queue.push(entry{kind: entryDescribe})
	return s.fe.write(msg)
}
