package connect

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
)

// TestReachabilityCheckFailsClosed: when the gateway tells where its
// PostgreSQL listener is but cannot say which targets the caller may reach
// (faults a healthy gateway does not produce; the real gateway's answers
// are tested in pkg/gateway's TestConnectChecksReachability), connect does
// not listen or run the client: it fails with the exit code of the cause.
func TestReachabilityCheckFailsClosed(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		code    int
		message string
	}{
		{name: "gateway-error", status: http.StatusServiceUnavailable, body: `{"error": "no policy is live yet; see the gateway log", "code": "internal"}`,
			code: cmdutil.ExitError, message: `cannot check that you may reach target "orders", so not connecting: no policy is live yet`},
		{name: "unreadable-answer", status: http.StatusOK, body: `<html>`,
			code: cmdutil.ExitError, message: `cannot check that you may reach target "orders", so not connecting: decode gateway answer`},
		{name: "unauthorized", status: http.StatusUnauthorized, body: `{"error": "authentication failed: token expired", "code": "auth"}`,
			code: cmdutil.ExitAuth, message: "authentication failed: token expired"},
		{name: "forbidden-is-no-decision", status: http.StatusForbidden, body: `{"error": "denied: something", "code": "denied"}`,
			code: cmdutil.ExitError, message: "cannot check that you may reach target"},
		{name: "not-postgres", status: http.StatusOK, body: `[{"name": "orders", "kind": "ssh", "access": "read", "grant": "g"}]`,
			code: cmdutil.ExitDenied, message: `target "orders" is not a PostgreSQL target`},
		{name: "other-targets-only", status: http.StatusOK, body: `[{"name": "billing", "kind": "postgres", "access": "read", "grant": "g"}]`,
			code: cmdutil.ExitDenied, message: "run `gatectl targets` to list the targets you may reach"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/v1/endpoints":
					io.WriteString(w, `{"postgres": "127.0.0.1:1"}`)
				case "/v1/targets":
					w.WriteHeader(tc.status)
					io.WriteString(w, tc.body)
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			ca := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			f := &cmdutil.Factory{IO: cmdutil.Test(nil, &out, &errOut), GatewayURL: srv.URL, Getenv: func(k string) string {
				return map[string]string{"GATECTL_TOKEN": "caller-token", "GATECTL_CA": ca}[k]
			}}
			err := run(context.Background(), &Options{F: f, Target: "orders", Client: []string{"sh", "-c", "echo ran"}})
			if got := cmdutil.ExitCode(err); got != tc.code || err == nil || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("got exit %d, error %v; want exit %d and an error containing %q", got, err, tc.code, tc.message)
			}
			if out.Len() > 0 {
				t.Errorf("the client ran: stdout %q", out.String())
			}
		})
	}
}

// TestStopDoesNotWaitForSilentClients: a local connection that sends
// nothing (any user of the machine can open one) must not keep the
// listener from stopping once the client gatectl ran has exited.
func TestStopDoesNotWaitForSilentClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &localProxy{f: &cmdutil.Factory{IO: cmdutil.Test(nil, nil, nil)}, password: "pw"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.serve(ctx, ln); close(done) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // accepted, waiting for a startup message
	ln.Close()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the listener still waits for a silent connection after it stopped")
	}
}

// TestUnreadablePasswordIsRefused: a local client that answers the
// password request with something unreadable (here a PasswordMessage
// announcing 1 GiB, over the bound) is closed on; nothing reaches the
// gateway, and the listener does not wait for the gigabyte.
func TestUnreadablePasswordIsRefused(t *testing.T) {
	gw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	dialed := make(chan struct{}, 1)
	go func() {
		if c, err := gw.Accept(); err == nil {
			dialed <- struct{}{}
			c.Close()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f := &cmdutil.Factory{IO: cmdutil.Test(nil, nil, nil), Getenv: func(k string) string {
		if k == "GATECTL_TOKEN" {
			return "caller-token"
		}
		return ""
	}}
	p := &localProxy{f: f, gateway: gw.Addr().String(), password: "pw"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.serve(ctx, ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	startup := []byte{0, 0, 0, 0, 0, 3, 0, 0}
	startup = append(startup, "user\x00u\x00database\x00d\x00\x00"...)
	binary.BigEndian.PutUint32(startup, uint32(len(startup)))
	c.Write(startup)
	c.Write([]byte{'p', 0x40, 0, 0, 0})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the listener did not close the connection: %v (read %q)", err, got)
	}
	if len(got) == 0 || got[0] != 'R' {
		t.Errorf("got %q, want only the password request", got)
	}
	select {
	case <-dialed:
		t.Fatal("a client without the password got through to the gateway")
	case <-time.After(200 * time.Millisecond):
	}
}
