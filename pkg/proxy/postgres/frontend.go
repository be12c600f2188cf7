package postgres

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// protocolError is malformed input from the client.
type protocolError struct{ msg string }

// refusedSessionError ends a session on a refusal that cannot be answered
// in the protocol's flow (a Bind whose statement is no longer allowed).
type refusedSessionError struct {
	msg  string
	code string // SQLSTATE; insufficient_privilege when empty
	// reason is the session's end reason; reasonRefused when empty.
	reason string
}

func (e *refusedSessionError) Error() string { return e.msg }

func (e *protocolError) Error() string { return e.msg }

var (
	errBadQuery        = &protocolError{"malformed Query message"}
	errBadParse        = &protocolError{"malformed Parse message"}
	errBadBind         = &protocolError{"malformed Bind message"}
	errBadExecute      = &protocolError{"malformed Execute message"}
	errBadClose        = &protocolError{"malformed Close message"}
	errBadFunctionCall = &protocolError{"malformed FunctionCall message"}
	errTerminated      = errors.New("client sent Terminate")
)

// handleClientMessage processes one client message of type typ with body
// length n: it decodes only what policy or tracking needs and forwards the
// rest as bytes. A type outside the frontend protocol ends the session
// (protocolError) and never reaches the target.
func (s *session) handleClientMessage(typ byte, n int) error {
	if s.hasReverts.Load() {
		if err := s.applyReverts(); err != nil {
			return err
		}
	}
	s.msgNo++
	s.queue.seg = s.segs
	if n := s.queue.len(); n > maxSkipped && (n > maxPending || s.skipping.Load()) {
		return &refusedSessionError{code: codeProgramLimitExceeded,
			msg: fmt.Sprintf("more than %d messages wait for the target's answers; read the answers, or send Sync after an error, before sending more", n-1)}
	}
	if typ != 'S' && typ != 'H' {
		s.copyMaybe = false
	}
	if s.copyIn {
		switch typ {
		case 'd', 'H':
		case 'S':
			if !s.copyMaybe {
				return errSyncInCopy
			}
		case 'c', 'f':
			// The copy ends, and with it an Execute's request; a simple
			// Query may start another one.
			s.copyIn = s.copyInQuery
		default:
			// The request's copies are over, or never started (the target
			// would end the session otherwise).
			s.copyIn = false
		}
	}
	if s.skipping.Load() && s.skipSeg.Load() == s.segs+1 {
		switch typ {
		case 'B', 'D', 'C':
			return s.forwardSkipped(typ, n)
		case 'E':
			s.copyMaybe = true
			return s.forwardSkipped(typ, n)
		}
	}
	switch typ {
	case 'B':
		return s.onBind(n)
	case 'E':
		s.copyMaybe = true
		return s.onExecute(n)
	case 'Q':
		return s.onQuery(n)
	case 'P':
		return s.onParse(n)
	case 'C':
		return s.onClose(n)
	case 'F':
		return s.onFunctionCall(n)
	case 'S':
		s.queue.push(entry{kind: entrySync, copyMaybe: s.copyMaybe, at: s.msgNo})
		s.segs++
		s.syncMsgNo = s.msgNo
		clear(s.skippedNow)
		s.skippedPortals = nil // a map keeps its size after deletes
		s.sweepClosing()
		return s.fe.forward(n)
	case 'D':
		// Tracked only so that an error answers the right message.
		if n == 2 && s.cache != nil {
			return s.onDescribeUnnamed(n)
		}
		s.queue.push(entry{kind: entryDescribe})
		return s.fe.forward(n)
	case 'X':
		s.terminating.Store(true)
		if err := s.fe.forward(n); err != nil {
			return err
		}
		if err := s.fe.w.Flush(); err != nil {
			return err
		}
		return errTerminated
	case 'd', 'c', 'f', 'H':
		// CopyData, CopyDone and CopyFail (which the target ignores
		// outside a copy) and Flush: nothing to check or track.
		return s.fe.forward(n)
	}
	// Fail closed: a message the gateway does not understand never reaches
	// the target, whose reading of it the gateway could not follow. What
	// came before it goes out, as for a malformed header (conduit.next);
	// the session ends anyway, so a failed write changes nothing.
	s.fe.flush()
	return &protocolError{msg: fmt.Sprintf("invalid frontend message type %q (%d): the gateway relays only the messages of the PostgreSQL protocol", typ, typ)}
}

