package postgres

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatectl/gatectl/pkg/pgenc"
)

// maxPasswordMessage bounds the password message: an OIDC token with many
// groups is a few KiB; this leaves generous room.
const maxPasswordMessage = 64 << 10

// cancelKey is the gateway's own BackendKeyData handed to a client.
type cancelKey struct {
	pid    uint32
	secret uint32
}

// session is one relayed client connection.
type session struct {
	srv    *Server
	plan   *Session
	log    *slog.Logger
	info   SessionInfo
	client net.Conn
	// clientIn is the client connection as the relay reads it; nil in
	// tests that drive handlers directly.
	clientIn *relayConn
	up       *upstreamConn
	key      cancelKey
	ctx      context.Context
	cancel   context.CancelFunc

	// fe carries client → target and is owned by the client goroutine with
	// stmts, scratch, lastQuery, statements and refused; be carries
	// target → client and is owned by the target goroutine.
	fe    *conduit
	be    *conduit
	queue pendingQueue
	stmts stmtTable
	// segs counts the client's Syncs; closing holds, by name, the marks
	// of Closes of statements that the target may not have answered yet
	// (see stmtInfo.uncertain).
	segs    uint64
	closing map[string]*stmtInfo
	// syncMsgNo is the message number (msgNo) of the client's last Sync.
	syncMsgNo uint64
	// unnamedLost is set when the gateway forgot the unnamed statement
	// because a Parse or Close of it did not take effect (see undo): the
	// target holds one the gateway no longer knows, so the next Parse of
	// it is uncertain.
	unnamedLost bool
	// msgNo numbers the client's messages; portalsDead is the number of
	// the Sync or Query after which the target last reported no open
	// transaction, so the portals bound before it are gone (written by
	// the target side, swept by the client side: stmtTable.sweepPortals).
	msgNo       uint64
	portalsDead atomic.Uint64
	// skipping mirrors the target side's discarding for the client side:
	// the target answers nothing until the next Sync. skipSeg is 1 + the
	// pipeline step (session.segs) that failed: while the client is still
	// in it, everything it sends up to its Sync is skipped (see
	// forwardSkipped).
	skipping atomic.Bool
	skipSeg  atomic.Uint64
	// skipBindErr is the failed Bind whose error the Executes of its
	// portal that the client side forwards skipped are audited with.
	skipBindErr atomic.Pointer[bindError]
	// pendingReverts are reverts applyReverts could not apply yet;
	// skippedNow names the statements whose Parse failed in the client's
	// current pipeline step.
	pendingReverts []stmtRevert
	skippedNow     map[string]bool
	// skippedPortals are the Binds forwardSkipped sent in the client's
	// current pipeline step, which the target skips: the step's skipped
	// Executes are audited with what they asked for, and the portal
	// record keeps what the target holds.
	skippedPortals map[string]portalRec
	scratch        []byte
	lastQuery      string
	// cache is the statement cache (client side); nil when it is off.
	cache *stmtCache
	// unclosed are cache statements the cache gave up whose Close the
	// target skipped (an error earlier in its pipeline step): the target
	// still holds them, and the next Parse the cache prepares closes them
	// (target side appends, client side takes; see parseCached).
	unclosedMu sync.Mutex
	unclosed   []string
	// cacheGen counts the changes of settings that may change how the
	// target analyzes a statement (see stmtCache); both sides add to it.
	cacheGen atomic.Uint64
	// analysisChanged is set (client side) when an allowed statement may
	// change how the target analyzes statements (Verdict.ChangesAnalysis)
	// and cleared by the target side at the end of the transaction: the
	// change may be undone before then (ROLLBACK, ROLLBACK TO, the end of
	// SET LOCAL), so every ReadyForQuery until then starts a new cache
	// generation.
	analysisChanged atomic.Bool
	// txStatus is the transaction status of the target's last
	// ReadyForQuery (target side writes, client side reads).
	txStatus atomic.Uint32
	// clientEnc renders statement text as UTF-8 for the checker and the
	// audit while the session's client_encoding is not UTF8 (nil: it is).
	// The target side sets it from the target's reports of
	// client_encoding (at login and after a SET), before the client can
	// see them; the client side reads it.
	clientEnc atomic.Pointer[pgenc.Converter]
	// statements and refused count the statement events reported (see
	// report), from both relay sides.
	statements, refused atomic.Int64
	// copyMaybe is set after a client Execute until the client sends
	// something other than Sync or Flush: a Sync then may reach a target
	// in copy-in mode, which ignores it (client goroutine).
	copyMaybe bool
	// copyIn is set (client goroutine) from forwarding a request that
	// starts a COPY FROM STDIN (Verdict.CopyIn) until the client sends
	// anything but CopyData, Flush or Sync: the target is or will be in
	// copy-in mode, where it ignores Syncs.
	copyIn bool
	// copyInQuery says copyIn came from a simple Query, whose statements
	// may start several copies one after another.
	copyInQuery bool

	// discarding is set after an error in the extended protocol until the
	// Sync that ends it: the target skips every request until then.
	// bindErr is the error of a failed Bind while its portal's Execute may
	// still come (target goroutine).
	discarding bool
	bindErr    *bindError
	// dataRows counts the DataRows the target sent since the last message
	// that ended a statement's result: the rows of a statement whose
	// command tag carries no count (SHOW, EXPLAIN, CALL), of an Execute
	// that its row limit suspended, or of one that failed part way
	// (target goroutine).
	dataRows int64
	// failedBinds holds, by their client message number, the Binds the
	// target refused or skipped in the open transaction, each with the
	// record of its portal before it: what an Execute of the portal runs
	// once a savepoint's rollback lets it (see session.boundStatement).
	// failedBindsLost is set when there were more than maxPortals of
	// them (target goroutine).
	failedBinds     map[uint64]portalRec
	failedBindsLost bool
	// targetFatal is set once the target sent a FATAL error (target
	// goroutine).
	targetFatal bool

	// reverts are named statements whose Parse the target refused, so
	// that it still holds the one before: the target goroutine adds them
	// and the client goroutine puts the gateway's record back (see
	// applyReverts).
	revertMu   sync.Mutex
	reverts    []stmtRevert
	hasReverts atomic.Bool

	// modeMu guards the switch between loop mode and goroutine mode, and
	// the client and target connections, which change at that switch.
	modeMu sync.Mutex
	// inLoop is the session's state on the event loop while it is there.
	inLoop *loopSession
	// stopping is set by shutdown.
	stopping bool
	// onLoop is set while the event loop relays the session; only the
	// loop's thread reads or writes it then.
	onLoop bool

	endOnce sync.Once
	// ended is set once end ran (see cancelInFlight).
	ended atomic.Bool
	// terminating is set once the client's Terminate is on its way to the
	// target, so the target closing after it is not taken for a lost target.
	terminating atomic.Bool
	reason      string
	fatalErr    *clientError
}

