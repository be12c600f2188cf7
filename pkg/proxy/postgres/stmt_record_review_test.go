package postgres

// Pipelines from a review of the gateway's record of prepared statements:
// each made a Bind run a statement the policy refused by then, kept memory
// the session no longer needed, or refused a legitimate client.

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// recStart logs in with a switchChecker and sends first, waiting for one ready.
func recStart(t *testing.T, plain bool, c StatementChecker, first ...pgproto3.FrontendMessage) (*gateway, *pipelineReader) {
	g := startGateway(t, gatewayOptions{plainClients: plain, checker: c})
	p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, first...))}
	p.readUntil(t, "ready", 1)
	return g, p
}

func recBindRun(t *testing.T, p *pipelineReader, name string) string {
	t.Helper()
	p.rc.conn.Write(encode(t, &B{PreparedStatement: name}, &E{}, &S{}))
	return firstRowOrError(t, p)
}

func recExecutes(g *gateway) []string {
	var out []string
	for _, e := range g.rec.statements() {
		if e.Kind == KindExecute {
			out = append(out, e.Text+"|allowed="+boolStr(e.Verdict.Allow)+"|executed="+boolStr(e.Executed))
		}
	}
	return out
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

const oldText = "SELECT 'old text' AS orders_refused_now"

// slowChecker delays checks of texts containing "slow_check" once armed.
type slowChecker struct {
	switchChecker
	armed atomic.Bool
}

func (c *slowChecker) Check(ctx context.Context, sql string) Verdict {
	if c.armed.Load() && strings.Contains(sql, "slow_check") {
		time.Sleep(300 * time.Millisecond)
	}
	return c.switchChecker.Check(ctx, sql)
}

func heapMiB() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// TestRecordLongNamesCollide: PostgreSQL keys prepared statements and
// portals by the first 63 bytes of their names, the gateway by the whole
// name, so two longer names could be one statement on the target and two in
// the gateway's record. Such names end the session.
func TestRecordLongNamesCollide(t *testing.T) {
	long := strings.Repeat("a", 63) + "1"
	for _, msg := range []pgproto3.FrontendMessage{
		&P{Name: long, Query: "SELECT 'harmless'"},
		&B{PreparedStatement: long},
		&B{DestinationPortal: long},
		&E{Portal: long},
		&Cl{ObjectType: 'S', Name: long},
	} {
		t.Run(fmt.Sprintf("%T", msg), func(t *testing.T) {
			forTransports(t, func(t *testing.T, plain bool) {
				g := startGateway(t, gatewayOptions{plainClients: plain})
				p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, msg, &S{}))}
				if got := firstRowOrError(t, p); got != "FATAL "+codeProgramLimitExceeded {
					t.Errorf("got %q, want the session ended with 54000", got)
				}
			})
		})
	}
	// 63 bytes is fine.
	g := startGateway(t, gatewayOptions{plainClients: true})
	name := strings.Repeat("a", 63)
	p := &pipelineReader{rc: dialRaw(t, g, true, encode(t, &P{Name: name, Query: "SELECT 'ok'"}, &S{}))}
	p.readUntil(t, "ready", 1)
	if got := recBindRun(t, p, name); got != "row ok" {
		t.Errorf("a 63-byte name: got %q", got)
	}
}

// The Bind applies reverts, then re-checks (slowly), then reads settled: the
// target's 42P05 revert and settled land in between.
func TestRecordBindSettledAfterRevertCheck(t *testing.T) {
	c := &slowChecker{}
	g, p := recStart(t, false, c, &P{Name: "x", Query: oldText}, &S{})
	c.refuse.Store(true)
	c.armed.Store(true)
	p.rc.conn.Write(encode(t, &P{Name: "x", Query: "SELECT 'new' AS slow_check"}, &S{}))
	time.Sleep(50 * time.Millisecond)
	p.rc.conn.Write(encode(t, &B{PreparedStatement: "x"}, &E{}, &S{}))
	if got := firstAnswer(t, p, true); got != "FATAL "+codeInsufficientPriv {
		t.Errorf("Bind of x got %q, want the session refused; executes %v", got, recExecutes(g))
	}
}

// A Parse whose body arrives after the target skipped an earlier Close of
// the name: handleClientMessage applied reverts before the body was read,
// so onParse sees no statement under the name, the Close mark settled, and
// does not mark the Parse uncertain; a Bind in the next step (same read)
// then passes while the target still holds the old text.
func TestRecordSplitParseAfterSkippedClose(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		c := &switchChecker{}
		g, p := recStart(t, plain, c, &P{Name: "x", Query: oldText}, &S{})
		c.refuse.Store(true)
		p.rc.conn.Write(encode(t, &P{Name: "e", Query: "SELECT 1/0"}, &B{PreparedStatement: "e"}, &E{},
			&Cl{ObjectType: 'S', Name: "x"}, &S{}))
		parse := encode(t, &P{Name: "x", Query: "SELECT 'new text'"})
		p.rc.conn.Write(parse[:5])
		time.Sleep(300 * time.Millisecond)
		p.rc.conn.Write(append(parse[5:], encode(t, &S{}, &B{PreparedStatement: "x"}, &E{}, &S{})...))
		if got := firstAnswer(t, p, true); got != "FATAL "+codeInsufficientPriv {
			t.Errorf("Bind of x got %q, want the session refused; executes %v", got, recExecutes(g))
		}
	})
}

