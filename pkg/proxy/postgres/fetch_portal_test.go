package postgres

import (
	"fmt"
	"testing"
	"time"
)

// TestFetchOfABoundPortalIsRefused: portals and cursors share one
// namespace, and SQL FETCH or MOVE of a portal runs its statement if it
// has not run yet. A portal that a Bind made holds a statement the FETCH's
// text does not show, which would run without the check and the audit
// event of an Execute (and unchecked against a policy changed since the
// Bind), so the gateway refuses it. FETCH of a cursor a DECLARE opened,
// and of a name the gateway does not know (a function's refcursor), go to
// the target as before.
func TestFetchOfABoundPortalIsRefused(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		const (
			Qk = KindQuery
			X  = KindExecute
		)
		refusedFetch := "FETCH ALL FROM fbp"
		runPipeline(t, g, plain, []step{
			{msgs{&Q{String: "BEGIN"}}, "ready", 1},
			{msgs{&Q{String: "DECLARE fbc CURSOR FOR SELECT 'fb-declared'"}}, "ready", 1},
			{msgs{&Q{String: "FETCH ALL FROM fbc"}}, "ready", 1},
			{msgs{&P{Query: "SELECT 'fb-bound'"}, &B{DestinationPortal: "fbp"}, &S{}}, "ready", 1},
			{msgs{&Q{String: refusedFetch}}, "ready", 1},
			{msgs{&Q{String: "ROLLBACK"}}, "ready", 1},
			{msgs{&Q{String: "BEGIN"}}, "ready", 1},
			{msgs{&P{Query: "SELECT 'fb-bound-2'"}, &B{DestinationPortal: "fbq"}, &S{}}, "ready", 1},
			{msgs{&Q{String: "MOVE ALL IN fbq"}}, "ready", 1},
			{msgs{&Q{String: "ROLLBACK"}}, "ready", 1},
			{msgs{&Q{String: "FETCH ALL FROM fb_unknown"}}, "ready", 1},
		}, []pev{
			{Qk, "BEGIN", "", true, true},
			{Qk, "DECLARE fbc CURSOR FOR SELECT 'fb-declared'", "", true, true},
			{Qk, "FETCH ALL FROM fbc", "", true, true},
			{Qk, refusedFetch, "42501", true, false},
			{Qk, "ROLLBACK", "", true, true},
			{Qk, "BEGIN", "", true, true},
			{Qk, "MOVE ALL IN fbq", "42501", true, false},
			{Qk, "ROLLBACK", "", true, true},
			{Qk, "FETCH ALL FROM fb_unknown", "34000", true, true},
		})

		// In the extended protocol the FETCH is refused as it is executed,
		// when the portals it may read are known, and the session ends.
		before := len(g.rec.statements())
		p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, &Q{String: "BEGIN"}))}
		p.readUntil(t, "ready", 1)
		p.rc.conn.Write(encode(t, &P{Name: "fetch1", Query: refusedFetch}, &S{}))
		p.readUntil(t, "ready", 1)
		p.rc.conn.Write(encode(t, &P{Query: "SELECT 'fb-bound-3'"}, &B{DestinationPortal: "fbp"}, &B{DestinationPortal: "fe", PreparedStatement: "fetch1"}, &E{Portal: "fe"}, &S{}))
		if seen := p.readUntil(t, "error", 1); fmt.Sprint(seen) != "[E42501]" {
			t.Errorf("Execute of the FETCH: got %v, want the refusal", seen)
		}
		select {
		case <-g.rec.ends:
		case <-time.After(5 * time.Second):
			t.Fatal("session did not end")
		}
		got := eventsSince(g, before)
		want := []pev{{Qk, "BEGIN", "", true, true}, {X, refusedFetch, "", false, false}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("events\n got: %v\nwant: %v", got, want)
		}
	})
}
