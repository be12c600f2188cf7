package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gatectl/gatectl/pkg/audit"
	"github.com/gatectl/gatectl/pkg/identity"
	"github.com/gatectl/gatectl/pkg/policy"
	"github.com/gatectl/gatectl/pkg/policy/sqlrequest"
	pgproxy "github.com/gatectl/gatectl/pkg/proxy/postgres"
	"github.com/gatectl/gatectl/pkg/sqlclass"
)

// codeTokenExpired is the SQLSTATE (invalid_authorization_specification)
// that ends a session whose token expired.
const codeTokenExpired = "28000"

// codeNoGrant (insufficient_privilege) ends a session whose grant is gone.
const codeNoGrant = "42501"

// The session.end reasons of sessions that a Verdict's EndCode ends: the
// caller's token expired, or no grant covers the session any more (one
// removed from the policy, or past its expires date).
const (
	reasonTokenExpired = "token-expired"
	reasonGrantRemoved = "grant-removed"
)

// maxAuditText bounds the statement text kept in one audit event.
const maxAuditText = 8 << 10

// startPostgres starts the PostgreSQL listener unless it is "off".
func (g *Gateway) startPostgres() error {
	if g.cfg.Listen.Postgres == "off" {
		return nil
	}
	ln, err := net.Listen("tcp", g.cfg.Listen.Postgres)
	if err != nil {
		return fmt.Errorf("listen for PostgreSQL on %s: %w", g.cfg.Listen.Postgres, err)
	}
	g.track(ln)
	g.cfg.Listen.Postgres = ln.Addr().String()
	g.classifier = sqlclass.NewCache(8192)
	srv := &pgproxy.Server{
		Auth:           &pgAuth{g: g},
		TLSConfig:      g.tlsConfig,
		AllowPlaintext: isLoopbackAddr,
		MaxStartups:    g.cfg.Postgres.MaxStartups,
		Logger:         g.log.With("listener", "postgres"),
	}
	g.trackServer(srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, pgproxy.ErrServerClosed) {
			g.log.Error("PostgreSQL listener stopped", "err", err)
		}
	}()
	return nil
}

