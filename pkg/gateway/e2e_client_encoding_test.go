package gateway_test

import (
	"net/url"
	"strconv"
	"testing"
	"time"
)

// TestNonUTF8ClientEncoding: a client whose client_encoding is a server
// encoding other than UTF8 (psql with PGCLIENTENCODING=LATIN1) logged in,
// but every statement with a non-ASCII byte was refused as one the
// classifier could not read (invalid UTF-8). The classifier now reads the
// statement's UTF-8 rendering, the target gets the client's bytes, and the
// audit records the rendering; a DELETE with a non-ASCII literal is still
// held.
func TestNonUTF8ClientEncoding(t *testing.T) {
	for _, c := range []struct {
		name, enc, lit, utf8 string
	}{
		{"latin1", "LATIN1", "caf\xe9", "café"},
		{"euc-jp", "EUC_JP", "\xc6\xfc\xcb\xdc", "日本"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pc, err := secPgconn(t, alice, map[string]string{"client_encoding": c.enc})
			if err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(t)
			mark := strconv.FormatInt(time.Now().UnixNano(), 36)
			sel := "SELECT '" + c.lit + "' AS v -- " + mark
			res, err := pc.Exec(ctx, sel).ReadAll()
			if err != nil {
				t.Fatalf("%s: %v", c.utf8, err)
			}
			if got := string(res[0].Rows[0][0]); got != c.lit {
				t.Errorf("got %q, want %q", got, c.lit)
			}
			before := snapshot(t)
			del := "DELETE FROM orders WHERE status = '" + c.lit + "' -- " + mark
			_, err = pc.Exec(ctx, del).ReadAll()
			wantRefusal(t, err, `held by rule "prod-deletes"`)
			noteRefusal(alice, "DELETE FROM orders WHERE status = '"+c.utf8+"' -- "+mark, "prod-deletes")
			if got := snapshot(t); got != before {
				t.Errorf("the target changed:\ngot  %s\nwant %s", got, before)
			}
			texts := map[string]string{}
			for _, e := range auditEvents(t, url.Values{"action": {"statement"}, "principal": {alice.principal}}) {
				texts[e.Detail["text"]] = e.Decision
			}
			for text, want := range map[string]string{
				"SELECT '" + c.utf8 + "' AS v -- " + mark:                       "allow",
				"DELETE FROM orders WHERE status = '" + c.utf8 + "' -- " + mark: "deny",
			} {
				if got, ok := texts[text]; !ok || got != want {
					t.Errorf("audit event for %q: decision %q (found %v), want %q", text, got, ok, want)
				}
			}
		})
	}
}
