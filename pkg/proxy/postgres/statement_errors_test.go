package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestStatementErrorCodes sends extended-protocol pipelines in which one
// message fails, and checks which statement events carry the error's
// SQLSTATE: the failed Execute's own, or, for a failed Bind, the Execute of
// its portal, which the target then skips. A failed Parse gives no other
// statement its error, and statements the target skipped carry none.
func TestStatementErrorCodes(t *testing.T) { forTransports(t, testStatementErrorCodes) }

func testStatementErrorCodes(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	type want struct {
		code     string
		executed bool
		allowed  bool
	}
	tests := []struct {
		name string
		msgs []pgproto3.FrontendMessage
		want map[string]want // by statement text
	}{
		{
			name: "error-at-bind",
			msgs: []pgproto3.FrontendMessage{
				&pgproto3.Parse{Query: "SELECT 1/0 AS c1"},
				&pgproto3.Bind{},
				&pgproto3.Describe{ObjectType: 'P'},
				&pgproto3.Execute{},
				&pgproto3.Sync{},
			},
			want: map[string]want{"SELECT 1/0 AS c1": {code: "22012", allowed: true}},
		},
		{
			name: "error-at-execute",
			msgs: []pgproto3.FrontendMessage{
				&pgproto3.Parse{Query: "SELECT 1/(id-id) AS c2 FROM items WHERE id = 1"},
				&pgproto3.Bind{},
				&pgproto3.Execute{},
				&pgproto3.Sync{},
			},
			want: map[string]want{"SELECT 1/(id-id) AS c2 FROM items WHERE id = 1": {code: "22012", executed: true, allowed: true}},
		},
		{
			name: "second-portal-fails-to-bind",
			msgs: []pgproto3.FrontendMessage{
				&pgproto3.Parse{Name: "s1", Query: "SELECT id AS c3a FROM items WHERE id = 1"},
				&pgproto3.Parse{Name: "s2", Query: "SELECT id AS c3b FROM items WHERE id = $1::int"},
				&pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "s1"},
				&pgproto3.Bind{DestinationPortal: "p2", PreparedStatement: "s2", Parameters: [][]byte{[]byte("notanint")}},
				&pgproto3.Execute{Portal: "p1"},
				&pgproto3.Execute{Portal: "p2"},
				&pgproto3.Sync{},
			},
			want: map[string]want{
				"SELECT id AS c3a FROM items WHERE id = 1":       {allowed: true},
				"SELECT id AS c3b FROM items WHERE id = $1::int": {code: "22P02", allowed: true},
			},
		},
		{
			name: "portal-bound-again-after-failed-bind",
			msgs: []pgproto3.FrontendMessage{
				&pgproto3.Parse{Name: "s4", Query: "SELECT $1::int AS c4"},
				&pgproto3.Bind{PreparedStatement: "s4", Parameters: [][]byte{[]byte("x")}},
				&pgproto3.Bind{PreparedStatement: "s4", Parameters: [][]byte{[]byte("4")}},
				&pgproto3.Execute{},
				&pgproto3.Sync{},
			},
			// The Execute runs the second binding, which the target skipped
			// after the first one failed: not the failed Bind's statement.
			want: map[string]want{"SELECT $1::int AS c4": {allowed: true}},
		},
		{
			name: "another-parse-fails",
			msgs: []pgproto3.FrontendMessage{
				&pgproto3.Parse{Name: "a5", Query: "SELECT 5 AS c5"},
				&pgproto3.Parse{Name: "b5", Query: "SELEC oops c5"},
				&pgproto3.Bind{PreparedStatement: "a5"},
				&pgproto3.Execute{},
				&pgproto3.Sync{},
			},
			want: map[string]want{"SELECT 5 AS c5": {allowed: true}},
		},
		{
			name: "refused-parse-after-failed-bind",
			msgs: []pgproto3.FrontendMessage{
				&pgproto3.Parse{Name: "c6", Query: "SELECT $1::int AS c6"},
				&pgproto3.Bind{DestinationPortal: "p6", PreparedStatement: "c6", Parameters: [][]byte{[]byte("x")}},
				&pgproto3.Parse{Name: "d6", Query: "DELETE FROM scratch WHERE note = 'c6'"},
				&pgproto3.Execute{Portal: "p6"},
				&pgproto3.Sync{},
			},
			want: map[string]want{
				"SELECT $1::int AS c6":                  {code: "22P02", allowed: true},
				"DELETE FROM scratch WHERE note = 'c6'": {},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, g, plain, encode(t, tt.msgs...))
			if _, err := rc.readEvents(1); err != nil {
				t.Fatalf("reading the answers: %v", err)
			}
			got := map[string]StatementEvent{}
			for _, e := range g.rec.statements() {
				if _, ok := tt.want[e.Text]; ok {
					got[e.Text] = e
				}
			}
			for text, w := range tt.want {
				e, ok := got[text]
				if !ok {
					t.Errorf("no statement event for %q", text)
					continue
				}
				if e.ErrorCode != w.code || e.Executed != w.executed || e.Allowed != w.allowed {
					t.Errorf("%q: error code %q, executed %t, allowed %t; want %q, %t, %t",
						text, e.ErrorCode, e.Executed, e.Allowed, w.code, w.executed, w.allowed)
				}
			}
		})
	}
}