// serveConn runs one client connection from accept to close.
func (s *Server) serveConn(t *tracked) {
	raw := t.raw
	defer raw.Close()
	log := s.logger().With("remote", raw.RemoteAddr().String())
	raw.SetDeadline(time.Now().Add(startupTimeout))
	limit := int64(s.MaxStartups)
	if limit <= 0 {
		limit = DefaultMaxStartups
	}
	// One address may hold at most half the slots, so that connections
	// that never finish logging in, from one place, cannot keep everyone
	// else out; those it opens past that take no slot.
	source := sourceKey(raw.RemoteAddr())
	fromSource := s.startFrom(source, 1)
	perSource := int(max(1, limit/2))
	overSource := fromSource > perSource
	var starting int64
	if !overSource {
		starting = s.starting.Add(1)
	}
	// done gives back the connection's place in both counts, once: when
	// the client is logged in (before it can learn so and connect again)
	// or when the connection ends.
	counted := true
	done := func() {
		if counted {
			counted = false
			if !overSource {
				s.starting.Add(-1)
			}
			s.startFrom(source, -1)
		}
	}
	defer done()
	over := overSource || starting > limit
	if over {
		// Refused after the TLS handshake, where the client can read why,
		// as PostgreSQL refuses past its own limit; but within seconds.
		raw.SetDeadline(time.Now().Add(refuseTimeout))
	}

	n, err := negotiate(newSockConn(raw), s.tlsConf)
	client := newRelayConn(n.conn)
	if err != nil {
		log.Debug("postgres startup failed", "err", err)
		var pe *clientError
		if !errors.As(err, &pe) {
			pe = fatal(codeProtocolViolation, "invalid startup: "+err.Error())
		}
		w := bufio.NewWriter(n.conn)
		writeFatal(w, pe)
		return
	}
	if n.packet.kind == startupCancel {
		s.forwardCancel(log, n.packet)
		return
	}
	if over {
		msg := fmt.Sprintf("the gateway has %d connections logging in; try again in a moment", limit)
		if overSource {
			msg = fmt.Sprintf("the gateway has %d connections logging in from your address; let them finish, or try again in a moment", perSource)
		}
		log.Warn("postgres client refused: too many connections are logging in", "limit", limit, "from_source", fromSource)
		writeFatal(bufio.NewWriterSize(client, 512), fatal(codeTooManyConnections, msg))
		return
	}
	w := bufio.NewWriterSize(client, relayBufferSize)
	// Fail closed: plaintext only where AllowPlaintext says so.
	if !n.tls && (s.AllowPlaintext == nil || !s.AllowPlaintext(raw.RemoteAddr())) {
		log.Info("postgres client refused: plaintext not allowed")
		writeFatal(w, &clientError{Code: codeInvalidAuthorization,
			Msg:  "the gateway requires TLS from this address",
			Hint: "connect with sslmode=require (or verify-full with the gateway's CA)"})
		return
	}
	// Buffered reading starts only now, after any TLS handshake.
	r := bufio.NewReaderSize(client, relayBufferSize)
	sess, err := s.startSession(t, n, r, w, log, done)
	if err != nil {
		var ce *clientError
		if errors.As(err, &ce) {
			log.Info("postgres session refused", "code", ce.Code, "reason", ce.Msg)
		} else {
			log.Warn("postgres session failed", "err", err)
		}
		writeFatal(w, err)
		return
	}
	raw.SetDeadline(time.Time{})
	sess.run(client, r, w)
}

