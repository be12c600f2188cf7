package postgres

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatectl/gatectl/pkg/pgenc"
)

// upstreamConnectTimeout bounds dialing and logging in to a target.
const upstreamConnectTimeout = 30 * time.Second

// forwardedParams are the client startup parameters passed on to the target.
// Everything else is dropped (fail closed): "options" could set role or
// session_authorization, "replication" would open a replication connection,
// and "search_path" could put a user's function in front of a built-in one
// that the classifier takes for the built-in.
var forwardedParams = map[string]bool{
	"application_name":   true,
	"client_encoding":    true,
	"datestyle":          true,
	"intervalstyle":      true,
	"timezone":           true,
	"extra_float_digits": true,
}

// unsupportedStartup says why the gateway refuses a startup packet with
// params, or "". Most parameters it does not pass on (forwardedParams) are
// dropped quietly, but two change what the client gets so much that
// dropping them would mislead: a replication connection would be an
// ordinary session, and startup options (PGOPTIONS, -c name=value) would
// seem set and not be.
func unsupportedStartup(params map[string]string) string {
	if v, ok := params["replication"]; ok && !falseBool(v) {
		return "replication connections are not supported through the gateway; connect to the target directly for replication or pg_basebackup"
	}
	if strings.TrimSpace(params["options"]) != "" {
		return "startup options (PGOPTIONS, options=-c …) are not passed through the gateway, which could not check them; unset them and SET the parameters after connecting"
	}
	return ""
}

// falseBool reports whether v is false as PostgreSQL reads a boolean
// parameter: false, no, off, 0, or an unambiguous prefix of them.
func falseBool(v string) bool {
	v = strings.ToLower(strings.TrimSpace(v))
	switch {
	case v == "0":
		return true
	case len(v) >= 1 && (strings.HasPrefix("false", v) || strings.HasPrefix("no", v)):
		return true
	case len(v) >= 2 && strings.HasPrefix("off", v):
		return true
	}
	return false
}

// pinnedParams are set on every target connection, over any database or role
// default, because the classifier parses statements as PostgreSQL does with
// these values: with standard_conforming_strings off, the target would read
// backslashes in plain string literals as escapes where the parser did not,
// and a statement the checker saw as one SELECT could run as more.
var pinnedParams = map[string]string{
	"standard_conforming_strings": "on",
}

// unsafeParam reports why a parameter value the target reports (at login or
// after a SET) breaks the classifier's reading of statements, or "".
func unsafeParam(name, value string) string {
	switch strings.ToLower(name) {
	case "standard_conforming_strings":
		if !strings.EqualFold(value, "on") {
			return "standard_conforming_strings must stay on through the gateway"
		}
	case "client_encoding":
		if !pgenc.Safe(value) {
			return "client_encoding " + value + " is not allowed through the gateway: in it a multibyte character can hide a quote or a backslash from the gateway's parser; use UTF8"
		}
	}
	return ""
}

// cleartextRefused is how pgconn reports a refused request for the
// cleartext password (see RequireAuth in upstreamConfig).
const cleartextRefused = "server requested password authentication"

// upstreamConn is a logged-in target connection taken over from pgconn.
type upstreamConn struct {
	conn       net.Conn
	params     map[string]string
	txStatus   byte
	frontend   *pgproto3.Frontend // holds bytes pgconn read ahead; drain first
	cancelAddr string
	tlsConfig  *tls.Config // nil when the target connection is plaintext
	pid        uint32
	secretKey  []byte
}