// isLoopbackAddr reports whether a client address is on loopback, where
// plaintext startup is allowed.
func isLoopbackAddr(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// pgAuth turns a PostgreSQL startup into a session: token → principal →
// grant → credential. Every step fails closed.
type pgAuth struct{ g *Gateway }

func (a *pgAuth) Authenticate(ctx context.Context, req pgproxy.AuthRequest) (*pgproxy.Session, error) {
	g := a.g
	pol := g.currentPolicy()
	if pol == nil {
		return nil, &pgproxy.AccessError{Msg: "the gateway has no live policy yet; try again shortly"}
	}
	// Fail closed: a session that cannot be audited does not start.
	if err := g.audit.Err(); err != nil {
		g.log.Error("refusing a PostgreSQL session: the audit log is failing", "err", err)
		return nil, &pgproxy.AccessError{Msg: "the gateway cannot write its audit log, so it accepts no sessions; an admin must check the gateway log"}
	}
	// The database name is the client's to choose before anything is
	// verified: events keep a bounded part of it (a target's name is
	// short).
	target := truncate(req.Database, maxEventTarget)
	detail := map[string]string{"via": "postgres", "remote": req.Remote.String(), "tls": strconv.FormatBool(req.TLS)}
	if req.Reason != "" {
		detail["reason"] = truncate(req.Reason, 1024)
	}
	if req.Token == "" {
		g.recordRefusal(audit.Event{Action: "auth.refuse", Decision: "deny", Target: target, Reason: "no token", PolicyCommit: pol.Commit, Detail: detail}, "postgres", detail["remote"])
		return nil, &pgproxy.AuthError{Msg: "authentication required: send your OIDC token as the password (PGPASSWORD=$(gatectl token))"}
	}
	pr, err := g.ident.Verify(ctx, pol, req.Token)
	if err != nil {
		reason := "token refused"
		var ae *identity.AuthError
		if errors.As(err, &ae) {
			reason = ae.Reason
		}
		detail["token"] = identity.Fingerprint(req.Token)
		g.recordRefusal(audit.Event{Action: "auth.refuse", Decision: "deny", Target: target, Reason: reason, PolicyCommit: pol.Commit, Detail: detail}, "postgres", detail["remote"])
		return nil, &pgproxy.AuthError{Msg: "authentication failed: " + reason}
	}
	detail["issuer"] = pr.Issuer
	g.record(audit.Event{Action: "auth.accept", Decision: "allow", Principal: pr.String(), Target: target, PolicyCommit: pol.Commit, Detail: detail})

	refuse := func(msg string) (*pgproxy.Session, error) {
		g.record(audit.Event{Action: "session.refuse", Decision: "deny", Principal: pr.String(), Target: target, Reason: msg, PolicyCommit: pol.Commit, Detail: detail})
		return nil, &pgproxy.AccessError{Msg: msg}
	}
	// unavailable is for what an admin must fix, not a policy decision.
	unavailable := func(msg string) (*pgproxy.Session, error) {
		g.record(audit.Event{Action: "session.refuse", Decision: "error", Principal: pr.String(), Target: target, Reason: msg, PolicyCommit: pol.Commit, Detail: detail})
		return nil, &pgproxy.UnavailableError{Msg: msg}
	}
	grant, err := pol.Grant(pr, req.Database, time.Now())
	if err != nil {
		return refuse(err.Error())
	}
	t := pol.Targets[req.Database]
	if t == nil || t.Kind != policy.TargetPostgres {
		return refuse(fmt.Sprintf("target %q is not a PostgreSQL target", req.Database))
	}
	cred, ok := t.Credentials[grant.Access]
	if !ok {
		return unavailable(fmt.Sprintf("target %q has no credential for %s access; an admin must add [credentials.%s] to targets/%s.toml", t.Name, grant.Access, grant.Access, t.Name))
	}
	password, err := g.secrets.resolve(cred.Password)
	if err != nil {
		g.log.Error("cannot resolve a target credential", "target", t.Name, "access", grant.Access.String(), "err", err)
		return unavailable(fmt.Sprintf("the gateway cannot use its credential for target %q; an admin must check the gateway's secrets (see the gateway log)", t.Name))
	}
	roots, err := g.secrets.targetRoots(t)
	if err != nil {
		g.log.Error("cannot load a target's CA certificates", "target", t.Name, "err", err)
		return unavailable(fmt.Sprintf("the gateway cannot read the CA certificates for target %q (tls_ca); an admin must check the file (see the gateway log)", t.Name))
	}
	database := t.Database
	if database == "" {
		database = t.Name
	}
	id := newSessionID()
	return &pgproxy.Session{
		ID: id, Principal: pr.String(), Target: t.Name, GrantID: grant.ID, Access: grant.Access.String(),
		Upstream: pgproxy.Upstream{
			Address: t.Address, Database: database, User: cred.User, Password: password,
			TLSMode: upstreamTLSMode(t), RootCAs: roots, AllowCleartextPassword: g.cfg.Postgres.AllowCleartextPassword,
			StatementCache: g.cfg.statementCache(),
		},
		Checker:  &pgChecker{g: g, principal: pr, target: t.Name},
		Observer: &pgObserver{g: g, commit: pol.Commit, principal: pr.String(), target: t.Name, reason: truncate(req.Reason, 1024)},
	}, nil
}

// targetRoots loads the target's tls_ca, or returns nil (the system roots)
// when it has none. It is read at every session, so a renewed CA file takes
// effect without a reload. Like a file: secret it must lie in a directory
// [secrets] files allows: the policy names it.
func (r secretRules) targetRoots(t *policy.Target) (*x509.CertPool, error) {
	if t.TLSCA == "" {
		return nil, nil
	}
	// The policy loader accepts only file: with an absolute path.
	path, ok := strings.CutPrefix(t.TLSCA, "file:")
	if !ok {
		return nil, fmt.Errorf("tls_ca %q is not file:PATH", t.TLSCA)
	}
	pem, err := r.readFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls_ca: %w", err)
	}
	pool := x509.NewCertPool()
	// Fail closed: a file without a certificate must not fall back to the
	// system roots.
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls_ca %s holds no PEM certificate", path)
	}
	return pool, nil
}

