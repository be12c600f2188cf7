package postgres

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/gatectl/gatectl/pkg/pgenc"
)

// handleTargetMessage processes one target message of type typ with body
// length n. Only CommandComplete, ErrorResponse, ReadyForQuery and the
// completion messages are looked at, and DataRows counted (session.dataRows);
// everything is forwarded as bytes except the answers to what the gateway
// injected: the ParseComplete and BindComplete of a refusal it put in
// place of a refused Parse, and the CloseComplete of a Close it sent
// before a Parse.
func (s *session) handleTargetMessage(typ byte, n int) error {
	if typ == 'D' {
		// The most common message: counted, and forwarded as it is.
		s.dataRows++
		return s.be.forward(n)
	}
	switch typ {
	case 'C':
		return s.onCommandComplete(n)
	case 'E':
		return s.onErrorResponse(n)
	case 'Z':
		s.dataRows = 0
		var status byte
		if msg, err := s.be.peekWhole(n); err == nil && len(msg) > 5 {
			status = msg[5]
		}
		s.onReadyForQuery(status)
	case 'S':
		if err := s.onParameterStatus(n); err != nil {
			return err
		}
	case '2':
		if s.onBindComplete() {
			return s.be.skip(n)
		}
	case '1':
		if s.onParseComplete() {
			return s.be.skip(n)
		}
	case '3':
		if s.onCloseComplete() {
			return s.be.skip(n)
		}
	case 'G':
		// CopyInResponse: the target ignores Syncs until the copy ends.
		if h := s.queue.head(); h != nil && h.kind == entryExecute {
			h.copyIn = true
		}
	case 'T', 'n':
		// RowDescription or NoData ends a Describe's answer; a simple
		// Query's RowDescription finds its own entry at the head.
		s.popHead(entryDescribe)
	case 'I', 's':
		// EmptyQueryResponse and PortalSuspended end an Execute. A
		// suspended one returned its rows without a command tag.
		if h := s.queue.head(); h != nil && h.kind == entryExecute {
			h.executed = true
			h.rows += s.dataRows
			s.finish(h)
			s.queue.pop()
		}
		s.dataRows = 0
	}
	return s.be.forward(n)
}

// unsafeSettingError ends a session whose target reported a parameter
// value under which the classifier would misread statements.
type unsafeSettingError struct{ msg string }

func (e *unsafeSettingError) Error() string { return e.msg }

// onParameterStatus watches the target's reports of parameter changes
// (after a SET, or a function that changes a setting): fail closed when one
// would make the target read statements differently from the classifier.
func (s *session) onParameterStatus(n int) error {
	msg, err := s.be.peekWhole(n)
	if err != nil || msg == nil {
		return err
	}
	name, rest, ok := cutBytes(msg[5:])
	if !ok {
		return nil
	}
	value, _, _ := cutBytes(rest)
	if why := unsafeParam(string(name), string(value)); why != "" {
		return &unsafeSettingError{msg: why + "; the session is closed"}
	}
	// A setting the target reports (TimeZone, DateStyle, IntervalStyle,
	// …) may change how it analyzes a statement: the statement cache
	// prepares its texts afresh.
	s.cacheGen.Add(1)
	if strings.EqualFold(string(name), "client_encoding") {
		// Stored before the client sees the report, so every statement
		// the client sends knowing of the change is read in the new
		// encoding. One already pipelined behind the SET is read in the
		// old one: its tokens are the same in both (every byte of a
		// multibyte character is >= 0x80 in the encodings that pass
		// unsafeParam), only its non-ASCII characters may read wrong.
		s.clientEnc.Store(pgenc.ConverterFor(string(value)))
	}
	return nil
}

// onBindComplete reports whether the BindComplete answers a Bind the gateway
// injected (and must not reach the client).
func (s *session) onBindComplete() bool {
	h := s.queue.head()
	switch {
	case h == nil:
		return false
	case h.kind == entryBind:
		s.queue.pop()
		return false
	case h.kind == entryRefusedParse && !h.bindSeen:
		h.bindSeen = true
		return true
	}
	return false
}