// errSyncInCopy refuses a Sync sent during COPY FROM STDIN other than the
// one libpq sends right after the Execute. The target ignores Syncs in
// copy-in mode, but only until the copy ends, which may be before or after
// the Sync arrives (an error in the data ends it early), so the gateway
// could not tell which of the target's answers the Sync gets.
var errSyncInCopy = &protocolError{msg: "Sync during COPY FROM STDIN is not supported through the gateway: send CopyDone or CopyFail first"}

// errCheckWouldWait is returned by a handler on the event loop when the
// checker cannot decide the message's statement without waiting: the
// message is left unhandled, for the session's goroutines.
var errCheckWouldWait = errors.New("statement check would wait")

// check asks the session's checker about sql and counts the outcome. On the
// event loop it never waits: errCheckWouldWait means the caller must stop
// before changing any state.
func (s *session) check(sql string, kind StatementKind) (Verdict, error) {
	v, err := s.verdict(sql)
	if err != nil {
		return v, err
	}
	if v.EndCode != "" && !v.Allow {
		s.report(StatementEvent{Kind: kind, Text: sql, Verdict: v, Start: time.Now()})
		return v, &refusedSessionError{code: v.EndCode, msg: v.Message, reason: v.EndReason}
	}
	for _, name := range v.Prepares {
		if v.Allow && reservedName([]byte(name)) {
			return v, errReservedName
		}
	}
	if !v.Allow {
		s.log.Info("statement refused", "rule", v.Rule, "tag", v.Tag)
	}
	return v, nil
}

// verdict is the checker's verdict on sql, without waiting on the loop.
func (s *session) verdict(sql string) (Verdict, error) {
	if s.onLoop {
		// relayInLoop admits only sessions with a QuickChecker.
		if v, ok := s.plan.Checker.(QuickChecker).TryCheck(sql); ok {
			return v, nil
		}
		return Verdict{}, errCheckWouldWait
	}
	return s.plan.Checker.Check(s.ctx, sql), nil
}

func (s *session) onQuery(n int) error {
	msg, err := s.fe.whole(n)
	if err != nil {
		return err
	}
	sql, rest, ok := cutBytes(msg[5:])
	if !ok || len(rest) != 0 {
		return errBadQuery
	}
	text := s.textOf(sql)
	v, err := s.check(text, KindQuery)
	if err != nil {
		return err
	}
	if v.Allow && len(v.Fetches) > 0 {
		if why := s.fetchesBoundPortal(v.Fetches); why != "" {
			v.Allow, v.Message = false, why
		}
	}
	e := entry{kind: entryQuery, text: text, verdict: v, start: time.Now(), at: s.msgNo}
	if u := s.stmts.unnamed; u != nil && u.cached != nil {
		// The target drops its unnamed statement at a Query it runs
		// (not one it ignores after an error): a Bind of it fails there
		// from then on, and so it must with the cache. The target side
		// marks it when the Query is answered; until then a Bind still
		// names the cached statement, which holds the recorded text.
		e.drops, u.queried, u.querySeg = u, true, s.segs
	}
	s.queue.push(e)
	if v.Allow {
		s.copyIn, s.copyInQuery = v.CopyIn, v.CopyIn
		s.forgetPrepared(v, text)
		return s.fe.write(msg)
	}
	// Fail closed: the refused text never reaches the target; the target
	// raises the refusal instead so its transaction state stays the client's.
	s.scratch = appendQuery(s.scratch[:0], refusalSQL(s.refusalMessage(v.Message)))
	return s.fe.write(s.scratch)
}

