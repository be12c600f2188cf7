package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Reasons a session ends, as reported in SessionStats.Reason.
const (
	reasonTerminate     = "client-terminate"
	reasonClientGone    = "client-disconnect"
	reasonTargetLost    = "target-lost"
	reasonTooLarge      = "message-too-large"
	reasonShutdown      = "shutdown"
	reasonProtocolError = "protocol-error"
	reasonRefused       = "refused"
)

// shutdownWriteGrace bounds writing the final error to a client that does
// not read during a forced shutdown.
const shutdownWriteGrace = 2 * time.Second

// run relays the session until either side ends it: on the event loop
// while it can (see loop_linux.go), then on one goroutine per direction,
// each owning its conduit. client is the connection under r and w.
func (ss *session) run(client *relayConn, r *bufio.Reader, w *bufio.Writer) {
	target := newRelayConn(ss.up.conn)
	ss.clientIn = client
	ss.fe = newConduit(r, bufio.NewWriterSize(target, relayBufferSize), ss.srv.maxBody())
	ss.be = newConduit(bufio.NewReaderSize(target, relayBufferSize), w, 0)
	ss.log.Info("postgres session started", "application_name", ss.info.ApplicationName, "tls", ss.info.TLS)
	if o := ss.plan.Observer; o != nil {
		o.SessionStart(ss.info)
	}

	feErr, beErr := ss.relayInLoop(client, target)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := target.flushStash(); err != nil && feErr == nil {
			feErr = &writeError{err}
		}
		ss.clientLoop(feErr)
	}()
	if err := client.flushStash(); err != nil && beErr == nil {
		beErr = &writeError{err}
	}
	ss.targetLoop(beErr)
	<-done

	ss.srv.dropCancelKey(ss.key)
	ss.cancel()
	// Whatever is still pending never completed. The first statement was
	// sent to the target, which runs requests in order: it was running
	// or about to run, and may have run in part.
	inFlight := true
	for h := ss.queue.head(); h != nil; h = ss.queue.head() {
		switch h.kind {
		case entryQuery, entryExecute, entryFunctionCall:
			if inFlight && h.verdict.Allow {
				h.interrupted = true
				h.rows += ss.dataRows
			}
			inFlight = false
		}
		ss.finish(h)
		ss.queue.pop()
	}
	stats := SessionStats{
		SessionInfo: ss.info,
		End:         time.Now(),
		BytesIn:     ss.fe.bytes,
		BytesOut:    ss.be.bytes,
		Statements:  ss.statements.Load(),
		Refused:     ss.refused.Load(),
		Reason:      ss.reason,
	}
	ss.log.Info("postgres session ended", "reason", ss.reason, "statements", stats.Statements,
		"refused", stats.Refused, "bytes_in", stats.BytesIn, "bytes_out", stats.BytesOut,
		"duration", stats.End.Sub(ss.info.Start).Round(time.Millisecond))
	if o := ss.plan.Observer; o != nil {
		o.SessionEnd(stats)
	}
}

// end records why the session ends (the first reason wins) and closes the
// target connection, which stops the target goroutine; that goroutine tells
// the client (fe, when not nil) and closes the client connection.
func (ss *session) end(reason string, fe *clientError) {
	ss.endOnce.Do(func() {
		ss.ended.Store(true)
		ss.reason, ss.fatalErr = reason, fe
		ss.up.conn.Close()
	})
}

// shutdownCancelTimeout bounds the cancel request that Shutdown sends for
// a session's statement in flight.
const shutdownCancelTimeout = 3 * time.Second

// shutdown ends the session for Server.Shutdown. A session on the event
// loop is first given back to its goroutines, which call shutdown again.
func (ss *session) shutdown() {
	ss.modeMu.Lock()
	ss.stopping = true
	if ls := ss.inLoop; ls != nil {
		ls.kick()
		ss.modeMu.Unlock()
		return
	}
	client := ss.client
	ss.modeMu.Unlock()
	msg := "the gateway is shutting down; reconnect to continue"
	if ss.queue.len() > 0 {
		msg = "the gateway is shutting down and cancelled the statement in flight on the target; reconnect to continue"
		// A statement is in flight: cancel it on the target, which would
		// otherwise run it to the end (and commit it) after the client
		// was told the session ended. Shutdown waits for the request.
		ss.cancelOnTarget("at shutdown")
	}
	ss.end(reasonShutdown, fatal(codeAdminShutdown, msg))
	// Unblock a client goroutine waiting on the client, and bound the
	// final write to a client that does not read.
	client.SetReadDeadline(time.Now())
	client.SetWriteDeadline(time.Now().Add(shutdownWriteGrace))
	ss.cancel()
}

