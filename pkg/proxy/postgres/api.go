package postgres

import (
	"context"
	"crypto/x509"
	"net"
	"time"
)

// Authenticator turns a client's startup into a session plan. It is called
// only after TLS (or plaintext the Server allows) and the client's password
// message, and before anything is dialed upstream. A returned *AuthError,
// *AccessError or *UnavailableError is shown to the client with its
// message; any other error is shown as a generic gateway failure and
// logged.
type Authenticator interface {
	Authenticate(ctx context.Context, req AuthRequest) (*Session, error)
}

// ReasonParam is the startup parameter in which gatectl's clients send the
// caller's reason for a session. It is not forwarded to the target.
const ReasonParam = "gatectl.reason"

// AuthRequest is what a client presented at startup.
type AuthRequest struct {
	// Token is the password the client sent: an OIDC token. It must never be
	// logged.
	Token string
	// Database is the startup "database" parameter: the target name.
	Database string
	// User is the startup "user" parameter; informational only.
	User            string
	ApplicationName string
	// Reason is the caller's stated reason for the session (`gatectl exec
	// --reason`), from the startup parameter ReasonParam; it is for audit
	// and never reaches the target.
	Reason string
	Remote net.Addr
	// TLS reports whether the client connection is encrypted.
	TLS bool
}

// Session is the plan for one client connection, built by the Authenticator.
type Session struct {
	ID, Principal, Target, GrantID, Access string

	Upstream Upstream
	// Checker decides every statement: simple Query text, Parse text, and
	// "FUNCTION CALL <oid>" for fast-path function calls. Required: a Session
	// without a Checker is refused (fail closed).
	Checker StatementChecker
	// Observer receives audit events; nil means none.
	Observer Observer
}

// Upstream is where and as whom the gateway connects for a Session.
type Upstream struct {
	Address  string // host:port
	Database string
	User     string
	Password string // never logged, never sent to the client
	// TLSMode is "disable", "require" (encrypt, do not verify) or
	// "verify-full" (verify the chain against RootCAs and the host name).
	TLSMode string
	// AllowCleartextPassword lets the gateway answer a target's request for
	// the cleartext password over verified TLS (verify-full). Without it,
	// and always in the other modes, such a target is refused before the
	// password is sent (fail closed):
	// the policy chooses a target's address, and a server there that asks
	// for the password in clear would learn it; SCRAM and md5 never send it.
	AllowCleartextPassword bool
	// RootCAs verifies the target's certificate in verify-full mode; nil means
	// the system roots.
	RootCAs *x509.CertPool
	// StatementCache is how many texts of the client's unnamed statement
	// the gateway keeps prepared on the target, so that a repeated
	// one-shot query is parsed and planned once (see stmtCache); 0 turns
	// the cache off.
	StatementCache int
}

// StatementChecker decides one statement. Check may block (a hold waiting for
// an approval); ctx is cancelled when the session ends. While the
// session's client_encoding is not UTF8, sql is the statement rendered as
// UTF-8 with the tokens the target reads (see StatementEvent.Text); the
// target gets the client's bytes.
type StatementChecker interface {
	Check(ctx context.Context, sql string) Verdict
}

// QuickChecker is a StatementChecker that can also decide without waiting.
// Sessions on the event loop, which relays many sessions on one thread, call
// only TryCheck: it returns the verdict and true when no waiting is needed,
// and false when deciding must wait (a hold); the session then moves to its
// goroutines and the same statement goes to Check there, so a wait stalls
// only its own session. Sessions whose checker is not a QuickChecker never
// use the event loop.
type QuickChecker interface {
	StatementChecker
	TryCheck(sql string) (Verdict, bool)
}