func (s *session) onParse(n int) error {
	msg, err := s.fe.whole(n)
	if err != nil {
		return err
	}
	name, rest, ok := cutBytes(msg[5:])
	if !ok {
		return errBadParse
	}
	sql, rest, ok := cutBytes(rest)
	if !ok || len(rest) < 2 || len(rest) != 2+4*int(binary.BigEndian.Uint16(rest)) {
		return errBadParse
	}
	if err := s.checkName(name); err != nil {
		return err
	}
	if reservedName(name) {
		return errReservedName
	}
	// Reverts that arrived while the message did count.
	prev, prevSettled, err := s.settledStmt(name)
	if err != nil {
		return err
	}
	var text string
	if enc := s.clientEnc.Load(); enc != nil {
		text = enc.String(sql)
		if prev != nil && prev.text == text {
			text = prev.text
		}
	} else if prev != nil && prev.text == string(sql) {
		text = prev.text // the same statement again (a one-shot query repeated): share its text, copy nothing
	} else {
		text = string(sql)
	}
	v, err := s.check(text, KindParse)
	if err != nil {
		return err
	}
	// A new record each time, so that reverts can tell Parses apart. It is
	// uncertain if the name may hold another statement on the target until
	// this Parse is answered: one whose text differs, or that was allowed
	// where this one is refused (a Bind of a refusal must not run it).
	info := &stmtInfo{text: text, verdict: v, seg: s.segs,
		uncertain: prev != nil && (prev.text != text || prev.verdict.Allow && !v.Allow)}
	if m := s.closing[string(name)]; prev == nil && m != nil && !m.settled.Load() {
		info.uncertain = true // after a Close the target may still skip
	}
	if len(name) == 0 {
		// If this Parse does not take effect either, the target keeps
		// the statement the gateway forgot.
		info.uncertain = info.uncertain || prev == nil && s.unnamedLost
		s.unnamedLost = false
	}
	info.read = s.readNo()
	s.stmts.setStmt(name, info)
	if s.stmts.full() {
		return &refusedSessionError{code: codeProgramLimitExceeded,
			msg: fmt.Sprintf("the session's prepared statements hold more than %d MiB of text; close some or reconnect", maxNamedBytes>>20)}
	}
	// If this Parse does not take effect, the name holds prev (or nothing)
	// on the target.
	e := entry{kind: entryParse, settles: info, name: string(name), stmt: info, prev: prev}
	s.scratch = s.scratch[:0]
	if len(name) > 0 && prev != nil && !prev.verdict.Allow && prevSettled {
		// The client saw its refused Parse of this name fail, so to it the
		// name is free; the target holds the refusal under it (see
		// below: had the refusal's Parse failed, a revert would have put
		// back the record from before), and would refuse this Parse as a
		// duplicate. Drop that first. The target skips the Close with
		// this Parse after an error. While the refused Parse is not
		// answered yet, the name is left as it is: the target answers
		// this Parse as PostgreSQL would if the refusal's Parse failed,
		// and with 42P05 if it took effect.
		e.closeFirst = true
		s.scratch = appendCloseStmt(s.scratch, name)
	}
	if info.verdict.Allow {
		s.forgetPrepared(info.verdict, info.text)
		if c := s.cacheFor(name, info.verdict); c != nil {
			return s.parseCached(c, msg, info, e)
		}
		s.queue.push(e)
		if e.closeFirst {
			if err := s.fe.write(s.scratch); err != nil {
				return err
			}
		}
		return s.fe.write(msg)
	}
	// Fail closed: parse the refusal under the client's name instead, and run
	// it at once so the error answers this Parse. The target keeps the
	// refusal under the name, so a Bind of it raises the refusal again.
	e.kind, e.text, e.verdict, e.start = entryRefusedParse, info.text, info.verdict, time.Now()
	s.queue.push(e)
	s.scratch = appendRefusedParse(s.scratch, name, s.refusalMessage(info.verdict.Message))
	return s.fe.write(s.scratch)
}

// readBind reads the Bind of body length n, and its portal and statement
// names.
func (s *session) readBind(n int) (msg, portal, name []byte, err error) {
	if msg, err = s.fe.whole(n); err != nil {
		return nil, nil, nil, err
	}
	portal, rest, ok := cutBytes(msg[5:])
	if ok {
		name, _, ok = cutBytes(rest)
	}
	if !ok {
		return nil, nil, nil, errBadBind
	}
	if err := s.checkName(portal); err != nil {
		return nil, nil, nil, err
	}
	if err := s.checkName(name); err != nil {
		return nil, nil, nil, err
	}
	return msg, portal, name, nil
}

