package cmdutil

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/gatectl/gatectl/pkg/client"
	pgproxy "github.com/gatectl/gatectl/pkg/proxy/postgres"
)

// GatewayPG holds what is needed to open a PostgreSQL session through the
// gateway as the caller.
type GatewayPG struct {
	Addr  string // the gateway's PostgreSQL listener
	Token string
	CA    string
}

// GatewayPostgres finds the gateway's PostgreSQL listener and the caller's
// token.
func (f *Factory) GatewayPostgres(ctx context.Context) (*GatewayPG, error) {
	tok, err := f.Token()
	if err != nil {
		return nil, err
	}
	c, err := f.client(tok)
	if err != nil {
		return nil, err
	}
	addr, err := c.PostgresEndpoint(ctx)
	if err != nil {
		return nil, err
	}
	return &GatewayPG{Addr: addr, Token: tok, CA: f.Getenv("GATECTL_CA")}, nil
}

// MaxReason is the longest --reason accepted: it travels in the
// PostgreSQL startup packet, which PostgreSQL and the gateway cap at 10000
// bytes with everything else in it.
const MaxReason = 4096

// CheckReason refuses a --reason that cannot be sent.
func CheckReason(reason string) error {
	if len(reason) > MaxReason {
		return Usagef("--reason is %d bytes; at most %d fit (it travels in the PostgreSQL startup packet): give the ticket or a summary", len(reason), MaxReason)
	}
	return nil
}

// cancelWait bounds how long a cancelled statement may take to end.
const cancelWait = 5 * time.Second

// Config is a pgconn config for target through the gateway, over TLS
// verified against the system roots and GATECTL_CA.
func (g *GatewayPG) Config(target, application, reason string) (*pgconn.Config, error) {
	host, port, err := net.SplitHostPort(g.Addr)
	if err != nil {
		return nil, err
	}
	user := os.Getenv("USER")
	if user == "" {
		user = "gatectl"
	}
	// Built from explicit keywords: ParseConfig would also read PG*
	// variables meant for other servers.
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%s sslmode=disable", host, port))
	if err != nil {
		return nil, err
	}
	cfg.Database, cfg.User, cfg.Password = target, user, g.Token
	// UTF8 whatever the target's default: results are printed and JSON
	// encoded as UTF-8, and statement text is sent as it.
	cfg.RuntimeParams = map[string]string{"application_name": application, "client_encoding": "UTF8"}
	if reason != "" {
		cfg.RuntimeParams[pgproxy.ReasonParam] = reason
	}
	cfg.Fallbacks = nil
	// A cancelled context (Ctrl-C) cancels the running statement on the
	// target, through the gateway, and waits for the target to say so; the
	// connection is cut only if that takes longer than cancelWait.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: cancelWait}
	}
	// The gateway closes a session on a message over its size limit while
	// the rest of it is still being sent: read the gateway's error rather
	// than report the reset of the connection.
	cfg.AfterNetConnect = func(_ context.Context, _ *pgconn.Config, c net.Conn) (net.Conn, error) {
		return client.PostgresConn(c), nil
	}
	cfg.TLSConfig, err = client.TLSConfig(g.CA, host)
	return cfg, err
}

// PGError maps an error from a PostgreSQL session through the gateway to a
// typed error with the right exit code: the gateway's refusals are 42501
// with pgproxy.RefusalHint (exit 3), its authentication failures
// 28P01/28000 (exit 4). The target's own errors, its 42501 permission
// errors included, are errors (exit 1) with their SQLSTATE.
func PGError(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		var unknownCA x509.UnknownAuthorityError
		if errors.As(err, &unknownCA) {
			return fmt.Errorf("%w\nhint: the gateway's certificate is not signed by a CA this machine trusts: set GATECTL_CA to the gateway's CA file (a --dev gateway writes DATA/ca.pem)", err)
		}
		return err
	}
	msg := pe.Message
	if pe.Detail != "" {
		msg += "\n" + pe.Detail
	}
	switch {
	case pe.Code == "42501" && pe.Hint == pgproxy.RefusalHint:
		return &DeniedError{Msg: msg}
	case pe.Code == "28P01" || pe.Code == "28000":
		if pe.Hint != "" {
			msg += "\nhint: " + pe.Hint
		}
		return &AuthError{Msg: msg}
	case pe.Code == "42501":
		msg = "the target refused: " + msg
		if pe.Hint == "" {
			pe.Hint = "the gateway allowed this, but the role it uses on the target lacks the privilege; ask the target's owner"
		}
	}
	if pe.Hint != "" {
		msg += "\nhint: " + pe.Hint
	}
	return fmt.Errorf("%s (SQLSTATE %s)", msg, pe.Code)
}