// Verdict is a StatementChecker's decision.
type Verdict struct {
	Allow bool
	// Message is shown to the client on refusal.
	Message string
	// Tag is the statement's class (e.g. "SELECT", "DROP"), for audit.
	Tag string
	// Rule names the rule that decided, for audit.
	Rule string
	// CopyIn is set when the statement text starts a COPY FROM STDIN.
	// The relay needs it to follow the target through copy-in mode, where
	// the target ignores Syncs: without it, a client's Sync sent during
	// the copy would put the gateway one answer behind the target.
	CopyIn bool
	// Prepares names the prepared statements that SQL PREPARE in the text
	// creates. They share the namespace of the protocol's Parse, so the
	// relay forgets its own record of those names: a later Bind of one
	// would run the PREPAREd text, not the one it recorded.
	Prepares []string
	// Declares names the cursors that SQL DECLARE in the text opens. They
	// share the namespace of the protocol's portals, so the relay records
	// them as portals of this text: an Execute of one is audited with the
	// DECLARE that opened it.
	Declares []string
	// Holds names those of Declares that are WITH HOLD: they outlive
	// their transaction.
	Holds []string
	// Fetches names the cursors that SQL FETCH or MOVE in the text reads.
	// A portal of one of those names that a Bind made would run a
	// statement this text does not show, unchecked and unaudited, so the
	// relay refuses it (see session.fetchesBoundPortal).
	Fetches []string
	// Cacheable is set for a text of one SELECT, INSERT, UPDATE, DELETE or
	// MERGE: the statements PostgreSQL plans, which the statement cache
	// may keep prepared on the target.
	Cacheable bool
	// DropsPrepared is set when the text drops every prepared statement
	// (DEALLOCATE ALL, DISCARD ALL): the statement cache forgets its own.
	// ChangesAnalysis is set when the text may change how the target
	// analyzes later statements: a setting (SET, RESET, DISCARD ALL,
	// set_config: TimeZone or DateStyle in a literal) or what a name
	// stands for (CREATE, ALTER, DROP: a temporary table that shadows
	// another): the statement cache prepares its texts afresh. Opaque
	// is set when the text runs SQL the checker cannot see (DO, CALL, a
	// user's function), which could replace a statement the cache
	// prepared: the session's cache is turned off.
	DropsPrepared, ChangesAnalysis, Opaque bool
	// PolicyCommit is the policy commit that decided, for audit.
	PolicyCommit string
	// EndCode, when set, ends the session: the client gets FATAL with this
	// SQLSTATE and Message instead of a refusal of the one statement, for
	// a reason no later statement of the session can get past (the
	// caller's token expired).
	EndCode string
	// EndReason, with EndCode, says why the session ends, in
	// SessionStats.Reason ("token-expired", "grant-removed"); "refused"
	// when empty.
	EndReason string
}

// Observer receives a session's audit events. Its methods are called on the
// session's relay goroutines or on the event loop, which relays other
// sessions too, and must not block: hand the event to a buffered writer and
// return.
type Observer interface {
	SessionStart(SessionInfo)
	Statement(StatementEvent)
	SessionEnd(SessionStats)
}

// LoginFailureObserver is an Observer that is also told when the gateway
// authenticated a client but could not log in to its target, so that the
// session id the client is shown can be found. reason says why, as the
// client is told; it holds no credential.
type LoginFailureObserver interface {
	TargetLoginFailed(info SessionInfo, reason string)
}

// SessionInfo describes a session once the target accepted the gateway's login.
type SessionInfo struct {
	ID, Principal, Target, GrantID, Access string
	Remote                                 net.Addr
	TLS                                    bool
	ApplicationName                        string
	Start                                  time.Time
}

// StatementKind says which protocol path carried a statement.
type StatementKind uint8

const (
	// KindQuery is a simple-protocol Query message (possibly several statements).
	KindQuery StatementKind = iota + 1
	// KindExecute is an extended-protocol Execute of a parsed statement.
	KindExecute
	// KindFunctionCall is a fast-path FunctionCall message.
	KindFunctionCall
	// KindParse is a refused extended-protocol Parse: it never executes.
	KindParse
)

// String returns the kind's lower-case name.
func (k StatementKind) String() string {
	switch k {
	case KindQuery:
		return "query"
	case KindExecute:
		return "execute"
	case KindFunctionCall:
		return "function-call"
	case KindParse:
		return "parse"
	}
	return "unknown"
}