// onParseComplete reports whether the ParseComplete answers the Parse of a
// refusal that the gateway put in place of a refused Parse: PostgreSQL
// answers a Parse that fails with an ErrorResponse instead of
// ParseComplete, and so does the gateway (the injected Execute's error).
func (s *session) onParseComplete() bool {
	h := s.queue.head()
	switch {
	case h == nil:
		return false
	case h.kind == entryParse:
		if h.cached != nil {
			h.cached.state.Store(cacheReady)
		}
		s.queue.pop()
		return false
	case h.kind == entryRefusedParse && !h.parseSeen:
		h.parseSeen = true
		return true
	}
	return false
}

// onCloseComplete reports whether the CloseComplete answers a Close that
// the gateway sent before a Parse (and must not reach the client).
func (s *session) onCloseComplete() bool {
	h := s.queue.head()
	switch {
	case h == nil:
		return false
	case h.kind == entryClose:
		s.queue.pop()
		return false
	case h.closeMore > 0 && h.kind == entryParse:
		h.closeMore--
		return true
	case h.closeFirst && (h.kind == entryParse || h.kind == entryRefusedParse):
		h.closeFirst = false
		return true
	}
	return false
}

func (s *session) onCommandComplete(n int) error {
	msg, err := s.be.peekWhole(n)
	if err != nil || msg == nil {
		if err != nil {
			return err
		}
		return s.be.forward(n)
	}
	if h := s.queue.head(); h != nil {
		tag := msg[5:]
		if i := bytes.IndexByte(tag, 0); i >= 0 {
			tag = tag[:i]
		}
		word, rows, counted := splitCommandTag(tag)
		if !counted {
			// A tag without a row count (SHOW, EXPLAIN, CALL): the
			// statement's rows are the DataRows it returned.
			rows = s.dataRows
		}
		switch h.kind {
		case entryQuery, entryFunctionCall:
			h.addTag(word, rows)
		case entryExecute:
			h.addTag(word, rows)
			s.finish(h)
			s.popAnswered(h)
		}
	}
	s.dataRows = 0
	return s.be.write(msg)
}

func (s *session) onErrorResponse(n int) error {
	msg, err := s.be.peekWhole(n)
	if err != nil {
		return err
	}
	code := "unknown"
	if msg != nil {
		var fatal bool
		code, fatal = errorFields(msg[5:])
		s.targetFatal = s.targetFatal || fatal
	}
	// Whether the failed request is one the gateway refused, before
	// failPipeline pops it.
	refusal, unnamedGone := false, false
	if h := s.queue.head(); h != nil {
		unnamedGone = (h.kind == entryBind || h.kind == entryDescribe) && h.cached != nil && h.cached.state.Load() == cacheFailed &&
			code == codeUndefinedPstatement && msg != nil
		switch h.kind {
		case entryQuery, entryFunctionCall, entryRefusedParse, entryExecute:
			refusal = !h.verdict.Allow && code == codeInsufficientPriv
		}
		if h.kind == entryQuery || h.kind == entryExecute {
			h.rows += s.dataRows // sent before the error
		}
		switch h.kind {
		case entryQuery, entryFunctionCall:
			if h.errCode == "" {
				h.errCode = code
			}
		default:
			s.failPipeline(h, code)
		}
	}
	s.dataRows = 0
	if msg == nil {
		return s.be.forward(n)
	}
	if refusal {
		// The gateway's own refusal, raised by the target from a DO
		// block: its CONTEXT (W) and source location (F, L, R) would name
		// PL/pgSQL, not the policy.
		msg = withoutFields(msg, "WFLR")
	}
	if unnamedGone {
		// A Bind or Describe the statement cache rewrote, of a name
		// whose Parse failed or was skipped: PostgreSQL would say the
		// unnamed statement is gone (or, after a skipped Parse, use the
		// one it kept: see stmtCache).
		msg = withField(withoutFields(msg, "M"), 'M', "unnamed prepared statement does not exist")
	}
	return s.be.write(msg)
}