// upstreamTLSMode is the target's tls setting; by default plaintext only to
// a loopback target and verify-full anywhere else (fail closed).
func upstreamTLSMode(t *policy.Target) string {
	if t.TLS != "" {
		return t.TLS
	}
	host, _, err := net.SplitHostPort(t.Address)
	if err == nil {
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			return "disable"
		}
	}
	return "verify-full"
}

func newSessionID() string {
	var b [8]byte
	rand.Read(b[:])
	return "s-" + hex.EncodeToString(b[:])
}

// pgChecker decides statements for one session against the live policy.
// Verdicts are cached per statement text for the session; the cache is
// dropped when a new policy goes live and at least every verdictTTL, so
// grant expiry and revocation reach open sessions.
type pgChecker struct {
	g         *Gateway
	principal policy.Principal
	target    string

	mu       sync.Mutex
	pol      *policy.Policy
	until    time.Time
	verdicts map[string]pgproxy.Verdict
}

const (
	verdictTTL      = 30 * time.Second
	maxSessionCache = 1024
)

// The relay keeps sessions whose checker cannot decide without waiting off
// its event loop.
var _ pgproxy.QuickChecker = (*pgChecker)(nil)

// TryCheck decides without waiting, as the relay's event loop needs (see
// pgproxy.QuickChecker). Check never waits today: a statement an [[approve]]
// rule would hold is refused until approvals exist. When they do, a hold
// must make TryCheck return false, so that the session waits on its own
// goroutine.
func (c *pgChecker) TryCheck(sql string) (pgproxy.Verdict, bool) {
	if len(sql) > quickParseMax {
		// Parsing a long text can take the parser a while (a 32 KiB
		// expression, half a second), which would stall every session on
		// the event loop: unless its verdict is cached, the session moves
		// to its own goroutines, where Check runs.
		c.mu.Lock()
		_, ok := c.verdicts[sql]
		// A cache that Check would drop (a new policy, past its time)
		// does not count: Check would parse again.
		ok = ok && c.pol == c.g.currentPolicy() && time.Now().Before(c.until)
		c.mu.Unlock()
		if !ok {
			return pgproxy.Verdict{}, false
		}
	}
	return c.Check(context.Background(), sql), true
}

// quickParseMax is the longest statement text the event loop parses.
const quickParseMax = 4 << 10

func (c *pgChecker) Check(ctx context.Context, sql string) pgproxy.Verdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if exp := c.principal.Expires; !exp.IsZero() && !now.Before(exp) {
		// Fail closed: the token proved who the caller was until exp.
		return pgproxy.Verdict{EndCode: codeTokenExpired, EndReason: reasonTokenExpired, Message: fmt.Sprintf(
			"your token expired at %s; the session is closed: reconnect with a fresh token", exp.UTC().Format(time.RFC3339))}
	}
	pol := c.g.currentPolicy()
	if pol == nil {
		return pgproxy.Verdict{Message: "the gateway has no live policy; statement refused"}
	}
	// Fail closed: no statement runs unaudited.
	if c.g.audit.Err() != nil {
		return pgproxy.Verdict{Message: "the gateway cannot write its audit log; statement refused"}
	}
	if pol != c.pol || now.After(c.until) || c.verdicts == nil {
		c.pol, c.until = pol, now.Add(verdictTTL)
		c.verdicts = make(map[string]pgproxy.Verdict)
	}
	if v, ok := c.verdicts[sql]; ok {
		return v
	}
	v, grant := c.decide(pol, sql, now)
	// Only short texts are cached: a session must not make the gateway keep
	// megabytes of statement text per entry.
	if len(c.verdicts) < maxSessionCache && len(sql) <= sqlclass.MaxCachedLen {
		c.verdicts[sql] = v
		// A verdict must not outlive the grant it rests on.
		if grant != nil && !grant.Expires.IsZero() && grant.Expires.Before(c.until) {
			c.until = grant.Expires
		}
	}
	return v
}