// startFrom adds d to the connections logging in from source and returns
// their number.
func (s *Server) startFrom(source string, d int) int {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if s.startingFrom == nil {
		s.startingFrom = make(map[string]int)
	}
	n := s.startingFrom[source] + d
	if n <= 0 {
		delete(s.startingFrom, source)
	} else {
		s.startingFrom[source] = n
	}
	return n
}

// sourceKey is the address that startFrom counts a client under: its IPv4
// address (an IPv4-mapped one too), the /64 of an IPv6 address (what one
// host routinely holds), or, for another kind of address (a Unix socket),
// one key for all.
func sourceKey(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip4 := ta.IP.To4(); ip4 != nil {
			return ip4.String()
		}
		return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return a.Network()
}

// startSession authenticates the client, logs in to the target and
// completes the client's startup. Nothing is dialed before Authenticate
// succeeds. loggedIn is called once the session is registered, before
// the client is told it is logged in (and may connect again).
func (s *Server) startSession(t *tracked, n negotiated, r *bufio.Reader, w *bufio.Writer, log *slog.Logger, loggedIn func()) (*session, error) {
	p := n.packet
	if why := unsupportedStartup(p.params); why != "" {
		return nil, &clientError{Code: codeFeatureNotSupported, Msg: why}
	}
	if p.minor > 0 || len(p.options) > 0 {
		// Offer protocol 3.0 and none of the client's protocol options.
		w.Write(appendMessage(nil, &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: p.options}))
	}
	w.Write(appendMessage(nil, &pgproto3.AuthenticationCleartextPassword{}))
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("ask for password: %w", err)
	}
	token, err := readPassword(r)
	if err != nil {
		return nil, err
	}
	database := p.params["database"]
	if database == "" {
		database = p.params["user"] // PostgreSQL's own default
	}
	ctx, cancel := context.WithCancel(context.Background())
	plan, err := s.Auth.Authenticate(ctx, AuthRequest{
		Token:           token,
		Database:        database,
		User:            p.params["user"],
		ApplicationName: p.params["application_name"],
		Reason:          p.params[ReasonParam],
		Remote:          n.conn.RemoteAddr(),
		TLS:             n.tls,
	})
	if err != nil {
		cancel()
		return nil, authFailure(err, log)
	}
	if plan == nil || plan.Checker == nil {
		cancel()
		// Fail closed: a session nobody checks is not relayed.
		return nil, fatal(codeInternalError, "gateway misconfiguration: no statement checker for this session")
	}
	log = log.With("session", plan.ID, "principal", plan.Principal, "target", plan.Target)
	up, err := dialUpstream(ctx, plan.Upstream, p.params)
	var refusal *clientError
	if errors.As(err, &refusal) {
		// The client asked for something the gateway refuses (an unsafe
		// client_encoding): say so, nothing was dialed.
		cancel()
		return nil, refusal
	}
	info := SessionInfo{
		ID: plan.ID, Principal: plan.Principal, Target: plan.Target, GrantID: plan.GrantID,
		Access: plan.Access, Remote: n.conn.RemoteAddr(), TLS: n.tls,
		ApplicationName: p.params["application_name"], Start: time.Now(),
	}
	if err != nil {
		cancel()
		log.Warn("target login failed", "target_address", plan.Upstream.Address, "target_user", plan.Upstream.User, "err", err)
		// Not a login the target refused or did not answer: the
		// gateway's own configuration of the target, or the takeover.
		hint := "the gateway could not log in to the target; the gateway's log has the cause, for the gateway's operator"
		if le := (*loginError)(nil); errors.As(err, &le) {
			hint = le.hint()
		}
		if o, ok := plan.Observer.(LoginFailureObserver); ok {
			o.TargetLoginFailed(info, hint)
		}
		return nil, &clientError{Code: codeCannotConnect,
			Msg:  fmt.Sprintf("gateway could not log in to target %q", plan.Target),
			Hint: hint + " (session " + plan.ID + ")"}
	}
	sess := &session{srv: s, plan: plan, log: log, client: n.conn, up: up, ctx: ctx, cancel: cancel, info: info,
		cache: newStmtCache(plan.Upstream.StatementCache)}
	// The target's report, not the client's startup value: it is what the
	// target reads statements in, a database or role default included.
	sess.clientEnc.Store(pgenc.ConverterFor(up.params["client_encoding"]))
	// Registered before the client learns it is logged in, so a Shutdown
	// from then on ends it as a session.
	s.register(t, sess)
	loggedIn()
	if err := sess.greet(w); err != nil {
		up.conn.Close()
		cancel()
		return nil, err
	}
	return sess, nil
}

