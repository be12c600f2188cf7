package postgres

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// step is one client write, then a read until `until` is seen `n` times
// ("ready", "error", "copyin", "complete").
type step struct {
	msgs  []pgproto3.FrontendMessage
	until string
	n     int
}

type pev struct {
	kind     StatementKind
	text     string
	code     string
	executed bool
	allowed  bool
}

func (e pev) String() string {
	return fmt.Sprintf("{%v %q code=%q exec=%t allow=%t}", e.kind, e.text, e.code, e.executed, e.allowed)
}

// eventsSince returns the statement events g recorded after the first
// before ones.
func eventsSince(g *gateway, before int) []pev {
	var got []pev
	for _, e := range g.rec.statements()[before:] {
		got = append(got, pev{e.Kind, e.Text, e.ErrorCode, e.Executed, e.Allowed})
	}
	return got
}

type pipelineReader struct {
	rc       *rawClient
	loggedIn bool
}

func (p *pipelineReader) readUntil(t *testing.T, what string, n int) []string {
	t.Helper()
	var seen []string
	p.rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for n > 0 {
		msg, err := p.rc.fe.Receive()
		if err != nil {
			t.Fatalf("reading until %s: %v (seen %v)", what, err, seen)
		}
		var k string
		switch m := msg.(type) {
		case *pgproto3.BackendKeyData:
			p.loggedIn = true
			continue
		case *pgproto3.ReadyForQuery:
			if p.loggedIn {
				p.loggedIn = false
				continue
			}
			k = "ready"
		case *pgproto3.ErrorResponse:
			k = "error"
			seen = append(seen, "E"+m.Code)
		case *pgproto3.CopyInResponse:
			k = "copyin"
		case *pgproto3.CommandComplete:
			k = "complete"
			seen = append(seen, "C"+string(m.CommandTag))
		case *pgproto3.PortalSuspended:
			seen = append(seen, "s")
		case *pgproto3.EmptyQueryResponse:
			seen = append(seen, "I")
		}
		if k != "" && k != "error" && k != "complete" {
			seen = append(seen, k)
		}
		if k == what {
			n--
		}
	}
	return seen
}

var canaryMsgs = []pgproto3.FrontendMessage{
	&pgproto3.Query{String: "SELECT 1/0 AS canary_err"},
	&pgproto3.Query{String: "SELECT 'canary_ok'"},
	&pgproto3.Parse{Query: "SELECT 'canary_ext'"},
	&pgproto3.Bind{},
	&pgproto3.Execute{},
	&pgproto3.Sync{},
}

var canaryWant = []pev{
	{KindQuery, "SELECT 1/0 AS canary_err", "22012", true, true},
	{KindQuery, "SELECT 'canary_ok'", "", true, true},
	{KindExecute, "SELECT 'canary_ext'", "", true, true},
}

func runPipeline(t *testing.T, g *gateway, plain bool, steps []step, want []pev) {
	t.Helper()
	before := len(g.rec.statements())
	p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, steps[0].msgs...))}
	var trace []string
	for i, s := range steps {
		if i > 0 {
			if _, err := p.rc.conn.Write(encode(t, s.msgs...)); err != nil {
				t.Fatal(err)
			}
		}
		trace = append(trace, strings.Join(p.readUntil(t, s.until, s.n), ","))
	}
	if _, err := p.rc.conn.Write(encode(t, canaryMsgs...)); err != nil {
		t.Fatal(err)
	}
	trace = append(trace, strings.Join(p.readUntil(t, "ready", 3), ","))
	p.rc.conn.Close()
	var stats SessionStats
	select {
	case stats = <-g.rec.ends:
	case <-time.After(5 * time.Second):
		t.Fatal("session did not end")
	}
	got := eventsSince(g, before)
	want = append(append([]pev(nil), want...), canaryWant...)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("wire: %v\n got: %v\nwant: %v", trace, got, want)
	}
	// session.end counts what the events say.
	var refused int64
	for _, e := range want {
		if !e.allowed {
			refused++
		}
	}
	if stats.Statements != int64(len(want)) || stats.Refused != refused {
		t.Errorf("session end: got %d statements, %d refused; want %d, %d", stats.Statements, stats.Refused, len(want), refused)
	}
}

// TestPipelineErrorEvents sends extended-protocol pipelines with errors in
// many places (a review's probe of which statement gets which error) and
// checks every statement event, then three canary statements on the same
// connection, which a request left behind in the gateway's queue would
// misreport.
func TestPipelineErrorEvents(t *testing.T) { forTransports(t, testPipelineErrorEvents) }

type (
	P  = pgproto3.Parse
	B  = pgproto3.Bind
	E  = pgproto3.Execute
	D  = pgproto3.Describe
	S  = pgproto3.Sync
	Q  = pgproto3.Query
	Cl = pgproto3.Close
	F  = pgproto3.Flush
)

