package client

import (
	"strings"
	"testing"
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