// authFailure turns an Authenticate error into what the client sees.
func authFailure(err error, log *slog.Logger) *clientError {
	var ae *AuthError
	var xe *AccessError
	var ue *UnavailableError
	switch {
	case errors.As(err, &ae):
		return &clientError{Code: codeInvalidPassword, Msg: ae.Msg,
			Hint: "send a valid OIDC token as the password (gatectl token)"}
	case errors.As(err, &xe):
		return refusal(xe.Msg)
	case errors.As(err, &ue):
		return fatal(codeConnectionRejected, ue.Msg)
	}
	log.Warn("authentication failed", "err", err)
	return fatal(codeInvalidAuthorization, "gateway could not authenticate the client: "+err.Error())
}

// readPassword reads the client's PasswordMessage: the token.
func readPassword(r *bufio.Reader) (string, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", fmt.Errorf("read password message: %w", err)
	}
	n := int(int32(binary.BigEndian.Uint32(hdr[1:]))) - 4
	if hdr[0] != 'p' || n < 1 || n > maxPasswordMessage {
		return "", &clientError{Code: codeProtocolViolation, Msg: "expected a password message with the OIDC token"}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return "", fmt.Errorf("read password message: %w", err)
	}
	if body[n-1] != 0 {
		return "", &clientError{Code: codeProtocolViolation, Msg: "malformed password message"}
	}
	return string(body[:n-1]), nil
}