type msgs = []pgproto3.FrontendMessage

func three(m ...pgproto3.FrontendMessage) []step { return []step{{m, "ready", 3}} }

func one(m ...pgproto3.FrontendMessage) []step { return []step{{m, "ready", 1}} }

func testPipelineErrorEvents(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	const (
		X  = KindExecute
		Pk = KindParse
		Qk = KindQuery
	)
	del := "DELETE FROM scratch WHERE note = 'r'"
	tests := []struct {
		name  string
		steps []step
		want  []pev
	}{
		{"describe-missing-stmt-first", one(&D{ObjectType: 'S', Name: "nope"}, &P{Query: "SELECT 'd1'"}, &B{}, &E{}, &S{}),
			[]pev{{X, "SELECT 'd1'", "", false, true}}},
		{"describe-missing-portal-after", one(&P{Query: "SELECT 'd2'"}, &B{}, &E{}, &D{ObjectType: 'P', Name: "nope"}, &P{Query: "SELECT 'd3'"}, &B{}, &E{}, &S{}),
			[]pev{{X, "SELECT 'd2'", "", true, true}, {X, "SELECT 'd3'", "", false, true}}},
		{"describes-then-exec-error", one(&P{Name: "s4", Query: "SELECT 1/(id-id) AS d4 FROM items WHERE id = 1"}, &D{ObjectType: 'S', Name: "s4"}, &B{DestinationPortal: "p4", PreparedStatement: "s4"}, &D{ObjectType: 'P', Name: "p4"}, &E{Portal: "p4"}, &S{}),
			[]pev{{X, "SELECT 1/(id-id) AS d4 FROM items WHERE id = 1", "22012", true, true}}},
		{"describe-bad-subtype", one(&P{Query: "SELECT 'd5'"}, &B{}, &D{ObjectType: 'Z'}, &E{}, &S{}),
			[]pev{{X, "SELECT 'd5'", "", false, true}}},
		{"refused-bound-executed", []step{
			{msgs{&P{Name: "sdel", Query: del}, &S{}}, "ready", 1},
			{msgs{&P{Name: "sa", Query: "SELECT 'r-a'"}, &B{DestinationPortal: "pa", PreparedStatement: "sa"}, &B{DestinationPortal: "pd", PreparedStatement: "sdel", Parameters: [][]byte{[]byte("1")}},
				&E{Portal: "pa"}, &E{Portal: "pd"}, &P{Query: "SELECT 'r-c'"}, &B{}, &E{}, &S{}}, "ready", 1}},
			[]pev{{Pk, del, "42501", false, false}, {X, "SELECT 'r-a'", "", true, true}, {X, del, "42501", true, false}, {X, "SELECT 'r-c'", "", false, true}}},
		// A refused statement is one deny event, its Parse's: the
		// Executes of it that the target skips after the refusal are not
		// refused again.
		{"refused-parse-mid-batch", one(&P{Query: "SELECT 'r2-a'"}, &B{}, &E{}, &P{Query: del}, &B{}, &E{}, &P{Query: "SELECT 'r2-c'"}, &B{}, &E{}, &S{}),
			[]pev{{X, "SELECT 'r2-a'", "", true, true}, {Pk, del, "42501", false, false}, {X, "SELECT 'r2-c'", "", false, true}}},
		{"refused-parse-bind-execute", one(&P{Query: del}, &B{}, &E{}, &S{}),
			[]pev{{Pk, del, "42501", false, false}}},
		{"refused-parse-exec-mode", one(&P{Query: del}, &B{}, &D{ObjectType: 'P'}, &E{}, &S{}),
			[]pev{{Pk, del, "42501", false, false}}},
		{"refused-named-parse-two-portals", one(&P{Name: "rn", Query: del}, &B{DestinationPortal: "rn1", PreparedStatement: "rn"}, &E{Portal: "rn1"},
			&B{DestinationPortal: "rn2", PreparedStatement: "rn"}, &E{Portal: "rn2"}, &E{Portal: "rn1"}, &S{}),
			[]pev{{Pk, del, "42501", false, false}}},
		{"refused-parse-flush-bind-execute", []step{
			{msgs{&P{Query: del}, &F{}}, "error", 1},
			{msgs{&B{}, &E{}, &E{}, &S{}}, "ready", 1}},
			[]pev{{Pk, del, "42501", false, false}}},
		// The target skips the refused Parse after an earlier error; its
		// record goes back, and a Bind of it after the client read the
		// error is of a statement the target never got.
		{"skipped-refused-parse-flush-bind-execute", []step{
			{msgs{&P{Query: "SELECT 1/0 AS rs1"}, &B{}, &E{}, &P{Name: "rs", Query: del}, &F{}}, "error", 1},
			{msgs{&B{PreparedStatement: "rs"}, &E{}, &S{}}, "ready", 1}},
			[]pev{{X, "SELECT 1/0 AS rs1", "22012", false, true}, {Pk, del, "", false, false}}},
		{"close-portal-then-execute", one(&P{Name: "c1", Query: "SELECT 'c1'"}, &B{DestinationPortal: "pc1", PreparedStatement: "c1"}, &Cl{ObjectType: 'P', Name: "pc1"}, &E{Portal: "pc1"}, &S{}),
			[]pev{{X, `-- Execute of portal "pc1", which the gateway did not see bound or declared`, "34000", true, true}}},
		{"close-bad-subtype", one(&P{Name: "c2", Query: "SELECT 'c2'"}, &B{DestinationPortal: "pc2", PreparedStatement: "c2"}, &Cl{ObjectType: 'Z', Name: "x"}, &E{Portal: "pc2"}, &S{}),
			[]pev{{X, "SELECT 'c2'", "", false, true}}},
		{"close-reparse", one(&P{Name: "c3", Query: "SELECT 'c3a'"}, &Cl{ObjectType: 'S', Name: "c3"}, &P{Name: "c3", Query: "SELECT 1/0 AS c3b"}, &B{PreparedStatement: "c3"}, &E{}, &S{}),
			[]pev{{X, "SELECT 1/0 AS c3b", "22012", false, true}}},
		{"flush-bind-fails-execute-later", []step{
			{msgs{&P{Query: "SELECT 1/0 AS f1"}, &B{}, &F{}}, "error", 1},
			{msgs{&E{}, &S{}}, "ready", 1}},
			[]pev{{X, "SELECT 1/0 AS f1", "22012", false, true}}},
		{"flush-ok-then-fail", []step{
			{msgs{&P{Query: "SELECT 'f2'"}, &B{}, &E{}, &F{}}, "complete", 1},
			{msgs{&P{Query: "SELECT 1/(id-id) AS f3 FROM items WHERE id = 1"}, &B{}, &E{}, &S{}}, "ready", 1}},
			[]pev{{X, "SELECT 'f2'", "", true, true}, {X, "SELECT 1/(id-id) AS f3 FROM items WHERE id = 1", "22012", true, true}}},
		{"flush-exec-fails-more-later", []step{
			{msgs{&P{Query: "SELECT 1/(id-id) AS f4 FROM items WHERE id = 1"}, &B{}, &E{}, &F{}}, "error", 1},
			{msgs{&P{Query: "SELECT 'f5'"}, &B{}, &E{}, &S{}}, "ready", 1}},
			[]pev{{X, "SELECT 1/(id-id) AS f4 FROM items WHERE id = 1", "22012", true, true}, {X, "SELECT 'f5'", "", false, true}}},
		{"batches-one-write", three(&P{Query: "SELECT 1/0 AS m1"}, &B{}, &E{}, &P{Query: "SELECT 'm1b'"}, &B{}, &E{}, &S{}, &P{Query: "SELECT 'm2'"}, &B{}, &E{}, &S{}, &Q{String: "SELECT 'm3'"}),
			[]pev{{X, "SELECT 1/0 AS m1", "22012", false, true}, {X, "SELECT 'm1b'", "", false, true}, {X, "SELECT 'm2'", "", true, true}, {Qk, "SELECT 'm3'", "", true, true}}},
		{"batches-one-write-ready3", []step{{msgs{&P{Query: "SELECT 1/(id-id) AS m4 FROM items WHERE id = 1"}, &B{}, &E{}, &S{}, &P{Name: "m5", Query: "SELECT 'm5'"}, &D{ObjectType: 'S', Name: "m5"}, &B{PreparedStatement: "m5"}, &E{}, &S{}, &Q{String: "SELECT 'm6'"}}, "ready", 3}},
			[]pev{{X, "SELECT 1/(id-id) AS m4 FROM items WHERE id = 1", "22012", true, true}, {X, "SELECT 'm5'", "", true, true}, {Qk, "SELECT 'm6'", "", true, true}}},
		{"tx-failed", []step{
			{msgs{&P{Name: "t0", Query: "SELECT 't0'"}, &S{}}, "ready", 1},
			{msgs{&P{Query: "BEGIN"}, &B{}, &E{}, &P{Query: "SELECT 1/(id-id) AS t1 FROM items WHERE id = 1"}, &B{}, &E{}, &P{Query: "SELECT 't2'"}, &B{}, &E{}, &S{}}, "ready", 1},
			{msgs{&P{Query: "SELECT 't3'"}, &B{}, &E{}, &S{}}, "ready", 1},
			{msgs{&B{PreparedStatement: "t0"}, &E{}, &S{}}, "ready", 1},
			{msgs{&Q{String: "SELECT 't4'"}}, "ready", 1},
			{msgs{&Q{String: "ROLLBACK"}}, "ready", 1}},
			[]pev{{X, "BEGIN", "", true, true}, {X, "SELECT 1/(id-id) AS t1 FROM items WHERE id = 1", "22012", true, true}, {X, "SELECT 't2'", "", false, true},
				{X, "SELECT 't3'", "", false, true}, {X, "SELECT 't0'", "25P02", false, true}, {Qk, "SELECT 't4'", "25P02", true, true}, {Qk, "ROLLBACK", "", true, true}}},
		{"portal-suspended", one(&P{Query: "SELECT id AS ps1 FROM items WHERE id <= 3"}, &B{DestinationPortal: "ps"}, &E{Portal: "ps", MaxRows: 2}, &E{Portal: "ps"}, &S{}),
			[]pev{{X, "SELECT id AS ps1 FROM items WHERE id <= 3", "", true, true}, {X, "SELECT id AS ps1 FROM items WHERE id <= 3", "", true, true}}},
		{"portal-suspended-then-error", one(&P{Query: "SELECT 1/(g-3) AS ps2 FROM generate_series(1, 5) g"}, &B{DestinationPortal: "ps"}, &E{Portal: "ps", MaxRows: 2}, &E{Portal: "ps"}, &P{Query: "SELECT 'ps3'"}, &B{}, &E{}, &S{}),
			[]pev{{X, "SELECT 1/(g-3) AS ps2 FROM generate_series(1, 5) g", "", true, true}, {X, "SELECT 1/(g-3) AS ps2 FROM generate_series(1, 5) g", "22012", true, true}, {X, "SELECT 'ps3'", "", false, true}}},
		{"empty-query", one(&P{Query: ""}, &B{}, &D{ObjectType: 'P'}, &E{}, &P{Query: "SELECT 1/0 AS eq"}, &B{}, &E{}, &S{}),
			[]pev{{X, "", "", true, true}, {X, "SELECT 1/0 AS eq", "22012", false, true}}},
		{"query-after-batch-ok", []step{{msgs{&P{Query: "SELECT 'qa1'"}, &B{}, &E{}, &Q{String: "SELECT 'qa2'"}}, "ready", 1}},
			[]pev{{X, "SELECT 'qa1'", "", true, true}, {Qk, "SELECT 'qa2'", "", true, true}}},
		{"query-after-failed-batch", []step{{msgs{&P{Query: "SELECT 1/0 AS qb1"}, &B{}, &E{}, &Q{String: "SELECT 'qb2'"}, &S{}}, "ready", 1}},
			[]pev{{X, "SELECT 1/0 AS qb1", "22012", false, true}, {Qk, "SELECT 'qb2'", "", false, true}}},
		{"copy-extended", []step{{msgs{&P{Query: "COPY scratch FROM STDIN"}, &B{}, &E{}, &pgproto3.CopyData{Data: []byte("9001\tcopy-a\n")}, &pgproto3.CopyDone{}, &S{}}, "ready", 1}},
			[]pev{{X, "COPY scratch FROM STDIN", "", true, true}}},
		{"copy-extended-error", []step{{msgs{&P{Query: "COPY scratch FROM STDIN"}, &B{}, &E{}, &pgproto3.CopyData{Data: []byte("x\tcopy-b\n")}, &pgproto3.CopyDone{}, &S{}}, "ready", 1}},
			[]pev{{X, "COPY scratch FROM STDIN", "22P02", true, true}}},
		{"copy-extended-copyfail", []step{{msgs{&P{Query: "COPY scratch FROM STDIN"}, &B{}, &E{}, &pgproto3.CopyFail{Message: "no"}, &S{}}, "ready", 1}},
			[]pev{{X, "COPY scratch FROM STDIN", "57014", true, true}}},
		{"dup-named-parse", []step{
			{msgs{&P{Name: "dup", Query: "SELECT 'dup-a'"}, &S{}}, "ready", 1},
			{msgs{&P{Name: "dup", Query: "SELECT 'dup-b'"}, &S{}}, "ready", 1},
			{msgs{&B{PreparedStatement: "dup"}, &E{}, &S{}}, "ready", 1}},
			[]pev{{X, "SELECT 'dup-a'", "", true, true}}},
		{"error-at-bind", one(&P{Query: "SELECT 1/0 AS b1"}, &B{}, &D{ObjectType: 'P'}, &E{}, &S{}),
			[]pev{{X, "SELECT 1/0 AS b1", "22012", false, true}}},
		{"second-portal-fails-to-bind", one(&P{Name: "s1", Query: "SELECT id AS b2 FROM items WHERE id = 1"}, &P{Name: "s2", Query: "SELECT id AS b3 FROM items WHERE id = $1::int"},
			&B{DestinationPortal: "p1", PreparedStatement: "s1"}, &B{DestinationPortal: "p2", PreparedStatement: "s2", Parameters: [][]byte{[]byte("notanint")}},
			&E{Portal: "p1"}, &E{Portal: "p2"}, &S{}),
			[]pev{{X, "SELECT id AS b2 FROM items WHERE id = 1", "", false, true}, {X, "SELECT id AS b3 FROM items WHERE id = $1::int", "22P02", false, true}}},
		// The Execute runs the second binding, which the target skipped
		// after the first failed: not the failed Bind's statement.
		{"portal-bound-again-after-failed-bind", one(&P{Name: "s4", Query: "SELECT $1::int AS b4"},
			&B{PreparedStatement: "s4", Parameters: [][]byte{[]byte("x")}}, &B{PreparedStatement: "s4", Parameters: [][]byte{[]byte("4")}}, &E{}, &S{}),
			[]pev{{X, "SELECT $1::int AS b4", "", false, true}}},
		{"another-parse-fails", one(&P{Name: "a5", Query: "SELECT 5 AS b5"}, &P{Name: "b5", Query: "SELEC oops b5"}, &B{PreparedStatement: "a5"}, &E{}, &S{}),
			[]pev{{X, "SELECT 5 AS b5", "", false, true}}},
		{"refused-parse-after-failed-bind", one(&P{Name: "c6", Query: "SELECT $1::int AS b6"}, &B{DestinationPortal: "p6", PreparedStatement: "c6", Parameters: [][]byte{[]byte("x")}},
			&P{Name: "d6", Query: del}, &E{Portal: "p6"}, &S{}),
			[]pev{{Pk, del, "", false, false}, {X, "SELECT $1::int AS b6", "22P02", false, true}}},
		// An unnamed Parse the target discards after an earlier error: the
		// gateway forgets the unnamed statement (a Bind of it now would be
		// refused, TestBindOfUnnamedAfterSkippedParse), and the client's
		// next Parse and Bind run as usual.
		{"discarded-unnamed-parse", []step{
			{msgs{&P{Query: "SELECT 'u-old'"}, &S{}}, "ready", 1},
			{msgs{&P{Name: "bad", Query: "SELEC oops"}, &P{Query: "SELECT 'u-new'"}, &S{}}, "ready", 1},
			{msgs{&P{Query: "SELECT 'u-new'"}, &B{}, &E{}, &S{}}, "ready", 1}},
			[]pev{{X, "SELECT 'u-new'", "", true, true}}},
		// A Bind the target refuses (42P03: the portal exists) or skips
		// leaves the portal as it was; once ROLLBACK TO SAVEPOINT ends the
		// failed state, an Execute of it runs the first statement bound,
		// and the audit must name that one, not the benign one of the
		// failed Bind.
		{"duplicate-portal-bind-then-savepoint-rollback", []step{
			{msgs{&Q{String: "BEGIN"}}, "ready", 1},
			{msgs{&P{Name: "sv1a", Query: "SELECT 'sv1-ran'"}, &P{Name: "sv1b", Query: "SELECT 'sv1-benign'"}, &B{DestinationPortal: "pv1", PreparedStatement: "sv1a"}, &S{}}, "ready", 1},
			{msgs{&Q{String: "SAVEPOINT sv1"}}, "ready", 1},
			{msgs{&B{DestinationPortal: "pv1", PreparedStatement: "sv1b"}, &S{}}, "ready", 1},
			{msgs{&Q{String: "ROLLBACK TO SAVEPOINT sv1"}}, "ready", 1},
			{msgs{&E{Portal: "pv1"}, &S{}}, "ready", 1},
			{msgs{&Q{String: "COMMIT"}}, "ready", 1}},
			[]pev{{Qk, "BEGIN", "", true, true}, {Qk, "SAVEPOINT sv1", "", true, true}, {Qk, "ROLLBACK TO SAVEPOINT sv1", "", true, true},
				{X, "SELECT 'sv1-ran'", "", true, true}, {Qk, "COMMIT", "", true, true}}},
		{"skipped-portal-bind-then-savepoint-rollback", []step{
			{msgs{&Q{String: "BEGIN"}}, "ready", 1},
			{msgs{&P{Name: "sv2a", Query: "SELECT 'sv2-ran'"}, &P{Name: "sv2b", Query: "SELECT 'sv2-benign'"}, &B{DestinationPortal: "pv2", PreparedStatement: "sv2a"}, &S{}}, "ready", 1},
			{msgs{&Q{String: "SAVEPOINT sv2"}}, "ready", 1},
			{msgs{&P{Query: "SELEC oops sv2"}, &B{DestinationPortal: "pv2", PreparedStatement: "sv2b"}, &S{}}, "ready", 1},
			{msgs{&Q{String: "ROLLBACK TO SAVEPOINT sv2"}}, "ready", 1},
			{msgs{&E{Portal: "pv2"}, &S{}}, "ready", 1},
			{msgs{&Q{String: "COMMIT"}}, "ready", 1}},
			[]pev{{Qk, "BEGIN", "", true, true}, {Qk, "SAVEPOINT sv2", "", true, true}, {Qk, "ROLLBACK TO SAVEPOINT sv2", "", true, true},
				{X, "SELECT 'sv2-ran'", "", true, true}, {Qk, "COMMIT", "", true, true}}},
		// The same with the Bind sent after the error reached the client
		// (Flush): the gateway knows the target skips it as it forwards it.
		{"bind-forwarded-skipped-then-savepoint-rollback", []step{
			{msgs{&Q{String: "BEGIN"}}, "ready", 1},
			{msgs{&P{Name: "sv3a", Query: "SELECT 'sv3-ran'"}, &P{Name: "sv3b", Query: "SELECT 'sv3-benign'"}, &B{DestinationPortal: "pv3", PreparedStatement: "sv3a"}, &S{}}, "ready", 1},
			{msgs{&Q{String: "SAVEPOINT sv3"}}, "ready", 1},
			{msgs{&P{Query: "SELEC oops sv3"}, &F{}}, "error", 1},
			{msgs{&B{DestinationPortal: "pv3", PreparedStatement: "sv3b"}, &E{Portal: "pv3"}, &S{}}, "ready", 1},
			{msgs{&Q{String: "ROLLBACK TO SAVEPOINT sv3"}}, "ready", 1},
			{msgs{&E{Portal: "pv3"}, &S{}}, "ready", 1},
			{msgs{&Q{String: "COMMIT"}}, "ready", 1}},
			[]pev{{Qk, "BEGIN", "", true, true}, {Qk, "SAVEPOINT sv3", "", true, true}, {X, "SELECT 'sv3-benign'", "", false, true},
				{Qk, "ROLLBACK TO SAVEPOINT sv3", "", true, true}, {X, "SELECT 'sv3-ran'", "", true, true}, {Qk, "COMMIT", "", true, true}}},
		// A failed Bind of the unnamed portal may or may not have dropped
		// the one before (42P03 cannot happen, but a bad parameter is
		// found after the old portal is dropped): the audit says it
		// cannot tell, rather than name either statement.
		{"unnamed-portal-bind-fails-then-savepoint-rollback", []step{
			{msgs{&Q{String: "BEGIN"}}, "ready", 1},
			{msgs{&P{Name: "sv4a", Query: "SELECT 'sv4-ran'"}, &P{Name: "sv4b", Query: "SELECT $1::int AS sv4"}, &P{Name: "sp4", Query: "SAVEPOINT sv4"},
				&B{PreparedStatement: "sv4a"}, &B{DestinationPortal: "psp4", PreparedStatement: "sp4"}, &E{Portal: "psp4"}, &S{}}, "ready", 1},
			{msgs{&B{PreparedStatement: "sv4b", Parameters: [][]byte{[]byte("4")}}, &B{PreparedStatement: "sv4b", Parameters: [][]byte{[]byte("x")}}, &S{}}, "ready", 1},
			{msgs{&P{Name: "rb4", Query: "ROLLBACK TO SAVEPOINT sv4"}, &B{DestinationPortal: "prb4", PreparedStatement: "rb4"}, &E{Portal: "prb4"}, &E{}, &S{}}, "ready", 1},
			{msgs{&Q{String: "COMMIT"}}, "ready", 1}},
			[]pev{{Qk, "BEGIN", "", true, true}, {X, "SAVEPOINT sv4", "", true, true}, {X, "ROLLBACK TO SAVEPOINT sv4", "", true, true},
				{X, `-- Execute of portal "", whose last Bind did not take effect: the gateway cannot tell which earlier Bind of it ran`, "34000", true, true}, {Qk, "COMMIT", "", true, true}}},
		// libpq's PQexecParams + PQputCopyEnd: Sync after Execute, then CopyDone and Sync again.
		{"copy-libpq-style", []step{
			{msgs{&P{Query: "COPY scratch FROM STDIN"}, &B{}, &D{ObjectType: 'P'}, &E{}, &S{}}, "copyin", 1},
			{msgs{&pgproto3.CopyData{Data: []byte("9002\tcopy-c\n")}, &pgproto3.CopyDone{}, &S{}}, "ready", 1}},
			[]pev{{X, "COPY scratch FROM STDIN", "", true, true}}},
		{"copy-libpq-style-error", []step{
			{msgs{&P{Query: "COPY scratch FROM STDIN"}, &B{}, &D{ObjectType: 'P'}, &E{}, &S{}}, "copyin", 1},
			{msgs{&pgproto3.CopyData{Data: []byte("y\tcopy-d\n")}, &pgproto3.CopyDone{}, &S{}}, "ready", 1}},
			[]pev{{X, "COPY scratch FROM STDIN", "22P02", true, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runPipeline(t, g, plain, tt.steps, tt.want) })
	}
}

// TestNoStrayBindCompleteAfterCopy: libpq sends a Sync right after the
// Execute of COPY FROM STDIN, which the target ignores in copy-in mode. A
// gateway that waited for its ReadyForQuery was one request behind from
// then on, and showed the client the BindComplete of the Bind it injects
// for a refused Parse.
func TestNoStrayBindCompleteAfterCopy(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		before := len(g.rec.statements())
		p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, &P{Query: "COPY scratch FROM STDIN"}, &B{}, &E{}, &S{}))}
		p.readUntil(t, "copyin", 1)
		p.rc.conn.Write(encode(t, &pgproto3.CopyDone{}, &S{}))
		p.readUntil(t, "ready", 1)
		p.rc.conn.Write(encode(t, &P{Query: "SELECT 'x'"}, &B{}, &E{}, &S{}))
		p.readUntil(t, "ready", 1)
		p.rc.conn.Write(encode(t, &P{Query: "DELETE FROM scratch"}, &S{}))
		p.rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			m, err := p.rc.fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%T", m)
			if _, ok := m.(*pgproto3.BindComplete); ok {
				t.Errorf("client got a BindComplete it never asked for")
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
		p.rc.conn.Close()
		<-g.rec.ends
		got := eventsSince(g, before)
		want := []pev{
			{KindExecute, "COPY scratch FROM STDIN", "", true, true},
			{KindExecute, "SELECT 'x'", "", true, true},
			{KindParse, "DELETE FROM scratch", codeInsufficientPriv, false, false},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("got events %v\nwant %v", got, want)
		}
	})
}

