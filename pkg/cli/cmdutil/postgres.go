package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/jackc/pgx/v5/pgconn"

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
	cfg.RuntimeParams = map[string]string{"application_name": application}
	if reason != "" {
		cfg.RuntimeParams[pgproxy.ReasonParam] = reason
	}
	cfg.Fallbacks = nil
	cfg.TLSConfig, err = client.TLSConfig(g.CA, host)
	return cfg, err
}

// PGError maps an error from a PostgreSQL session through the gateway to a
// typed error with the right exit code: the gateway's refusals are 42501,
// its authentication failures 28P01/28000.
func PGError(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	msg := pe.Message
	if pe.Detail != "" {
		msg += "\n" + pe.Detail
	}
	if pe.Hint != "" {
		msg += "\nhint: " + pe.Hint
	}
	switch pe.Code {
	case "42501":
		return &DeniedError{Msg: msg}
	case "28P01", "28000":
		return &AuthError{Msg: msg}
	}
	return fmt.Errorf("%s (SQLSTATE %s)", msg, pe.Code)
}
