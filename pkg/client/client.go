// Package client is the CLI's client for the gateway's HTTPS API.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gatectl/gatectl/pkg/api"
)

// Client calls one gateway.
type Client struct {
	base *url.URL
	http *http.Client
	// stream is http without its Timeout, which would cut a stream that
	// is meant to stay open (audit tail -f); only its headers are bounded.
	stream *http.Client
	token  string
}

// Options configures New.
type Options struct {
	// Gateway is the API URL, e.g. https://127.0.0.1:8443.
	Gateway string
	// CAFile is a PEM file of CAs trusted in addition to the system roots
	// (GATECTL_CA).
	CAFile string
	// Token is the caller's OIDC token; empty for unauthenticated calls.
	Token string
	// Timeout bounds a call, and the wait for a stream's response
	// headers; 0 means DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout is Options.Timeout when it is 0.
const DefaultTimeout = 60 * time.Second

// New returns a client for the gateway.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.Gateway)
	// Only https: every call but a few carries the caller's token, which
	// must never cross the network in the clear. The gateway serves its
	// API over TLS only, --dev included.
	if err != nil || u.Host == "" || u.Scheme != "https" {
		return nil, fmt.Errorf("gateway URL %q is not an https:// URL (the gateway's API is TLS only, so your token is never sent in the clear); set --gateway or GATECTL_GATEWAY", redactURL(opts.Gateway))
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if opts.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read GATECTL_CA: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("GATECTL_CA %s holds no PEM certificate", opts.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tr.ResponseHeaderTimeout = timeout
	hc := &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: refuseDowngrade}
	stream := &http.Client{Transport: tr, CheckRedirect: refuseDowngrade}
	return &Client{base: u, http: hc, stream: stream, token: opts.Token}, nil
}

// refuseDowngrade stops a redirect away from https: net/http would send
// the Authorization header along to the same host over plain http.
func refuseDowngrade(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != "https" {
		return fmt.Errorf("the gateway redirected to %s, which is not https; not following it with your token", req.URL.Redacted())
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// redactURL hides a password in a URL that is about to be printed.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return s
}

// Error is an error answer from the gateway.
type Error struct {
	Status int
	Code   string
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// ErrUnreachable wraps transport failures.
var ErrUnreachable = errors.New("gateway unreachable")

// Do sends a request with an optional JSON body and decodes a JSON answer
// into out (when non-nil).
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.send(ctx, c.http, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode gateway answer to %s: %w", path, err)
	}
	return nil
}

// Stream sends a GET and returns the answer's body for the caller to read
// and close (for JSON-lines streams).
func (c *Client) Stream(ctx context.Context, path string, query url.Values) (io.ReadCloser, error) {
	resp, err := c.send(ctx, c.stream, http.MethodGet, path, query, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, query url.Values, body any) (*http.Response, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		// The URL error names the gateway, never the token.
		var unknownCA x509.UnknownAuthorityError
		if errors.As(err, &unknownCA) {
			return nil, fmt.Errorf("%w: %v; the gateway's certificate is not signed by a CA this machine trusts: set GATECTL_CA to the gateway's CA file (a --dev gateway writes DATA/ca.pem)", ErrUnreachable, err)
		}
		return nil, fmt.Errorf("%w: %v; is `gatectl gateway` running at %s? (set --gateway or GATECTL_GATEWAY)", ErrUnreachable, err, c.base.Redacted())
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var e api.Error
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = fmt.Sprintf("gateway answered %s", resp.Status)
	}
	return nil, &Error{Status: resp.StatusCode, Code: e.Code, Msg: e.Error}
}