// TestSyncDuringCopyIn: the target ignores a Sync while it is in copy-in
// mode, but only until the copy ends, so a Sync sent in the middle of COPY
// FROM STDIN could leave the gateway one answer behind the target: every
// later statement audited with the next one's outcome, and a re-Parse's
// failure not reverted. Such a Sync ends the session; libpq's Sync right
// after the Execute, and its CopyDone with a Sync, still work.
func TestSyncDuringCopyIn(t *testing.T) {
	cases := []struct {
		name  string
		start []pgproto3.FrontendMessage // the request that starts the copy
		then  []pgproto3.FrontendMessage // sent after CopyInResponse
	}{
		{"simple-sync-before-data", []pgproto3.FrontendMessage{&pgproto3.Query{String: "COPY scratch FROM STDIN"}},
			[]pgproto3.FrontendMessage{&S{}, &pgproto3.CopyData{Data: []byte("9101\tcopy\n")}, &pgproto3.CopyDone{}}},
		{"simple-sync-between-data", []pgproto3.FrontendMessage{&pgproto3.Query{String: "COPY scratch FROM STDIN"}},
			[]pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("9101\tcopy\n")}, &S{}, &pgproto3.CopyDone{}}},
		{"extended-sync-between-data", []pgproto3.FrontendMessage{&P{Query: "COPY scratch FROM STDIN"}, &B{}, &E{}, &S{}},
			[]pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("9101\tcopy\n")}, &S{}, &pgproto3.CopyDone{}, &S{}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forTransports(t, func(t *testing.T, plain bool) {
				g := startGateway(t, gatewayOptions{plainClients: plain})
				p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, tc.start...))}
				p.readUntil(t, "copyin", 1)
				p.rc.conn.Write(encode(t, tc.then...))
				p.rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				var fatal *pgproto3.ErrorResponse
				for fatal == nil {
					m, err := p.rc.fe.Receive()
					if err != nil {
						t.Fatalf("the session went on: %v", err)
					}
					if e, ok := m.(*pgproto3.ErrorResponse); ok && e.Severity == "FATAL" {
						fatal = e
					}
				}
				if fatal.Code != codeProtocolViolation || !strings.Contains(fatal.Message, "Sync during COPY FROM STDIN") {
					t.Errorf("got FATAL %s %q", fatal.Code, fatal.Message)
				}
				if stats := <-g.rec.ends; stats.Reason != reasonProtocolError {
					t.Errorf("session ended for %q", stats.Reason)
				}
			})
		})
	}

	// libpq: Parse, Bind, Execute, Sync in one write, then the data, then
	// CopyDone and Sync; the statements after it are audited as they ran.
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		before := len(g.rec.statements())
		p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, &P{Query: "COPY scratch FROM STDIN"}, &B{}, &E{}, &S{}))}
		p.readUntil(t, "copyin", 1)
		p.rc.conn.Write(encode(t, &pgproto3.CopyData{Data: []byte("9102\tcopy\n9103\tcopy\n")}, &pgproto3.CopyDone{}, &S{}))
		if got := p.readUntil(t, "ready", 1); fmt.Sprint(got) != "[CCOPY 2 ready]" {
			t.Errorf("copy answered %v", got)
		}
		p.rc.conn.Write(encode(t, &pgproto3.Query{String: "SELECT 1/0"}, &pgproto3.Query{String: "SELECT 'x'"}))
		p.readUntil(t, "ready", 2)
		p.rc.conn.Close()
		<-g.rec.ends
		got := eventsSince(g, before)
		want := []pev{
			{KindExecute, "COPY scratch FROM STDIN", "", true, true},
			{KindQuery, "SELECT 1/0", "22012", true, true},
			{KindQuery, "SELECT 'x'", "", true, true},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("got events %v\nwant %v", got, want)
		}
	})
}