// decide evaluates one statement; it also returns the grant the verdict
// rests on, if any.
func (c *pgChecker) decide(pol *policy.Policy, sql string, now time.Time) (pgproxy.Verdict, *policy.Grant) {
	if strings.HasPrefix(sql, "FUNCTION CALL ") {
		return pgproxy.Verdict{Tag: "FUNCTION CALL", Message: "the fast-path function call protocol is not allowed through the gateway; call the function in a SQL statement"}, nil
	}
	var req policy.Request
	res, err := c.g.classifier.Classify(sql)
	if err != nil {
		// Fail closed: what cannot be classified is never forwarded. The
		// policy denies a statement of no access level (Access 0), in a
		// message that names the grant like its other refusals, and ends
		// the session when the grant is gone.
		res = &sqlclass.Result{}
		req = policy.Request{Text: sql, Statements: []policy.Statement{{Why: err.Error()}}}
	} else if req, err = sqlrequest.FromResult(sql, res); err != nil {
		return pgproxy.Verdict{Message: "statement refused: " + err.Error()}, nil
	}
	tags := make([]string, len(req.Statements))
	for i, s := range req.Statements {
		tags[i] = s.Tag
	}
	v := pol.Evaluate(c.principal, c.target, req, now)
	out := pgproxy.Verdict{Tag: strings.Join(tags, ";"), Rule: v.Rule, PolicyCommit: pol.Commit}
	out.Cacheable = len(res.Statements) == 1 && plannedTags[res.Statements[0].Tag]
	for _, st := range res.Statements {
		out.DropsPrepared = out.DropsPrepared || dropsPrepared[st.Tag]
		out.ChangesAnalysis = out.ChangesAnalysis || changesAnalysis(st)
		out.Opaque = out.Opaque || st.Opaque
		out.CopyIn = out.CopyIn || st.CopyFromStdin
		if st.Tag == "PREPARE" && st.Prepared != "" {
			out.Prepares = append(out.Prepares, st.Prepared)
		}
		if st.Cursor != "" {
			out.Declares = append(out.Declares, st.Cursor)
			if st.CursorHold {
				out.Holds = append(out.Holds, st.Cursor)
			}
		}
		if st.Fetched != "" {
			out.Fetches = append(out.Fetches, st.Fetched)
		}
	}
	if v.Decision == policy.Deny && v.Grant == nil {
		// The grant is gone (removed or expired): no statement of the
		// session may run, not even a ROLLBACK, so the session ends, which
		// rolls back its transaction and releases its locks on the target.
		out.EndCode, out.EndReason = codeNoGrant, reasonGrantRemoved
		out.Message = v.Message + "; the session is closed (its open transaction is rolled back)"
		return out, nil
	}
	switch v.Decision {
	case policy.Allow:
		out.Allow = true
	case policy.Mask:
		// Masking of result rows is not built yet; the statement is allowed
		// and no mask rule is named as if it had been applied.
		out.Allow, out.Rule = true, ""
	case policy.Hold:
		out.Message = fmt.Sprintf("held by rule %q (%s): this statement needs an approval, and approvals are not available on this gateway yet, so it is refused", v.Rule, v.RulePos)
	default:
		out.Message = v.Message
	}
	return out, v.Grant
}