// StatementEvent is one statement cycle: a simple Query until ReadyForQuery,
// an Execute until its completion, a FunctionCall, or a refused Parse.
type StatementEvent struct {
	SessionID string
	Kind      StatementKind
	// Text is the statement text as the client sent it (for a function call,
	// "FUNCTION CALL <oid>"), rendered as UTF-8 when the session's
	// client_encoding is another (see pgenc.Converter): the text the
	// checker saw. Strings are immutable: the event may be kept.
	Text string
	// Allowed is the checker's decision; Verdict has its details.
	Allowed bool
	Verdict Verdict
	// CommandTag is the target's command tag(s) without row counts, joined
	// with ";" for multi-statement queries (e.g. "BEGIN;INSERT;COMMIT").
	CommandTag string
	// Rows is the sum of the row counts in the target's CommandComplete
	// tags; for a tag without a count (SHOW, EXPLAIN, CALL), an Execute
	// that its row limit suspended, or a statement that failed part way,
	// the rows the target returned (DataRows) count instead.
	Rows int64
	// ErrorCode is the SQLSTATE the target answered with, empty on success.
	ErrorCode string
	// Executed is false when the target skipped the statement (an earlier
	// error in the same pipeline) or the session ended before it completed.
	Executed bool
	// Interrupted marks the statement the target was running, or was
	// about to run, when the session ended (the client went away, the
	// target connection was lost, a shutdown): it may have run in part,
	// and Rows counts the rows that reached the gateway.
	Interrupted bool
	Start       time.Time
	Duration    time.Duration
}

// SessionStats is reported once when a session ends.
type SessionStats struct {
	SessionInfo
	End time.Time
	// BytesIn counts the bytes of the protocol messages read from the
	// client after its startup and password; BytesOut those of the
	// messages read from the target for it. Neither counts what the
	// gateway itself sends (a refusal's BindComplete it drops, a FATAL it
	// ends the session with): they measure the traffic between client and
	// target, not the bytes on the client's socket.
	BytesIn, BytesOut int64
	// Statements counts the session's statement events (Observer.Statement):
	// each simple Query, each Execute, each refused Parse, whether the
	// target ran it or not; Refused those the checker refused. A refused
	// statement counts once, at its Parse: an Execute of it that the
	// target skipped is no event (one it ran raised the refusal again, in
	// a later pipeline step, and is).
	Statements int64
	Refused    int64
	// Reason says how the session ended: "client-terminate",
	// "client-disconnect", "target-lost", "message-too-large", "shutdown",
	// "protocol-error" (the client broke the protocol, or sent a message
	// type the gateway does not relay), "refused" (a refusal that could
	// not be answered in the protocol's flow), or the EndReason of the
	// Verdict that ended it.
	Reason string
}

// AuthError is an authentication failure (bad, expired or missing token). It
// is sent to the client as FATAL SQLSTATE 28P01 with Msg.
type AuthError struct{ Msg string }

func (e *AuthError) Error() string { return e.Msg }

// RefusalHint is the HINT of every refusal by the gateway (SQLSTATE 42501):
// a statement its checker refused, a missing or inactive grant, a setting
// that would defeat the checks. The target's own permission errors share
// the SQLSTATE but not the hint, so a client such as `gatectl exec` can tell
// a refusal by policy from a refusal by the target.
const RefusalHint = "refused by the gatectl gateway, not by the target; `gatectl targets` lists your grants, and the policy repository holds the rules"

// UnavailableError says that the gateway cannot serve the target it was
// asked for through no fault of the client: a credential or CA file it
// cannot load, a target without a credential for the grant's level. It is
// sent as FATAL SQLSTATE 08004 with Msg and no RefusalHint, so clients do
// not report it as a policy decision. Msg must not contain a secret.
type UnavailableError struct{ Msg string }

func (e *UnavailableError) Error() string { return e.Msg }

// AccessError is an authorization failure (no grant for the target, inactive
// grant). It is sent to the client as FATAL SQLSTATE 42501 with Msg.
type AccessError struct{ Msg string }

func (e *AccessError) Error() string { return e.Msg }