// readExecute reads the Execute of body length n, and the gateway's record
// of its portal.
func (s *session) readExecute(n int) (msg, portal []byte, rec portalRec, err error) {
	if msg, err = s.fe.whole(n); err != nil {
		return nil, nil, rec, err
	}
	portal, rest, ok := cutBytes(msg[5:])
	if !ok || len(rest) != 4 {
		return nil, nil, rec, errBadExecute
	}
	if err := s.checkName(portal); err != nil {
		return nil, nil, rec, err
	}
	s.sweepPortals()
	return msg, portal, s.stmts.portal(portal), nil
}

// settledStmt returns the record of statement name and whether its Parse
// is answered, taken together: the target queues a revert before it marks
// the Parse answered, so reverts applied after reading settled include
// the Parse's own.
func (s *session) settledStmt(name []byte) (info *stmtInfo, settled bool, err error) {
	for {
		info = s.stmts.stmt(name)
		settled = info != nil && info.settled.Load()
		if err := s.applyRevertsIfAny(); err != nil {
			return nil, false, err
		}
		if s.stmts.stmt(name) == info {
			return info, settled, nil
		}
	}
}

func (s *session) onBind(n int) error {
	msg, portal, name, err := s.readBind(n)
	if err != nil {
		return err
	}
	info, settled, err := s.settledStmt(name)
	if err != nil {
		return err
	}
	s.sweepPortals()
	if s.skippedNow[string(name)] {
		// A Parse of this name failed earlier in this pipeline step, so
		// the target skips everything up to the Sync, this Bind included:
		// pass it on unchanged, for the target to skip.
		prev := s.stmts.portal(portal)
		s.stmts.bind(portal, portalRec{info: skippedBind, at: s.msgNo, read: s.readNo()})
		s.queue.push(entry{kind: entryBind, portal: string(portal), at: s.msgNo, prevPortal: prev})
		return s.fe.write(msg)
	}
	if info == nil {
		// Fail closed: a statement the gateway never saw parsed (one made
		// by SQL PREPARE shares the namespace) has no text to check.
		return &refusedSessionError{msg: fmt.Sprintf("Bind of prepared statement %q, which the gateway did not see parsed (it was not Parsed on this session, or SQL PREPARE made it), is not allowed, and the session is closed; prepare statements with the protocol's Parse (your driver's prepare) instead", name)}
	}
	if info.verdict.Allow && !s.sameRead(info.read) {
		// Check again: the verdict at Parse may be stale (a new policy, an
		// expired grant). The target holds the allowed text under this
		// name, so a refusal now ends the session. A Parse that came in
		// the same read as this Bind (a one-shot query) was checked a
		// moment ago.
		if err := s.recheck(info.text, "", KindParse, "prepared"); err != nil {
			return err
		}
	}
	if info.uncertain && info.seg < s.segs && !settled {
		// Fail closed: whether the target took the Parse before an
		// earlier Sync is not known yet, and if not, the name holds
		// another statement there. A Bind in the Parse's own pipeline
		// step needs no answer: if the Parse fails, the target skips it.
		return &refusedSessionError{msg: fmt.Sprintf("Bind of prepared statement %q, which a Parse before an earlier Sync replaced and the target has not confirmed yet: the gateway cannot tell which statement it would run; wait for the Parse's answer before binding, or reconnect", name)}
	}
	prev := s.stmts.portal(portal)
	if !s.stmts.bind(portal, portalRec{info: info, at: s.msgNo, read: s.readNo()}) {
		return &refusedSessionError{code: codeProgramLimitExceeded,
			msg: fmt.Sprintf("the session holds %d named portals; close some (Close, or end the transaction) or reconnect", maxPortals)}
	}
	e := entry{kind: entryBind, portal: string(portal), at: s.msgNo, prevPortal: prev}
	if info.verdict.Allow {
		if c := info.rewritesTo(s.segs); c != nil {
			// The cache holds the text: bind that (see stmtCache).
			e.cached = c
			s.queue.push(e)
			s.scratch = appendRenamedBindHead(s.scratch[:0], len(msg), portal, c.name)
			if err := s.fe.write(s.scratch); err != nil {
				return err
			}
			return s.fe.write(msg[5+len(portal)+1:]) // the statement name's NUL and the rest
		}
		if info.cached != nil && info.cached.revoked {
			return errRevokedCache
		}
		s.queue.push(e)
		return s.fe.write(msg)
	}
	s.queue.push(e)
	// The target holds the refusal under this name, which takes no
	// parameters: bind it with none so it raises the refusal again.
	s.scratch = appendZeroBind(s.scratch[:0], portal, name)
	return s.fe.write(s.scratch)
}