// upstreamConfig builds the pgconn configuration for u. It never reads the
// client's parameters beyond forwardedParams, nor lets libpq environment
// variables of the gateway's process change how it connects. Without TLS it
// refuses a target's request for the cleartext password.
func upstreamConfig(u Upstream, client map[string]string) (*pgconn.Config, error) {
	host, portText, err := net.SplitHostPort(u.Address)
	if err != nil {
		return nil, fmt.Errorf("target address %q: %w", u.Address, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("target address %q: invalid port", u.Address)
	}
	// ParseConfig is the only way to get a usable Config; every field it may
	// have taken from the environment or a passfile is overwritten below.
	cfg, err := pgconn.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("base upstream config: %w", err)
	}
	cfg.Host, cfg.Port = host, uint16(port)
	cfg.Database, cfg.User, cfg.Password = u.Database, u.User, u.Password
	cfg.Fallbacks = nil
	cfg.ValidateConnect, cfg.AfterConnect = nil, nil
	cfg.SSLNegotiation = ""
	cfg.MinProtocolVersion, cfg.MaxProtocolVersion = "3.0", "3.0"
	// The libpq defaults, not whatever PGCHANNELBINDING or PGSSLCERTMODE say:
	// the gateway presents no client certificate.
	cfg.ChannelBinding, cfg.SSLCertMode = "prefer", "allow"
	// Accept every authentication method the target asks for, whatever
	// PGREQUIREAUTH says, except the cleartext password (below).
	cfg.RequireAuth = ""
	switch u.TLSMode {
	case "disable":
		cfg.TLSConfig = nil
		// Fail closed: a target (or anyone in the path) asking for the
		// cleartext password over an unencrypted connection is refused
		// before the password is sent. md5 and SCRAM never send it.
		cfg.RequireAuth = "!password"
	case "require":
		// Encrypt without verifying, as libpq's sslmode=require does.
		cfg.TLSConfig = &tls.Config{InsecureSkipVerify: true, ServerName: host, MinVersion: tls.VersionTLS12}
	case "verify-full":
		cfg.TLSConfig = &tls.Config{RootCAs: u.RootCAs, ServerName: host, MinVersion: tls.VersionTLS12}
	default:
		// Fail closed: an unknown mode must not silently mean plaintext.
		return nil, fmt.Errorf("target TLS mode %q is not one of disable, require, verify-full", u.TLSMode)
	}
	if !u.AllowCleartextPassword || u.TLSMode != "verify-full" {
		// Even over TLS: the server at the target's address, which the
		// policy chose, would read the password; and over TLS that is not
		// verified, so would anyone in the path.
		cfg.RequireAuth = "!password"
	}
	dial := cfg.DialFunc
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return newSockConn(c), nil
	}
	cfg.RuntimeParams = make(map[string]string, len(client)+len(pinnedParams))
	for k, v := range client {
		if forwardedParams[strings.ToLower(k)] {
			if why := unsafeParam(k, v); why != "" {
				return nil, refusal(why)
			}
			cfg.RuntimeParams[k] = v
		}
	}
	for k, v := range pinnedParams {
		cfg.RuntimeParams[k] = v
	}
	return cfg, nil
}

// loginError is a failed login to the target. Its message never holds the
// password.
type loginError struct {
	msg string
	// code is the SQLSTATE of the target's refusal of the login (its
	// credential, database or pg_hba.conf); empty when it gave none.
	code string
	// answered is set when the target answered but the login failed
	// without a SQLSTATE: TLS, or an authentication method the gateway
	// refuses. The client is not told which (see the gateway log).
	answered bool
}

// hint says what to do about a failed login, for the client.
func (e *loginError) hint() string {
	switch {
	case e.code == "" && e.answered:
		return "the target answered, but the gateway could not complete its login there; the gateway's log has the cause, for the gateway's operator"
	case e.code == "":
		return "the target did not answer (down or unreachable); try again later"
	case e.code == "28P01" || e.code == "28000":
		return "the target refused the gateway's login; ask the target's owner to check the gateway's credential"
	case e.code == "53300" || e.code == "57P03" || e.code == "53000":
		return "the target is at its connection limit or not accepting connections yet; try again later"
	case e.code == "3D000":
		return "the target's database does not exist; ask the policy's owner to check the target's database"
	}
	return "the target refused the gateway's login (SQLSTATE " + e.code + "); the gateway's log has the target's message"
}

func (e *loginError) Error() string { return e.msg }

// unreachable reports whether err, of a failed login, means the target
// did not answer: no connection, or no answer in time.
func unreachable(err error) bool {
	if oe := (*net.OpError)(nil); errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}

