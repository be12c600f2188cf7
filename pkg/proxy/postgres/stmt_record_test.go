package postgres

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The gateway records a Parse or Close of a prepared statement when it
// forwards it, and puts its record back when the target skips or refuses
// it. These pipelines, from a review of that mechanism, each made a Bind
// run a statement the policy refused by then ("old text", allowed when it
// was prepared), or refused a legitimate pipeline.

// bindX sends a Bind and Execute of x and returns the first row or error.
func bindX(t *testing.T, p *pipelineReader) string {
	t.Helper()
	p.rc.conn.Write(encode(t, &B{PreparedStatement: "x"}, &E{}, &S{}))
	return firstRowOrError(t, p)
}

func firstRowOrError(t *testing.T, p *pipelineReader) string { return firstAnswer(t, p, false) }

// firstAnswer reads up to the first row ("row V") or error ("SEVERITY
// CODE"); with onlyFatal it skips the ordinary errors of the requests
// before it.
func firstAnswer(t *testing.T, p *pipelineReader, onlyFatal bool) string {
	t.Helper()
	p.rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		m, err := p.rc.fe.Receive()
		if err != nil {
			return "end: " + err.Error()
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			return "row " + string(m.Values[0])
		case *pgproto3.ErrorResponse:
			if !onlyFatal || m.Severity == "FATAL" {
				return m.Severity + " " + m.Code
			}
		}
	}
}

// preparedThenRefused logs in, prepares x as "old text" while the policy
// allows it, then changes the policy to refuse it.
func preparedThenRefused(t *testing.T, plain bool) *pipelineReader {
	c := &switchChecker{}
	g := startGateway(t, gatewayOptions{plainClients: plain, checker: c})
	p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, &P{Name: "x", Query: "SELECT 'old text' AS orders_refused_now"}, &S{}))}
	p.readUntil(t, "ready", 1)
	c.refuse.Store(true)
	return p
}

func TestStatementRecordFollowsTheTarget(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, p *pipelineReader) string // returns what the Bind of x got
	}{
		{"close-then-parse-in-one-step", func(t *testing.T, p *pipelineReader) string {
			// The error makes the target skip the Close and the Parse.
			p.rc.conn.Write(encode(t, &P{Query: "SELECT 1/0"}, &B{}, &E{},
				&pgproto3.Close{ObjectType: 'S', Name: "x"}, &P{Name: "x", Query: "SELECT 'new text'"}, &S{}))
			p.readUntil(t, "ready", 1)
			return bindX(t, p)
		}},
		{"close-then-parse-bind-after-answers", func(t *testing.T, p *pipelineReader) string {
			p.rc.conn.Write(encode(t, &P{Query: "SELECT 1/0"}, &B{}, &E{}, &pgproto3.Close{ObjectType: 'S', Name: "x"}, &S{},
				&P{Name: "x", Query: "SELECT 'new text'"}, &S{}))
			p.readUntil(t, "ready", 2)
			return bindX(t, p)
		}},
		{"reparse-twice", func(t *testing.T, p *pipelineReader) string {
			// The first re-Parse fails (42P05); the target skips the second.
			p.rc.conn.Write(encode(t, &P{Name: "x", Query: "SELECT 'B'"}, &P{Name: "x", Query: "SELECT 'C'"}, &S{}))
			p.readUntil(t, "ready", 1)
			return bindX(t, p)
		}},
		{"bind-split-across-the-answer", func(t *testing.T, p *pipelineReader) string {
			// The Bind's header arrives before the target refuses the
			// re-Parse, its body after.
			bind := encode(t, &B{PreparedStatement: "x"}, &E{}, &S{})
			p.rc.conn.Write(append(encode(t, &P{Name: "x", Query: "SELECT 'new text'"}, &S{}), bind[:7]...))
			time.Sleep(300 * time.Millisecond)
			p.rc.conn.Write(bind[7:])
			for {
				got := firstRowOrError(t, p)
				if got != "ERROR 42P05" {
					return got
				}
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forTransports(t, func(t *testing.T, plain bool) {
				p := preparedThenRefused(t, plain)
				if got := tc.run(t, p); got != "FATAL "+codeInsufficientPriv {
					t.Errorf("Bind of x got %q, want the session ended by the re-check (the target holds x's old text)", got)
				}
			})
		})
	}
}