// plannedTags are the statements PostgreSQL plans, which the relay's
// statement cache may keep prepared on the target (Verdict.Cacheable).
var plannedTags = map[string]bool{"SELECT": true, "INSERT": true, "UPDATE": true, "DELETE": true, "MERGE": true}

// dropsPrepared are the statements that drop prepared statements
// (Verdict.DropsPrepared).
// DEALLOCATE of one name is not one: the client's names are never the
// cache's, and a DEALLOCATE of a cache name fails the next Bind renamed
// to it (26000), which marks the entry stale.
var dropsPrepared = map[string]bool{"DEALLOCATE ALL": true, "DISCARD ALL": true}

// changesAnalysis reports whether st may change how the target analyzes
// later statements (Verdict.ChangesAnalysis): a setting, or what a name
// stands for.
func changesAnalysis(st sqlclass.Statement) bool {
	switch {
	case st.Tag == "SET", st.Tag == "RESET", st.Tag == "DISCARD ALL",
		strings.HasPrefix(st.Tag, "CREATE "), strings.HasPrefix(st.Tag, "ALTER "), strings.HasPrefix(st.Tag, "DROP "):
		return true
	}
	for _, f := range st.Functions {
		if f == "set_config" || f == "pg_catalog.set_config" {
			return true
		}
	}
	return false
}

// pgObserver turns session events into audit events. It never blocks the
// relay beyond the audit log's bounded queue.
type pgObserver struct {
	g                 *Gateway
	commit            string
	principal, target string
	reason            string // the caller's --reason, if any
}

// sessionDetail is the Detail of the event that starts or refuses session s.
func sessionDetail(s pgproxy.SessionInfo) map[string]string {
	return map[string]string{
		"grant": s.GrantID, "access": s.Access, "remote": addrString(s.Remote), "tls": strconv.FormatBool(s.TLS), "application": s.ApplicationName,
	}
}

func (o *pgObserver) SessionStart(s pgproxy.SessionInfo) {
	d := sessionDetail(s)
	if o.reason != "" {
		d["reason"] = o.reason
	}
	o.g.record(audit.Event{Time: s.Start, Action: "session.start", Decision: "allow", Principal: s.Principal, Target: s.Target,
		Session: s.ID, PolicyCommit: o.commit, Reason: o.reason, Detail: d})
}

// TargetLoginFailed audits a session that ended before it started: the
// gateway could not log in to the target. The client was shown the
// session id, which finds this event.
func (o *pgObserver) TargetLoginFailed(s pgproxy.SessionInfo, reason string) {
	o.g.record(audit.Event{Time: s.Start, Action: "session.refuse", Decision: "error", Principal: s.Principal, Target: s.Target,
		Session: s.ID, PolicyCommit: o.commit, Reason: "gateway could not log in to the target: " + reason, Detail: sessionDetail(s)})
}

func (o *pgObserver) Statement(e pgproxy.StatementEvent) {
	// The relay's thread pays only for copying e: the audit log formats
	// the Detail entries when it seals the event.
	// The commit that decided, which may be newer than the session's.
	commit := e.Verdict.PolicyCommit
	if commit == "" {
		commit = o.commit
	}
	ev := audit.Event{Time: e.Start, Action: "statement", Principal: o.principal, Target: o.target, Session: e.SessionID, PolicyCommit: commit, Rule: e.Verdict.Rule,
		Details: newStatementDetail(e)}
	if e.Allowed {
		ev.Decision = "allow"
	} else {
		ev.Decision, ev.Reason = "deny", e.Verdict.Message
	}
	o.g.record(ev)
}

// newStatementDetail is the Detail of statement event e.
func newStatementDetail(e pgproxy.StatementEvent) *statementDetail {
	return &statementDetail{text: e.Text, kind: e.Kind, class: e.Verdict.Tag, tag: e.CommandTag, errorCode: e.ErrorCode, rows: e.Rows, duration: e.Duration,
		skipped: e.Allowed && !e.Executed && !e.Interrupted, interrupted: e.Interrupted}
}