// libpq pipeline mode bulk work: batches of one-shot queries, a Sync per
// batch, the next batches sent before the answers. Each batch whose first
// query fails leaves its skipped Parses' reverts pending for good (the next
// batch's Parse has replaced the unnamed record); after about 11 such
// batches the session is ended.
func TestRecordPipelineErrorsExhaustPendingReverts(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		const batches, per = 12, 100
		var msgs []pgproto3.FrontendMessage
		for b := 0; b < batches; b++ {
			msgs = append(msgs, &P{Query: fmt.Sprintf("SELECT 1/0 AS b%d", b)}, &B{}, &E{})
			for i := 1; i < per; i++ {
				msgs = append(msgs, &P{Query: fmt.Sprintf("SELECT %d", b*per+i)}, &B{}, &E{})
			}
			msgs = append(msgs, &S{})
		}
		p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, msgs...))}
		p.readUntil(t, "ready", batches)
		p.rc.conn.Write(encode(t, &Q{String: "SELECT 'alive'"}))
		got := firstRowOrError(t, p)
		t.Logf("after %d failed batches: %q", batches, got)
		if got != "row alive" {
			t.Errorf("session ended after pipelined batches with errors: %q", got)
		}
	})
}

// Reverts that never apply keep their superseded statement texts alive.
func TestRecordPendingRevertsHoldTexts(t *testing.T) {
	const n, size = 100, 1 << 20
	g := startGateway(t, gatewayOptions{plainClients: true})
	p := &pipelineReader{rc: dialRaw(t, g, true, encode(t, &S{}))}
	p.readUntil(t, "ready", 1)
	before := heapMiB()
	pad := strings.Repeat("z", size)
	msgs := []pgproto3.FrontendMessage{&P{Query: "SELECT 1/0"}, &B{}, &E{}}
	for i := 0; i < n; i++ {
		msgs = append(msgs, &P{Query: fmt.Sprintf("SELECT %d, '%s'", i, pad)})
	}
	msgs = append(msgs, &S{}, &P{Query: "SELECT 2"}, &B{}, &E{}, &S{})
	p.rc.conn.Write(encode(t, msgs...))
	msgs = nil
	p.readUntil(t, "ready", 2)
	p.rc.conn.Write(encode(t, &Q{String: "SELECT 'alive'"}))
	got := firstRowOrError(t, p)
	after := heapMiB()
	t.Logf("%q; heap before %.1f MiB, after %.1f MiB", got, before, after)
	if after-before > 20 {
		t.Errorf("session holds %.0f MiB of statement texts it no longer has", after-before)
	}
}
func TestRecordHeldPatterns(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		t.Run("refused-reparse-existing", func(t *testing.T) {
			c := &switchChecker{}
			_, p := recStart(t, plain, c, &P{Name: "x", Query: oldText}, &S{})
			c.refuse.Store(true)
			p.rc.conn.Write(encode(t, &P{Name: "x", Query: oldText + " "}, &S{}))
			t.Log(p.readUntil(t, "ready", 1))
			if got := recBindRun(t, p, "x"); got != "FATAL 42501" {
				t.Errorf("got %q", got)
			}
		})
		t.Run("jdbc-close-batched", func(t *testing.T) {
			c := &switchChecker{}
			_, p := recStart(t, plain, c, &P{Name: "S_1", Query: "SELECT 'one'"}, &B{PreparedStatement: "S_1"}, &E{}, &S{})
			p.rc.conn.Write(encode(t, &Cl{ObjectType: 'S', Name: "S_1"}, &P{Name: "S_2", Query: "SELECT 'two'"},
				&B{PreparedStatement: "S_2"}, &E{}, &S{}, &B{PreparedStatement: "S_2"}, &E{}, &S{}))
			got := strings.Join(p.readUntil(t, "ready", 2), " ")
			if got != "CSELECT 1 ready CSELECT 1 ready" {
				t.Errorf("got %q", got)
			}
		})
		t.Run("libpq-reprepare-same-name-pipelined", func(t *testing.T) {
			c := &switchChecker{}
			_, p := recStart(t, plain, c, &P{Name: "s", Query: "SELECT 'one'"}, &S{})
			p.rc.conn.Write(encode(t, &Cl{ObjectType: 'S', Name: "s"}, &S{}, &P{Name: "s", Query: "SELECT 'two'"}, &S{},
				&B{PreparedStatement: "s"}, &E{}, &S{}))
			p.rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			got := firstRowOrError(t, p)
			t.Logf("re-prepare pipelined: %q", got)
		})
	})
}
