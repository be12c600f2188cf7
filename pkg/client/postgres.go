package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/gatectl/gatectl/pkg/api"
)

// Endpoints asks the gateway where its native listeners are.
func (c *Client) Endpoints(ctx context.Context) (api.Endpoints, error) {
	var e api.Endpoints
	err := c.Do(ctx, http.MethodGet, "/v1/endpoints", nil, nil, &e)
	return e, err
}

// PostgresEndpoint is the gateway's PostgreSQL listener, with an error that
// says what to do when it is off.
func (c *Client) PostgresEndpoint(ctx context.Context) (string, error) {
	e, err := c.Endpoints(ctx)
	if err != nil {
		return "", err
	}
	if e.Postgres == "" {
		return "", fmt.Errorf("the gateway at %s has its PostgreSQL listener off (--listen-postgres)", c.base.Redacted())
	}
	host, port, err := net.SplitHostPort(e.Postgres)
	if err != nil {
		return "", fmt.Errorf("gateway PostgreSQL endpoint %q: %w", e.Postgres, err)
	}
	// A gateway listening on all interfaces is reached at the API's host.
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = c.base.Hostname()
	}
	return net.JoinHostPort(host, port), nil
}

// TLSConfig is the TLS configuration for talking to the gateway's native
// listeners: system roots plus the CA file (GATECTL_CA), verifying host.
func TLSConfig(caFile, host string) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read GATECTL_CA: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("GATECTL_CA %s holds no PEM certificate", caFile)
		}
	}
	return &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}, nil
}

// PostgresConn wraps conn, a connection to the gateway's PostgreSQL
// listener (after TLS), so that an error the gateway sends as it closes the
// connection is read rather than hidden by a reset.
//
// The gateway answers a message over its size limit with a FATAL error and
// closes while the client is still sending the rest of that message; the
// client's write then fails with ECONNRESET (or EPIPE) before it has read
// the error. As libpq does, a write that fails so is reported as done and
// later writes are dropped, so that the caller goes on to read what the
// gateway sent; once that is read, the read returns the write's error.
func PostgresConn(conn net.Conn) net.Conn { return &postgresConn{Conn: conn} }

type postgresConn struct {
	net.Conn
	writeErr atomic.Pointer[error] // the write the gateway's close cut short
}

func (c *postgresConn) Write(p []byte) (int, error) {
	if c.writeErr.Load() != nil {
		return len(p), nil
	}
	n, err := c.Conn.Write(p)
	if err != nil && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		c.writeErr.CompareAndSwap(nil, &err)
		return len(p), nil
	}
	return n, err
}

func (c *postgresConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		if werr := c.writeErr.Load(); werr != nil {
			return n, *werr
		}
	}
	return n, err
}