// statementDetail is the Detail of a statement event: text, kind, class,
// rows and duration_us always, tag and error_code when the target sent
// them.
type statementDetail struct {
	text                  string
	kind                  pgproxy.StatementKind
	class, tag, errorCode string
	rows                  int64
	duration              time.Duration
	// skipped marks an allowed statement that did not run: the target
	// skipped it after an earlier error, or the session ended first.
	skipped bool
	// interrupted marks the statement in flight when the session ended:
	// it may have run in part.
	interrupted bool
}

func (d *statementDetail) AppendDetail(dst []audit.Field) []audit.Field {
	// In ascending key order, which saves the audit log a sort.
	dst = append(dst, audit.Field{Key: "class", Value: d.class},
		audit.Field{Key: "duration_us", Value: strconv.FormatInt(d.duration.Microseconds(), 10)})
	if d.errorCode != "" {
		dst = append(dst, audit.Field{Key: "error_code", Value: d.errorCode})
	}
	if d.skipped {
		dst = append(dst, audit.Field{Key: "executed", Value: "false"})
	}
	if d.interrupted {
		dst = append(dst, audit.Field{Key: "interrupted", Value: "true"})
	}
	dst = append(dst, audit.Field{Key: "kind", Value: d.kind.String()},
		audit.Field{Key: "rows", Value: strconv.FormatInt(d.rows, 10)})
	if d.tag != "" {
		dst = append(dst, audit.Field{Key: "tag", Value: d.tag})
	}
	return appendText(dst, d.text)
}

// appendText adds a statement's text to an event: all of it up to
// maxAuditText bytes. A longer one keeps its start and its end, so that
// padding at either end cannot hide what ran, with the length and the
// SHA-256 of the whole text, to match it with the text logged elsewhere.
func appendText(dst []audit.Field, text string) []audit.Field {
	if len(text) <= maxAuditText {
		return append(dst, audit.Field{Key: "text", Value: text})
	}
	half := maxAuditText / 2
	head := truncate(text, half)
	tail := text[runeStart(text, len(text)-half):]
	sum := sha256.Sum256([]byte(text))
	omitted := len(text) - len(head) - len(tail) + len("…") // truncate added one
	return append(dst,
		audit.Field{Key: "text", Value: head + "[" + strconv.Itoa(omitted) + " bytes omitted]…" + tail},
		audit.Field{Key: "text_bytes", Value: strconv.Itoa(len(text))},
		audit.Field{Key: "text_sha256", Value: hex.EncodeToString(sum[:])})
}

func (o *pgObserver) SessionEnd(s pgproxy.SessionStats) {
	o.g.record(audit.Event{Time: s.End, Action: "session.end", Decision: "allow", Principal: s.Principal, Target: s.Target,
		Session: s.ID, PolicyCommit: o.commit, Reason: s.Reason, Detail: map[string]string{
			"duration_ms": strconv.FormatInt(s.End.Sub(s.Start).Milliseconds(), 10),
			"bytes_in":    strconv.FormatInt(s.BytesIn, 10), "bytes_out": strconv.FormatInt(s.BytesOut, 10),
			"statements": strconv.FormatInt(s.Statements, 10), "refused": strconv.FormatInt(s.Refused, 10),
		}})
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// truncate cuts s to at most n bytes, on a character boundary, and marks
// the cut with "…".
// maxEventTarget bounds the target name of an event about a client that
// named a target the gateway may not have.
const maxEventTarget = 128

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:runeStart(s, n)] + "…"
}

// runeStart moves i back to the start of the UTF-8 character it is in.
func runeStart(s string, i int) int {
	for j := i; j > 0 && j > i-utf8.UTFMax; j-- {
		if utf8.RuneStart(s[j]) {
			return j
		}
	}
	return i
}