// withField returns the ErrorResponse msg with a field of type typ and
// value v added at its end (a new slice).
func withField(msg []byte, typ byte, v string) []byte {
	out := append(make([]byte, 0, len(msg)+len(v)+2), msg[:len(msg)-1]...) // without the terminating NUL
	out = append(out, typ)
	out = append(out, v...)
	out = append(out, 0, 0)
	binary.BigEndian.PutUint32(out[1:5], uint32(len(out)-1))
	return out
}

// withoutFields returns the ErrorResponse msg without its fields of the
// types in types (a new slice), or msg if it has none.
func withoutFields(msg []byte, types string) []byte {
	out := append(make([]byte, 0, len(msg)), msg[:5]...)
	cut := false
	for body := msg[5:]; len(body) > 1 && body[0] != 0; {
		end := bytes.IndexByte(body[1:], 0)
		if end < 0 {
			break
		}
		if field := body[:end+2]; strings.IndexByte(types, field[0]) >= 0 {
			cut = true
		} else {
			out = append(out, field...)
		}
		body = body[end+2:]
	}
	if !cut {
		return msg
	}
	out = append(out, 0)
	binary.BigEndian.PutUint32(out[1:5], uint32(len(out)-1))
	return out
}

// failPipeline reports the extended-protocol request h, which the target
// answered with an error, and those after it that the target then skips,
// up to the next Sync. The error is h's own when h is an Execute or a
// refused Parse. A failed Bind's error is the statement's that the Execute
// of its portal would have run (planning raises errors such as 1/0 of
// constants at Bind), unless the portal is bound again first. A failed
// Parse, Describe or Close gives no statement its error.
func (s *session) failPipeline(h *entry, code string) {
	if !h.kind.extended() {
		return
	}
	switch h.kind {
	case entryExecute:
		h.errCode, h.executed = code, true
	case entryRefusedParse:
		h.errCode = code
	case entryParse:
		if h.cached != nil {
			h.cached.state.Store(cacheFailed)
		}
	case entryDescribe:
		if h.cached != nil && cachedStale(code) {
			h.cached.stale.Store(true) // as for a Bind, below
		}
	case entryBind:
		if h.cached != nil && cachedStale(code) {
			// "cached plan must not change result type": a table the
			// cached statement returns rows of changed; or the statement
			// is gone (an opaque statement, such as a function, ran
			// DEALLOCATE). The next Parse of the text prepares it afresh.
			h.cached.stale.Store(true)
		}
		s.bindErr = &bindError{portal: h.portal, code: code}
		// A failed Bind of a named portal leaves the portal of that name
		// as it was. One of the unnamed portal may have dropped the one
		// before it or not, depending on how far the target got.
		s.bindFailed(h, h.portal == "")
	}
	// A Parse failed when its own answer is the error: an allowed one, or
	// a refused one whose Parse of the refusal never completed. The target
	// keeps a named statement from before; it drops the unnamed one before
	// it parses, so a Bind of that finds none.
	if h.name != "" && (h.kind == entryParse || h.kind == entryRefusedParse && !h.parseSeen) {
		s.revert(h)
	}
	s.discarding = true
	s.skipSeg.Store(h.seg + 1)
	s.skipping.Store(true)
	if be := s.bindErr; be != nil && !s.queue.anyAfterHead(func(e *entry) bool { return e.kind == entryExecute && e.portal == be.portal }) {
		// No Execute of the failed portal is queued: the first one the
		// client side forwards as skipped takes the Bind's error.
		s.skipBindErr.Store(be)
	}
	s.finish(h)
	s.popAnswered(h)
	s.skipDiscarded()
}