// dialUpstream logs in to the target with the session's credential and takes
// the connection over. Errors never contain the password.
func dialUpstream(ctx context.Context, u Upstream, client map[string]string) (*upstreamConn, error) {
	cfg, err := upstreamConfig(u, client)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, upstreamConnectTimeout)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		msg := redact(err.Error(), u.Password)
		switch {
		case cfg.TLSConfig == nil && strings.Contains(msg, cleartextRefused):
			msg += "; the gateway never sends a password unencrypted: set the target's TLS mode to require or verify-full, or use scram-sha-256 in its pg_hba.conf"
		case strings.Contains(msg, cleartextRefused):
			msg += "; the gateway sends a password in clear only over verified TLS (the target's tls = \"verify-full\") and with allow_cleartext_password = true in gateway.toml [postgres]; or use scram-sha-256 in the target's pg_hba.conf"
		}
		le := &loginError{msg: msg}
		if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) {
			le.code = pe.Code
		} else {
			le.answered = !unreachable(err)
		}
		return nil, le
	}
	// pgconn may still have a background read in progress (it starts one
	// when a write of the login is slow, which a loaded machine makes
	// common): once the connection is taken over, that read would swallow
	// the target's first answer, and the session would wait for it for
	// ever. SyncConn stops it, with a ping only when it has to.
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(context.Background())
		return nil, fmt.Errorf("take over target connection: %w", err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(context.Background())
		return nil, fmt.Errorf("take over target connection: %w", err)
	}
	// A database or role default the target applied at login is checked as
	// a client's startup value is (ALTER DATABASE … SET client_encoding).
	for k, v := range hc.ParameterStatuses {
		if why := unsafeParam(k, v); why != "" {
			hc.Conn.Close()
			return nil, refusal(why + " (the target's default for this database or role; an admin must change it)")
		}
	}
	return &upstreamConn{
		conn:       hc.Conn,
		params:     hc.ParameterStatuses,
		txStatus:   hc.TxStatus,
		frontend:   hc.Frontend,
		cancelAddr: hc.Conn.RemoteAddr().String(),
		tlsConfig:  hc.TLSConfig,
		pid:        hc.PID,
		secretKey:  hc.SecretKey,
	}, nil
}

// redact removes secret from text; a defence in depth for error strings of
// libraries that handled the secret.
func redact(text, secret string) string {
	if secret == "" {
		return text
	}
	return strings.ReplaceAll(text, secret, "[redacted]")
}

// cancel sends a CancelRequest for this connection to the target, over TLS
// when the session's connection uses TLS.
func (u *upstreamConn) cancel(ctx context.Context) error {
	ctx, stop := context.WithTimeout(ctx, upstreamConnectTimeout)
	defer stop()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.cancelAddr)
	if err != nil {
		return fmt.Errorf("dial target for cancel: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if u.tlsConfig != nil {
		var req [8]byte
		binary.BigEndian.PutUint32(req[0:], 8)
		binary.BigEndian.PutUint32(req[4:], codeSSLRequest)
		if _, err := conn.Write(req[:]); err != nil {
			return fmt.Errorf("send SSLRequest for cancel: %w", err)
		}
		var answer [1]byte
		if _, err := io.ReadFull(conn, answer[:]); err != nil {
			return fmt.Errorf("read SSLRequest answer for cancel: %w", err)
		}
		if answer[0] != 'S' {
			return errors.New("target refused TLS for the cancel request")
		}
		tc := tls.Client(conn, u.tlsConfig.Clone())
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake for cancel: %w", err)
		}
		conn = tc
		defer tc.Close()
	}
	msg, err := (&pgproto3.CancelRequest{ProcessID: u.pid, SecretKey: u.secretKey}).Encode(nil)
	if err != nil {
		return fmt.Errorf("encode cancel request: %w", err)
	}
	if _, err := conn.Write(msg); err != nil {
		return fmt.Errorf("send cancel request: %w", err)
	}
	// The server closes the connection once it has processed the request.
	_, _ = io.Copy(io.Discard, conn)
	return nil
}