func (s *session) onExecute(n int) error {
	msg, portal, rec, err := s.readExecute(n)
	if err != nil {
		return err
	}
	if rec.info == nil {
		// No Bind or DECLARE the gateway saw made this portal (a Close
		// removed it, its transaction ended, or SQL in a function opened a
		// cursor of this name): the target answers, and the audit says
		// what the gateway knows. The session's own standing (token,
		// grant) is still checked, with an empty text.
		text := fmt.Sprintf("-- Execute of portal %q, which the gateway did not see bound or declared", portal)
		if err := s.recheck("", text, KindExecute, ""); err != nil {
			return err
		}
		rec.info = &stmtInfo{text: text, verdict: Verdict{Allow: true}}
		rec.read = s.readNo()
	}
	if rec.info.verdict.Allow && !s.sameRead(rec.read) {
		// A portal read in parts (Execute with a row limit) runs no
		// longer than its statement is allowed: a new policy or an
		// expired token stops it at the next Execute.
		if err := s.recheck(rec.info.text, "", KindExecute, "bound"); err != nil {
			return err
		}
	}
	if v := rec.info.verdict; v.Allow && len(v.Fetches) > 0 {
		// Which portals exist is known only now, as the FETCH runs.
		if why := s.fetchesBoundPortal(v.Fetches); why != "" {
			v.Allow, v.Message = false, why
			s.report(StatementEvent{Kind: KindExecute, Text: rec.info.text, Verdict: v, Start: time.Now()})
			return &refusedSessionError{msg: why}
		}
	}
	if rec.info.verdict.Allow {
		// A SET or DEALLOCATE ALL runs at its Execute, which may come
		// long after its Parse: the cache hears of it again.
		s.tellCache(&rec.info.verdict)
	}
	e := entry{kind: entryExecute, portal: string(portal), start: time.Now(),
		text: rec.info.text, verdict: rec.info.verdict, bindAt: rec.at}
	s.copyIn, s.copyInQuery = rec.info.verdict.Allow && rec.info.verdict.CopyIn, false
	s.queue.push(e)
	return s.fe.write(msg)
}

// forwardSkipped forwards a Bind, Execute, Describe or Close that the
// target will skip: an earlier request of the same pipeline step failed,
// and the client has not sent the step's Sync yet. A Close or Bind changes
// nothing in the record, as it changes nothing on the target. It takes no
// queue entry, so a long batch after an early error costs the gateway
// nothing per message;
// an Execute is audited at once as not run, with the text its portal was
// last bound to (by a Bind that may have been skipped too: the audit names
// what the client asked for), unless that statement was refused (its
// Parse was its deny event) or is unknown.
func (s *session) forwardSkipped(typ byte, n int) error {
	switch typ {
	case 'E':
		msg, portal, rec, err := s.readExecute(n)
		if err != nil {
			return err
		}
		if skipped, ok := s.skippedPortals[string(portal)]; ok {
			rec = skipped
		}
		var code string
		if be := s.skipBindErr.Load(); be != nil && be.portal == string(portal) && s.skipBindErr.CompareAndSwap(be, nil) {
			code = be.code // the failed Bind's error is this statement's, the first Execute's
		}
		if rec.info != nil && rec.info.verdict.Allow {
			// Not one the policy refused, nor of an unknown statement:
			// those are not audited when skipped (see session.finish).
			s.report(StatementEvent{Kind: KindExecute, Start: time.Now(), Text: rec.info.text,
				Verdict: rec.info.verdict, Allowed: true, ErrorCode: code})
		}
		return s.fe.write(msg)
	case 'B':
		msg, portal, name, err := s.readBind(n)
		if err != nil {
			return err
		}
		if be := s.skipBindErr.Load(); be != nil && be.portal == string(portal) {
			s.skipBindErr.Store(nil) // bound again: later Executes are not the failed Bind's
		}
		info := s.stmts.stmt(name)
		if info == nil {
			info = skippedBind
		}
		if _, ok := s.skippedPortals[string(portal)]; ok || len(s.skippedPortals) < maxPortals {
			if s.skippedPortals == nil {
				s.skippedPortals = make(map[string]portalRec)
			}
			s.skippedPortals[string(portal)] = portalRec{info: info, at: s.msgNo, read: s.readNo()}
		}
		return s.fe.write(msg)
	}
	return s.fe.forward(n)
}