// cachedStale reports whether an error of a Bind or Describe of a
// cached statement means the next Parse of its text must prepare it
// afresh: its plan can no longer return the same row type (0A000), it is
// gone (26000), or its text no longer analyzes (class 42: a table or
// column dropped), which PostgreSQL would report at the Parse.
func cachedStale(code string) bool {
	return code == codeFeatureNotSupported || code == codeUndefinedPstatement || strings.HasPrefix(code, "42")
}

// bindError is a failed Bind's error, waiting for its portal's Execute.
type bindError struct{ portal, code string }

// skipDiscarded reports the requests queued up to the next Sync as not
// executed: the target discards them after an error. It runs again at the
// ReadyForQuery that ends discarding, for requests the client sent after
// the error.
func (s *session) skipDiscarded() {
	for h := s.queue.head(); h != nil && h.kind != entrySync; h = s.queue.head() {
		if be := s.bindErr; be != nil && h.portal == be.portal {
			switch h.kind {
			case entryExecute:
				h.errCode, s.bindErr = be.code, nil
			case entryBind:
				s.bindErr = nil // bound again: the Executes after it are not the failed Bind's
				s.skipBindErr.CompareAndSwap(be, nil)
			}
		}
		if h.kind == entryParse || h.kind == entryRefusedParse || h.kind == entryClose {
			s.revert(h) // the target never saw this Parse or Close
		}
		if h.kind == entryParse && h.cached != nil {
			h.cached.state.Store(cacheFailed)
		}
		if h.kind == entryParse && len(h.closes) > 0 {
			// The target skipped the Closes of the statements the
			// cache gave up, too: it still holds them.
			s.keepUnclosed(h.closes)
		}
		if h.kind == entryBind {
			s.bindFailed(h, false) // nor this Bind
		}
		h.executed = false
		s.finish(h)
		s.queue.pop()
	}
}

// revert has the client goroutine put back the statement that the Parse h
// replaced, or the statement or portal that the Close h removed, in the
// gateway's record, if there was one (see applyReverts).
func (s *session) revert(h *entry) {
	if h.stmt == nil && h.prev == nil {
		return // nothing was recorded or removed
	}
	s.revertMu.Lock()
	r := stmtRevert{name: h.name, failed: h.stmt, prev: h.prev, portal: h.closesPortal, prevPortal: h.prevPortal}
	if r.name == "" && !r.portal {
		// The unnamed statement is not put back: the gateway forgets it,
		// and a Bind of it before another Parse is refused (fail closed).
		r.prev = nil
	}
	s.reverts = append(s.reverts, r)
	s.hasReverts.Store(true)
	s.revertMu.Unlock()
}

// popAnswered pops h, the head, which the target has answered. After an
// Execute that started COPY FROM STDIN it also drops the Syncs that the
// client sent right after the Execute: the target was in copy-in mode and
// ignored them, so no ReadyForQuery will answer them.
func (s *session) popAnswered(h *entry) {
	copyIn := h.copyIn
	s.queue.pop()
	if !copyIn {
		return
	}
	for h := s.queue.head(); h != nil && h.kind == entrySync && h.copyMaybe; h = s.queue.head() {
		s.queue.pop()
	}
}

// popHead pops the head entry if it is of kind k.
func (s *session) popHead(k entryKind) {
	if h := s.queue.head(); h != nil && h.kind == k {
		s.queue.pop()
	}
}