// TestStatementRows checks the rows of statement events: the count in the
// command tag where PostgreSQL gives one, and otherwise the rows the
// target returned (SHOW, EXPLAIN and CALL have tags without a count, a
// suspended Execute has no tag, a failed statement none either).
func TestStatementRows(t *testing.T) { forTransports(t, testStatementRows) }

func testStatementRows(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	type rowsEv struct {
		text, tag string
		rows      int64
	}
	const (
		show    = "show server_version"
		explain = "EXPLAIN (COSTS OFF) SELECT 1 UNION ALL SELECT 2"
		three   = "SELECT id FROM items WHERE id <= 3"
		five    = "SELECT id FROM items WHERE id <= 5 ORDER BY id"
		fails   = "SELECT 1/(3-g) FROM generate_series(1, 5) g"
		insert  = "INSERT INTO scratch VALUES (7001, 'rows'), (7002, 'rows') RETURNING id"
		proc    = "CREATE OR REPLACE PROCEDURE rows_proc(INOUT x int) LANGUAGE sql AS $$ SELECT x + 1 $$"
		call    = "CALL rows_proc(1)"
		cursor  = "BEGIN; DECLARE rc CURSOR FOR " + five + "; FETCH 2 FROM rc; MOVE 1 IN rc; FETCH ALL FROM rc; COMMIT"
	)
	tests := []struct {
		name  string
		steps []step
		want  []rowsEv
	}{
		{"show-simple", one(&Q{String: show}), []rowsEv{{show, "SHOW", 1}}},
		{"show-extended", one(&P{Query: show}, &B{}, &E{}, &S{}), []rowsEv{{show, "SHOW", 1}}},
		{"explain-simple", one(&Q{String: explain}), []rowsEv{{explain, "EXPLAIN", 3}}},
		{"explain-extended", one(&P{Query: explain}, &B{}, &E{}, &S{}), []rowsEv{{explain, "EXPLAIN", 3}}},
		{"show-then-select", one(&Q{String: show + "; " + three}), []rowsEv{{show + "; " + three, "SHOW;SELECT", 4}}},
		{"select-tag-count", one(&P{Query: three}, &B{}, &E{}, &S{}), []rowsEv{{three, "SELECT", 3}}},
		{"returning-counted-once", one(&Q{String: insert}), []rowsEv{{insert, "INSERT", 2}}},
		{"call", []step{{msgs{&Q{String: proc}}, "ready", 1}, {msgs{&P{Query: call}, &B{}, &E{}, &S{}}, "ready", 1}},
			[]rowsEv{{proc, "CREATE PROCEDURE", 0}, {call, "CALL", 1}}},
		{"portal-suspended", one(&P{Query: five}, &B{DestinationPortal: "pr"}, &E{Portal: "pr", MaxRows: 2}, &E{Portal: "pr"}, &S{}),
			[]rowsEv{{five, "", 2}, {five, "SELECT", 3}}},
		{"fails-part-way", one(&P{Query: fails}, &B{}, &E{}, &S{}), []rowsEv{{fails, "", 2}}},
		{"fails-part-way-simple", one(&Q{String: fails}), []rowsEv{{fails, "", 2}}},
		// MOVE's count is the rows it moved over, which it does not return.
		{"fetch-and-move", one(&Q{String: cursor}), []rowsEv{{cursor, "BEGIN;DECLARE CURSOR;FETCH;MOVE;FETCH;COMMIT", 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(g.rec.statements())
			p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, tt.steps[0].msgs...))}
			for i, s := range tt.steps {
				if i > 0 {
					if _, err := p.rc.conn.Write(encode(t, s.msgs...)); err != nil {
						t.Fatal(err)
					}
				}
				p.readUntil(t, s.until, s.n)
			}
			p.rc.conn.Close()
			select {
			case <-g.rec.ends:
			case <-time.After(5 * time.Second):
				t.Fatal("session did not end")
			}
			var got []rowsEv
			for _, e := range g.rec.statements()[before:] {
				got = append(got, rowsEv{e.Text, e.CommandTag, e.Rows})
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}