// skippedBind is the record of a Bind the target skips: a Parse of its
// statement failed earlier in the same pipeline step. Its Executes are
// skipped too, and not audited: nothing ran, and the policy refused nothing
// (a refused Parse was its own deny event).
var skippedBind = &stmtInfo{}

// sweepPortals forgets the portals the target dropped at the end of their
// transaction.
func (s *session) sweepPortals() {
	s.stmts.sweepPortals(s.portalsDead.Load())
}

// recheck checks again the text of a statement checked in an earlier
// read, before a Bind or Execute runs it. The target holds the statement
// or portal, so a refusal ends the session; it is audited as a refused
// statement of kind, named audit (the text itself when empty). what says
// what changed since, for the message ("" when nothing was checked
// before).
func (s *session) recheck(text, audit string, kind StatementKind, what string) error {
	v, err := s.verdict(text)
	if err != nil || v.Allow {
		return err
	}
	if audit == "" {
		audit = text
	}
	s.report(StatementEvent{Kind: kind, Text: audit, Verdict: v, Start: time.Now()})
	if v.EndCode != "" {
		return &refusedSessionError{code: v.EndCode, msg: v.Message, reason: v.EndReason}
	}
	if what == "" {
		return &refusedSessionError{msg: v.Message}
	}
	return &refusedSessionError{msg: v.Message + " (the policy changed since this statement was " + what + "; reconnect)"}
}

func (s *session) onClose(n int) error {
	msg, err := s.fe.whole(n)
	if err != nil {
		return err
	}
	body := msg[5:]
	if len(body) < 2 {
		return errBadClose
	}
	name, _, ok := cutBytes(body[1:])
	if !ok {
		return errBadClose
	}
	if err := s.checkName(name); err != nil {
		return err
	}
	if body[0] == 'S' && reservedName(name) {
		return errReservedName
	}
	if err := s.applyRevertsIfAny(); err != nil {
		return err
	}
	// Remember what the Close removes: a Close the target skips (after an
	// error earlier in the pipeline) leaves it in place there. The unnamed
	// statement is not put back: a Bind of it after a skipped Close is
	// refused (fail closed). A Close of either leaves a mark until it is
	// answered, so that a Parse of the name after it is uncertain: if the
	// target skipped both, it still holds the statement from before.
	e := entry{kind: entryClose, name: string(name)}
	switch body[0] {
	case 'S':
		e.prev = s.stmts.stmt(name)
		// A Close of the unnamed statement that starts a pipeline step
		// cannot be skipped (nothing before it in the step can fail),
		// and leaves no mark: libpq's PQclosePrepared in a pipeline.
		if e.prev != nil && (len(name) > 0 || s.msgNo != s.syncMsgNo+1) {
			m := &stmtInfo{seg: s.segs}
			if len(s.closing) >= maxClosing {
				s.sweepClosing()
			}
			if s.closing == nil {
				s.closing = make(map[string]*stmtInfo)
			}
			s.closing[string(name)] = m
			e.settles = m
		}
	case 'P':
		s.sweepPortals()
		e.prevPortal = s.stmts.portal(name)
		e.prev, e.closesPortal = e.prevPortal.info, true
	}
	s.stmts.close(body[0], name)
	s.queue.push(e)
	return s.fe.write(msg)
}