// onReadyForQuery ends everything up to the Sync, Query or FunctionCall
// that the target just finished.
func (s *session) onReadyForQuery(status byte) {
	s.txStatus.Store(uint32(status))
	if s.analysisChanged.Load() {
		s.cacheGen.Add(1)
		if status == 'I' {
			s.analysisChanged.Store(false)
		}
	}
	if s.discarding {
		// This answers the Sync that ends discarding: what the client sent
		// after the error and before it was skipped too.
		s.skipDiscarded()
		s.discarding, s.bindErr = false, nil
		s.skipping.Store(false)
		s.skipBindErr.Store(nil)
		if h := s.queue.head(); h != nil && h.kind == entrySync {
			s.endedTransaction(h, status)
			s.queue.pop()
		}
		return
	}
	for h := s.queue.head(); h != nil; h = s.queue.head() {
		k := h.kind
		if k == entryQuery || k == entryFunctionCall {
			h.executed = true
		}
		if h.drops != nil {
			h.drops.dropped.Store(true) // the Query ran: the target dropped its unnamed statement
		}
		s.finish(h)
		if k == entrySync || k == entryQuery {
			s.endedTransaction(h, status)
		}
		s.queue.pop()
		if k == entrySync || k == entryQuery || k == entryFunctionCall {
			return
		}
	}
}

// endedTransaction tells the client side, when the target reports no open
// transaction ('I') in answer to the Sync or Query h, that the portals
// bound before h are gone.
func (s *session) endedTransaction(h *entry, status byte) {
	if status == 'I' && h.at > 0 {
		s.portalsDead.Store(h.at)
		// The portals are gone, and so is any Execute of them.
		s.failedBinds, s.failedBindsLost = nil, false
	}
}

// maxFailedBinds bounds the failed Binds a session keeps for one
// transaction; past it, the audit of an Execute after a failed Bind says
// the gateway cannot tell which statement ran. A variable so that a test
// can reach it without 65,536 Binds.
var maxFailedBinds = maxPortals

// bindFailed notes that the Bind h did not take effect on the target:
// its portal holds what it held before (h.prevPortal), or, with unknown,
// something the gateway cannot tell.
func (s *session) bindFailed(h *entry, unknown bool) {
	if len(s.failedBinds) >= maxFailedBinds {
		s.failedBindsLost = true
		return
	}
	if s.failedBinds == nil {
		s.failedBinds = make(map[uint64]portalRec)
	}
	prev := h.prevPortal
	if unknown {
		prev = portalRec{}
	}
	s.failedBinds[h.at] = prev
}

// boundStatement returns the text and verdict of the statement that the
// executed Execute e ran. The client side took them from the last Bind of
// e's portal; when the target refused or skipped that Bind, and a
// rollback to a savepoint then let the Execute run, it ran the portal from
// before the Bind, and the audit must name that one, or say that the
// gateway cannot tell which: the Bind's portal was unnamed, or the session
// lost track.
func (s *session) boundStatement(e *entry) (string, Verdict) {
	text, verdict, at := e.text, e.verdict, e.bindAt
	// Each step goes back to an earlier Bind, so this ends.
	for {
		prev, failed := s.failedBinds[at]
		if !failed && !s.failedBindsLost {
			return text, verdict
		}
		if !failed || prev.info == nil {
			// It ran a statement allowed when its portal was bound.
			return fmt.Sprintf("-- Execute of portal %q, whose last Bind did not take effect: the gateway cannot tell which earlier Bind of it ran", e.portal),
				Verdict{Allow: true}
		}
		text, verdict, at = prev.info.text, prev.info.verdict, prev.at
	}
}