// clientLoop forwards client messages to the target until the client ends,
// the target connection fails, or the client breaks the protocol. err is an
// error the event loop met on this side, to act on first.
func (ss *session) clientLoop(err error) {
	for err == nil {
		var typ byte
		var n int
		typ, n, err = ss.fe.next()
		if err == nil {
			err = ss.handleClientMessage(typ, n)
		}
	}
	var tooLarge *tooLargeError
	var pe *protocolError
	var re *refusedSessionError
	var we *writeError
	switch {
	case errors.Is(err, errTerminated):
		ss.end(reasonTerminate, nil)
	case errors.As(err, &tooLarge):
		ss.log.Warn("client message too large", "size", tooLarge.size, "limit", tooLarge.limit)
		ss.end(reasonTooLarge, fatal(codeProgramLimitExceeded, tooLarge.Error()))
	case errors.As(err, &pe):
		ss.log.Warn("client protocol error", "err", err)
		ss.end(reasonProtocolError, fatal(codeProtocolViolation, pe.msg))
	case errors.As(err, &re):
		ss.log.Info("session closed by a refusal", "why", re.msg)
		reason := re.reason
		if reason == "" {
			reason = reasonRefused
		}
		if re.code == "" || re.code == codeInsufficientPriv {
			ss.end(reason, refusal(re.msg))
		} else {
			ss.end(reason, fatal(re.code, re.msg))
		}
	case errors.As(err, &we):
		ss.end(reasonTargetLost, ss.targetLost())
	default:
		ss.cancelInFlight()
		ss.end(reasonClientGone, nil)
	}
}

// cancelInFlight asks the target to cancel the statement in flight, if
// any, for a session whose client is gone: the target would otherwise run
// it to its end (and commit it), as it notices the closed connection only
// when it next writes to it. The request is bounded and Shutdown waits
// for it.
func (ss *session) cancelInFlight() {
	if ss.queue.len() == 0 || ss.ended.Load() {
		// Nothing in flight, or the session ended for another reason
		// first (a Shutdown cancels for itself; a lost target has
		// nothing to cancel).
		return
	}
	ss.cancelOnTarget("of a client that went away")
}

// cancelOnTarget sends the target a CancelRequest for the session's
// statement in flight, bounded by shutdownCancelTimeout, on a goroutine
// that Shutdown waits for. when says why, for the log.
func (ss *session) cancelOnTarget(when string) {
	ss.srv.wg.Add(1)
	go func() {
		defer ss.srv.wg.Done()
		ctx, stop := context.WithTimeout(context.Background(), shutdownCancelTimeout)
		defer stop()
		if err := ss.up.cancel(ctx); err != nil {
			ss.log.Warn("could not cancel the running statement on the target "+when, "err", err)
		}
	}()
}

// targetLoop forwards target messages to the client until the target
// connection ends, then tells the client why and closes it. err is an error
// the event loop met on this side, to act on first.
func (ss *session) targetLoop(err error) {
	for err == nil {
		var typ byte
		var n int
		typ, n, err = ss.be.next()
		if err == nil {
			err = ss.handleTargetMessage(typ, n)
		}
	}
	var we *writeError
	var ue *unsafeSettingError
	switch {
	case errors.As(err, &we):
		ss.cancelInFlight()
		ss.end(reasonClientGone, nil)
	case errors.As(err, &ue):
		ss.log.Warn("target setting would defeat statement checks; session closed", "why", ue.msg)
		ss.end(reasonRefused, refusal(ue.msg))
	case ss.terminating.Load():
		// The target closed because the client said goodbye.
		ss.end(reasonTerminate, nil)
	case ss.targetFatal:
		// The client has the target's own FATAL (an administrator's
		// termination, a shutdown): that says why; a second would not.
		ss.log.Warn("target ended the session with a FATAL error")
		ss.end(reasonTargetLost, nil)
	default:
		ss.end(reasonTargetLost, ss.targetLost())
	}
	if ss.fatalErr != nil && ss.reason != reasonClientGone {
		if ss.reason == reasonTargetLost {
			ss.log.Warn("target connection lost")
		}
		ss.be.w.Write(appendFatal(nil, ss.fatalErr))
		ss.be.w.Flush()
	}
	if ss.reason == reasonTooLarge || ss.reason == reasonProtocolError {
		lingerClose(ss.client)
		return
	}
	ss.client.Close()
}

// Bounds of lingerClose.
const (
	lingerTime = 2 * time.Second
	lingerMax  = 16 << 20
)

// lingerClose closes a client connection that may still be sending (the
// rest of an oversized message): it stops writing, then reads and drops what
// the client still sends for a bounded time and size, so the client's write
// completes and it reads the error instead of a connection reset.
func lingerClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(lingerTime))
	io.CopyN(io.Discard, c, lingerMax)
	c.Close()
}

// targetLost is the error a client sees when the target connection fails.
func (ss *session) targetLost() *clientError {
	return fatal(codeConnectionFailure, fmt.Sprintf("connection to target %q lost", ss.plan.Target))
}