func (s *session) onFunctionCall(n int) error {
	msg, err := s.fe.whole(n)
	if err != nil {
		return err
	}
	if n < 4 {
		return errBadFunctionCall
	}
	oid := binary.BigEndian.Uint32(msg[5:])
	text := "FUNCTION CALL " + strconv.FormatUint(uint64(oid), 10)
	v, err := s.check(text, KindFunctionCall)
	if err != nil {
		return err
	}
	s.queue.push(entry{kind: entryFunctionCall, text: text, verdict: v, start: time.Now()})
	if v.Allow {
		return s.fe.write(msg)
	}
	// Fail closed: the call never reaches the target. A simple Query of the
	// refusal answers with ErrorResponse and ReadyForQuery, as the call would.
	s.scratch = appendQuery(s.scratch[:0], refusalSQL(s.refusalMessage(v.Message)))
	return s.fe.write(s.scratch)
}

// readNo identifies the client read being handled.
func (s *session) readNo() uint64 {
	if s.clientIn == nil {
		return 0
	}
	return s.clientIn.reads
}

// sameRead reports whether the client read being handled is read.
func (s *session) sameRead(read uint64) bool {
	return s.clientIn != nil && s.clientIn.reads == read
}

// textOf returns sql as a string, reusing the previous simple query's string
// when the text repeats. While the session's client_encoding is not UTF8,
// it is the UTF-8 rendering of sql (see session.clientEnc): what the
// checker parses and the audit records; the target gets sql itself.
func (s *session) textOf(sql []byte) string {
	if enc := s.clientEnc.Load(); enc != nil {
		return enc.String(sql)
	}
	if s.lastQuery == string(sql) {
		return s.lastQuery
	}
	s.lastQuery = string(sql)
	return s.lastQuery
}

// cutBytes splits a NUL-terminated byte string off b.
func cutBytes(b []byte) (s, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}

// applyReverts puts back the gateway's record of statements whose Parse
// did not take effect on the target: the target still holds the statement
// from before under the name, and Bind must check that one's text.
func (s *session) applyReverts() error {
	s.revertMu.Lock()
	s.pendingReverts = append(s.pendingReverts, s.reverts...)
	clear(s.reverts) // let the texts go
	s.reverts = s.reverts[:0]
	s.hasReverts.Store(false)
	s.revertMu.Unlock()
	// Undo the latest first, and again until nothing changes: a revert
	// applies once the name holds what its Parse or Close left there,
	// which a later Parse or Close of the name may still be hiding until
	// its own revert arrives. One that never applies was overtaken by a
	// later Parse or Close that took effect.
	rs := s.pendingReverts
	for changed := true; changed; {
		changed = false
		for i := len(rs) - 1; i >= 0; i-- {
			if s.undo(rs[i]) {
				rs = append(rs[:i], rs[i+1:]...)
				changed = true
			}
		}
	}
	// A revert of the unnamed statement that does not apply now never
	// will: a later Parse of it replaced it, and that Parse's own revert
	// (it takes effect or it is reverted too) settles the record.
	rs = slices.DeleteFunc(rs, func(r stmtRevert) bool { return r.name == "" && !r.portal })
	clear(rs[len(rs):cap(rs)])
	s.pendingReverts = rs
	if len(rs) > maxPendingReverts {
		return &refusedSessionError{code: codeProgramLimitExceeded,
			msg: fmt.Sprintf("more than %d Parses and Closes of prepared statements did not take effect; reconnect", maxPendingReverts)}
	}
	return nil
}

// maxPendingReverts bounds the reverts a session keeps waiting.
const maxPendingReverts = 64

// forgetPrepared drops the gateway's record of the statements that SQL
// PREPARE in v's text creates (see Verdict.Prepares): a Bind of one of
// those names is then refused, as the gateway never saw its text parsed.
//
// It also records the cursors that DECLARE in v's text opens as portals of
// text (see Verdict.Declares).
func (s *session) forgetPrepared(v Verdict, text string) {
	for _, name := range v.Prepares {
		s.stmts.close('S', []byte(name))
	}
	s.tellCache(&v)
	if len(v.Declares) == 0 {
		return
	}
	s.sweepPortals()
	info := &stmtInfo{text: text, verdict: v, read: s.readNo()}
	for _, name := range v.Declares {
		// Past maxPortals the cursor is audited as unknown; the session
		// goes on, as the target's portals are not the gateway's to bound.
		s.stmts.bind([]byte(name), portalRec{info: info, at: s.msgNo, read: info.read, hold: slices.Contains(v.Holds, name)})
	}
}

