package client

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestNewRefusesPlainHTTP: every call carries the caller's token, so a
// gateway URL that is not https must be refused before anything is sent.
func TestNewRefusesPlainHTTP(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // "" when New must succeed
	}{
		{url: "https://127.0.0.1:8443"},
		{url: "https://gw.example.com/prefix"},
		{url: "http://127.0.0.1:8443", want: "not an https:// URL"},
		{url: "HTTP://gw.example.com", want: "not an https:// URL"},
		{url: "ftp://gw.example.com", want: "not an https:// URL"},
		{url: "127.0.0.1:8443", want: "not an https:// URL"},
		{url: "", want: "not an https:// URL"},
		{url: "http://user:s3cret@gw.example.com", want: "not an https:// URL"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c, err := New(Options{Gateway: tc.url, Token: "tok"})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New accepted %q (client for %s); the token would go out in the clear", tc.url, c.base)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the URL's password", err)
			}
		})
	}
}

// TestRedirectToHTTPIsNotFollowed: a redirect from the gateway's https
// URL to http on the same host would carry the token in the clear.
func TestRedirectToHTTPIsNotFollowed(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("the token reached the plain-http server")
		}
	}))
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusMovedPermanently)
	}))
	defer tlsSrv.Close()
	c, err := New(Options{Gateway: tlsSrv.URL, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	c.http.Transport = tlsSrv.Client().Transport
	err = c.Do(context.Background(), http.MethodGet, "/v1/whoami", nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "not https") {
		t.Errorf("got %v, want the redirect refused", err)
	}
}

// TestUntrustedCertificateSaysSetGATECTL_CA: a running gateway whose CA is
// not trusted must not be reported as one that may not be running.
func TestUntrustedCertificateSaysSetGATECTL_CA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c, err := New(Options{Gateway: srv.URL, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Do(context.Background(), http.MethodGet, "/v1/whoami", nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "set GATECTL_CA") || strings.Contains(err.Error(), "running") {
		t.Errorf("got %v, want an error telling to set GATECTL_CA", err)
	}
}

// TestStreamOutlivesTheCallTimeout: a stream (audit tail -f) stays open
// past the timeout of ordinary calls, which used to cut it every minute;
// only its response headers are bounded.
func TestStreamOutlivesTheCallTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first\n"))
		w.(http.Flusher).Flush()
		time.Sleep(3 * timeout)
		w.Write([]byte("second\n"))
	}))
	defer srv.Close()
	c, err := New(Options{Gateway: srv.URL, Token: "tok", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	c.http.Transport = srv.Client().Transport
	c.stream.Transport = srv.Client().Transport
	body, err := c.Stream(context.Background(), "/v1/audit", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	got, err := io.ReadAll(body)
	if err != nil || string(got) != "first\nsecond\n" {
		t.Errorf("stream read %q, %v; want both lines", got, err)
	}
}