// finish reports a statement entry to the observer.
func (s *session) finish(e *entry) {
	var kind StatementKind
	switch e.kind {
	case entryQuery:
		kind = KindQuery
	case entryExecute:
		if !e.executed && !e.verdict.Allow {
			// The target skipped an Execute of a statement the policy
			// refused: the statement's one deny event is its refused
			// Parse, and this Execute ran nothing and raised no refusal
			// of its own. (An Execute of it that the target runs, in a
			// later pipeline step, raises the refusal again and is
			// audited.) The same goes for a statement whose Parse the
			// target skipped or failed (skippedBind): nothing ran, and
			// the policy refused nothing more.
			return
		}
		kind = KindExecute
	case entryFunctionCall:
		kind = KindFunctionCall
	case entryRefusedParse:
		kind = KindParse
	default:
		return
	}
	text, verdict := e.text, e.verdict
	if e.kind == entryExecute && e.bindAt != 0 && e.executed && (s.failedBinds != nil || s.failedBindsLost) {
		text, verdict = s.boundStatement(e)
	}
	s.report(StatementEvent{
		Kind:        kind,
		Text:        text,
		Allowed:     verdict.Allow,
		Verdict:     verdict,
		CommandTag:  e.tag,
		Rows:        e.rows,
		ErrorCode:   e.errCode,
		Executed:    e.executed,
		Interrupted: e.interrupted,
		Start:       e.start,
		Duration:    time.Since(e.start),
	})
}

// report counts a statement event and hands it to the observer. Both
// relay sides report, so the counts are atomic.
func (s *session) report(e StatementEvent) {
	s.statements.Add(1)
	if !e.Allowed {
		s.refused.Add(1)
	}
	if s.plan.Observer != nil {
		e.SessionID = s.plan.ID
		s.plan.Observer.Statement(e)
	}
}

// addTag adds a command tag word and its row count to the entry.
func (e *entry) addTag(word string, rows int64) {
	e.executed = true
	e.rows += rows
	if e.tag == "" {
		e.tag = word
	} else {
		e.tag += ";" + word
	}
}

// splitCommandTag splits a CommandComplete tag ("INSERT 0 5", "SELECT 3",
// "CREATE TABLE") into its command and row count; counted is false for a
// tag without a count. PostgreSQL counts rows in the tags of SELECT
// (also CREATE TABLE AS and SELECT INTO), INSERT, UPDATE, DELETE, MERGE,
// COPY, FETCH and MOVE (the rows moved over, which it does not send);
// every other tag has none, such as SHOW, EXPLAIN and CALL, which return
// rows. Common commands return constant strings, so the steady state
// allocates nothing.
func splitCommandTag(tag []byte) (word string, rows int64, counted bool) {
	w := tag
	if i := bytes.LastIndexByte(tag, ' '); i >= 0 {
		if n, ok := parseDigits(tag[i+1:]); ok {
			rows, counted = n, true
			w = tag[:i]
			if j := bytes.IndexByte(w, ' '); j >= 0 && string(w[:j]) == "INSERT" {
				w = w[:j]
			}
		}
	}
	switch string(w) {
	case "SELECT":
		word = "SELECT"
	case "INSERT":
		word = "INSERT"
	case "UPDATE":
		word = "UPDATE"
	case "DELETE":
		word = "DELETE"
	case "MERGE":
		word = "MERGE"
	case "COPY":
		word = "COPY"
	case "FETCH":
		word = "FETCH"
	case "MOVE":
		word = "MOVE"
	case "SHOW":
		word = "SHOW"
	case "EXPLAIN":
		word = "EXPLAIN"
	case "BEGIN":
		word = "BEGIN"
	case "COMMIT":
		word = "COMMIT"
	case "ROLLBACK":
		word = "ROLLBACK"
	default:
		word = string(w)
	}
	return word, rows, counted
}

// parseDigits parses a non-empty run of ASCII digits.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// errorCode returns the SQLSTATE field of an ErrorResponse body.
// errorFields returns the SQLSTATE of an ErrorResponse body ("unknown"
// without one), and whether its severity ends the session (FATAL, PANIC).
func errorFields(body []byte) (code string, fatal bool) {
	code = "unknown"
	for len(body) > 0 && body[0] != 0 {
		field := body[0]
		v, rest, ok := cutBytes(body[1:])
		if !ok {
			break
		}
		switch field {
		case 'C':
			code = string(v)
		case 'V':
			fatal = string(v) == "FATAL" || string(v) == "PANIC"
		}
		body = rest
	}
	return code, fatal
}