// TestTwoCopiesInOneQuery: a simple Query may start one copy after another;
// a Sync during the second is refused as during the first.
func TestTwoCopiesInOneQuery(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, &pgproto3.Query{String: "COPY scratch FROM STDIN; COPY scratch FROM STDIN"}))}
		p.readUntil(t, "copyin", 1)
		p.rc.conn.Write(encode(t, &pgproto3.CopyDone{}))
		p.readUntil(t, "copyin", 1)
		p.rc.conn.Write(encode(t, &pgproto3.CopyData{Data: []byte("9104\tcopy\n")}, &S{}, &pgproto3.CopyDone{}))
		if got := firstRowOrError(t, p); got != "FATAL "+codeProtocolViolation {
			t.Errorf("Sync during the second copy: got %q, want FATAL 08P01", got)
		}
	})
}

// TestPipelineOfOneShotQueries: libpq's pipeline mode, a Sync after each
// query, with a refused query first and the same text twice after it.
func TestPipelineOfOneShotQueries(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		var msgs []pgproto3.FrontendMessage
		for _, q := range []string{"DELETE FROM scratch WHERE id = -1", "SELECT 2", "SELECT 2", "SELECT 3"} {
			msgs = append(msgs, &P{Query: q}, &B{}, &pgproto3.Describe{ObjectType: 'P'}, &E{}, &S{})
		}
		p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, msgs...))}
		got := strings.Join(p.readUntil(t, "ready", 4), " ")
		if want := "E42501 ready CSELECT 1 ready CSELECT 1 ready CSELECT 1 ready"; got != want {
			t.Errorf("got %s\nwant %s", got, want)
		}
	})
}

// TestBindOfUnnamedAfterSkippedParse: after the target skipped a Parse of
// the unnamed statement, the gateway does not know which statement the
// client means by it; a Bind before another Parse ends the session. (Before,
// the gateway put the previous one back, and a re-Parse of the same text
// with a changed verdict could leave it running a refused text.)
func TestBindOfUnnamedAfterSkippedParse(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		c := &switchChecker{}
		g := startGateway(t, gatewayOptions{plainClients: plain, checker: c})
		p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, &P{Query: "SELECT 'old text' AS orders_refused_now"}, &S{}))}
		p.readUntil(t, "ready", 1)
		c.refuse.Store(true)
		// The same text again, refused now, skipped after the error.
		p.rc.conn.Write(encode(t, &P{Name: "e", Query: "SELECT 1/0"}, &B{PreparedStatement: "e"}, &E{},
			&P{Query: "SELECT 'old text' AS orders_refused_now"}, &S{}))
		p.readUntil(t, "ready", 1)
		p.rc.conn.Write(encode(t, &B{}, &E{}, &S{}))
		if got := firstRowOrError(t, p); got != "FATAL "+codeInsufficientPriv {
			t.Errorf("Bind of the unnamed statement got %q, want the session refused", got)
		}
	})
}

// TestSQLPrepareReplacesARecordedName: SQL PREPARE shares the namespace of
// the protocol's Parse. After DEALLOCATE x; PREPARE x AS …, a Bind of x
// would run the PREPAREd text while the gateway re-checked, and audited,
// the one it recorded from the Parse; it forgets x instead, and the Bind
// ends the session.
func TestSQLPrepareReplacesARecordedName(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, &P{Name: "x", Query: "SELECT 'recorded text'"}, &S{}))}
		p.readUntil(t, "ready", 1)
		p.rc.conn.Write(encode(t, &pgproto3.Query{String: "DEALLOCATE x; PREPARE x AS SELECT 'prepared by SQL'"}))
		p.readUntil(t, "ready", 1)
		if got := bindX(t, p); got != "FATAL "+codeInsufficientPriv {
			t.Errorf("Bind of x got %q, want the session refused", got)
		}
	})
}