// fetchesBoundPortal says why a FETCH or MOVE of the cursors named is
// refused, or "": one of them is a portal that the protocol's Bind made,
// not a DECLARE. Portals and cursors share one namespace, and FETCH runs a
// portal's statement if it has not run yet: the statement would run
// without the check and the audit event of its Execute. Names the gateway
// does not know are a function's cursors (a refcursor), opened by SQL it
// checked.
func (s *session) fetchesBoundPortal(names []string) string {
	s.sweepPortals()
	for _, name := range names {
		rec := s.stmts.portal([]byte(name))
		if rec.info != nil && !slices.Contains(rec.info.verdict.Declares, name) {
			s.log.Info("statement refused", "reason", "FETCH or MOVE of a bound portal")
			return fmt.Sprintf("FETCH or MOVE of portal %q, which a Bind made, is refused: it would run the bound statement without the gateway's check and audit; read the portal with Execute, or use DECLARE for a cursor", name)
		}
	}
	return ""
}

// applyRevertsIfAny applies the reverts the target side queued, if any.
func (s *session) applyRevertsIfAny() error {
	if !s.hasReverts.Load() {
		return nil
	}
	return s.applyReverts()
}

// maxName is the longest statement or portal name: PostgreSQL uses the
// first NAMEDATALEN-1 bytes of a name, so two longer names could be one
// statement on the target and two in the gateway's record.
const maxName = 63

var errLongName = &refusedSessionError{code: codeProgramLimitExceeded,
	msg: fmt.Sprintf("prepared statement and portal names over %d bytes are not supported through the gateway (PostgreSQL shortens them)", maxName)}

// errNonASCIIName refuses a non-ASCII statement or portal name while the
// client_encoding is not UTF8: the target converts such a name to the
// server's encoding (where it may also pass maxName and be cut), while SQL
// names the gateway learns (PREPARE, DECLARE, FETCH) come from its UTF-8
// rendering of statements, so the two would not meet in the gateway's
// record. A FETCH could then read a Bind's portal unchecked.
var errNonASCIIName = &refusedSessionError{code: codeFeatureNotSupported,
	msg: "prepared statement and portal names that are not ASCII are supported through the gateway only in client_encoding UTF8"}

// checkName refuses a statement or portal name the gateway's record could
// not hold as the target does.
func (s *session) checkName(name []byte) error {
	if len(name) > maxName {
		return errLongName
	}
	if s.clientEnc.Load() != nil {
		for _, b := range name {
			if b >= utf8.RuneSelf {
				return errNonASCIIName
			}
		}
	}
	return nil
}

// maxClosing is how many Close marks make onClose sweep the answered ones
// before a Sync does.
const maxClosing = 256

// sweepClosing forgets the marks of Closes the target answered.
func (s *session) sweepClosing() {
	for name, m := range s.closing {
		if m.settled.Load() {
			delete(s.closing, name)
		}
	}
}

// undo applies r if the name holds what r's Parse or Close left there.
func (s *session) undo(r stmtRevert) bool {
	name := []byte(r.name)
	switch {
	case r.portal:
		if s.stmts.portal(name).info != r.failed {
			return false
		}
		if r.prevPortal.info == nil || r.prevPortal.at < s.stmts.swept {
			// Nothing was bound, or its transaction has ended since.
			s.stmts.close('P', name)
		} else {
			s.stmts.bind(name, r.prevPortal)
		}
	case s.stmts.stmt(name) != r.failed:
		return false
	case r.prev == nil:
		s.stmts.close('S', name)
		if r.name == "" {
			s.unnamedLost = true // the target still holds one
		}
	default:
		s.stmts.setStmt(name, r.prev)
	}
	if r.failed != nil && r.failed.seg == s.segs {
		// The client is still in the pipeline step of the Parse that
		// failed: the target skips the rest of it (see onBind).
		if s.skippedNow == nil {
			s.skippedNow = make(map[string]bool)
		}
		s.skippedNow[r.name] = true
	}
	return true
}

// stmtRevert is a Parse or Close that did not take effect on the target:
// name holds prev there, not failed (nil for a Close). portal says the name
// is a portal's (a Close of a portal).
type stmtRevert struct {
	name         string
	failed, prev *stmtInfo
	portal       bool
	prevPortal   portalRec
}
