package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"

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