// greet completes the client's startup: AuthenticationOk, the target's
// parameters, the gateway's own BackendKeyData and ReadyForQuery, then any
// messages pgconn read ahead from the target.
func (ss *session) greet(w *bufio.Writer) error {
	var buf []byte
	buf = appendMessage(buf, &pgproto3.AuthenticationOk{})
	keys := make([]string, 0, len(ss.up.params))
	for k := range ss.up.params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		buf = appendMessage(buf, &pgproto3.ParameterStatus{Name: k, Value: ss.up.params[k]})
	}
	key, err := ss.srv.newCancelKey(ss)
	if err != nil {
		return err
	}
	ss.key = key
	secret := binary.BigEndian.AppendUint32(nil, key.secret)
	buf = appendMessage(buf, &pgproto3.BackendKeyData{ProcessID: key.pid, SecretKey: secret})
	buf = appendMessage(buf, &pgproto3.ReadyForQuery{TxStatus: ss.up.txStatus})
	for ss.up.frontend.ReadBufferLen() > 0 {
		msg, err := ss.up.frontend.Receive()
		if err != nil {
			ss.srv.dropCancelKey(key)
			return fmt.Errorf("read buffered target messages: %w", err)
		}
		buf = appendMessage(buf, msg)
	}
	if _, err := w.Write(buf); err != nil {
		ss.srv.dropCancelKey(key)
		return err
	}
	if err := w.Flush(); err != nil {
		ss.srv.dropCancelKey(key)
		return err
	}
	return nil
}

// newCancelKey hands out a random, unused BackendKeyData for ss.
func (s *Server) newCancelKey(ss *session) (cancelKey, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return cancelKey{}, fmt.Errorf("generate cancel key: %w", err)
		}
		k := cancelKey{pid: binary.BigEndian.Uint32(b[:4]) &^ (1 << 31), secret: binary.BigEndian.Uint32(b[4:])}
		s.mu.Lock()
		if _, taken := s.cancelMap[k]; !taken && k.pid != 0 {
			s.cancelMap[k] = ss
			s.mu.Unlock()
			return k, nil
		}
		s.mu.Unlock()
	}
}

func (s *Server) dropCancelKey(k cancelKey) {
	s.mu.Lock()
	delete(s.cancelMap, k)
	s.mu.Unlock()
}

// register makes ss reachable by Shutdown.
func (s *Server) register(t *tracked, ss *session) {
	t.mu.Lock()
	t.sess = ss
	t.mu.Unlock()
}

// forwardCancel maps a client's CancelRequest to its session and cancels the
// target's query. Plaintext cancel requests are accepted, as PostgreSQL does
// (libpq before 17 never encrypts them): they carry no credential, only the
// gateway's random key, and an unknown key is ignored without an answer.
func (s *Server) forwardCancel(log *slog.Logger, p startupPacket) {
	if len(p.cancelKey) != 4 {
		return
	}
	k := cancelKey{pid: p.cancelPID, secret: binary.BigEndian.Uint32(p.cancelKey)}
	s.mu.Lock()
	ss := s.cancelMap[k]
	s.mu.Unlock()
	if ss == nil {
		log.Debug("cancel request for an unknown session")
		return
	}
	if err := ss.up.cancel(ss.ctx); err != nil {
		ss.log.Warn("forward cancel request to target", "err", err)
		return
	}
	ss.log.Info("query cancelled by client")
}
