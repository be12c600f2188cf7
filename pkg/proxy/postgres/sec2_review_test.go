package postgres

// Found by a second security review of the relay: memory a session could
// make the gateway hold without bound, and statement events for portals
// the gateway's record did not follow. Each test failed before its fix.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestSkippedPipelineIsBounded: after an error in the extended protocol
// the target skips every message up to the next Sync and answers none of
// them, so nothing slows the client down. The gateway used to queue an
// entry (about 300 bytes) for each 10-byte Execute, without bound (297 MiB
// for a million). It now forwards what the target will skip without
// queuing it, audits each skipped Execute at once, and the session goes
// on after the Sync.
func TestSkippedPipelineIsBounded(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, &S{}))}
		p.readUntil(t, "ready", 1)
		before := heapMiB()
		p.rc.conn.Write(encode(t, &P{Query: "SELECT 1/0"}, &B{}, &E{}, &F{}))
		if got := firstRowOrError(t, p); got != "ERROR 22012" {
			t.Fatalf("got %q, want the division by zero", got)
		}
		const total, chunk = 200_000, 50_000
		var batch []byte
		for range chunk {
			batch = append(batch, encode(t, &E{})...)
		}
		for sent := 0; sent < total; sent += chunk {
			if _, err := p.rc.conn.Write(batch); err != nil {
				t.Fatalf("after %d skipped Executes: %v", sent, err)
			}
		}
		p.rc.conn.Write(encode(t, &S{}, &Q{String: "SELECT 'alive'"}))
		if got := firstRowOrError(t, p); got != "row alive" {
			t.Fatalf("after %d skipped Executes and a Sync: %q, want the next query's row", total, got)
		}
		waitFor(t, "the skipped Executes' events", func() bool { return len(g.rec.statements()) >= total })
		// The test's recorder keeps every statement event; the gateway
		// keeps none.
		g.rec.mu.Lock()
		g.rec.stmts = nil
		g.rec.mu.Unlock()
		if grew := heapMiB() - before; grew > 16 {
			t.Errorf("the gateway holds %.0f MiB after %d skipped Executes", grew, total)
		}
	})
}

// TestPortalRecordFollowsTransactions: the gateway forgets a named
// portal only at a Close of it; the target drops every portal at the end
// of its transaction (and never creates one whose Bind it skipped). A
// session that binds new portal names, one per transaction, grows the
// gateway's record without bound while the target holds none. Named
// statements are bounded (maxNamedBytes); portals are not.
func TestPortalRecordFollowsTransactions(t *testing.T) {
	g := startGateway(t, gatewayOptions{plainClients: true})
	p := &pipelineReader{rc: dialRaw(t, g, true, encode(t, &P{Name: "s", Query: "SELECT 1"}, &S{}))}
	p.readUntil(t, "ready", 1)
	before := heapMiB()
	const total, chunk = 400_000, 20_000
	prefix := strings.Repeat("p", 50)
	for sent := 0; sent < total; sent += chunk {
		// Skipped Binds: the target is discarding after the error.
		msgs := []pgproto3.FrontendMessage{&P{Query: "SELECT 1/0"}, &B{}, &E{}}
		for i := range chunk {
			msgs = append(msgs, &B{DestinationPortal: fmt.Sprintf("%s%07d", prefix, sent+i), PreparedStatement: "s"})
		}
		msgs = append(msgs, &S{})
		p.rc.conn.Write(encode(t, msgs...))
		p.readUntil(t, "ready", 1)
	}
	after := heapMiB()
	t.Logf("heap before %.1f MiB, after %d skipped Binds of new portals %.1f MiB", before, total, after)
	if after-before > 16 {
		t.Errorf("the gateway holds %.0f MiB of portals the target never had", after-before)
	}
}

// TestExecuteOfCursorIsAudited: SQL cursors share the namespace of
// protocol portals, and the target drops portals at the end of a
// transaction while the gateway keeps its record. An Execute message of a
// portal the gateway did not bind (a DECLAREd cursor) is forwarded and runs,
// and its statement event has no text and Allowed=false (audited as a
// denial) although rows came back; an Execute of a name whose recorded
// portal the target dropped is audited with the text of the old statement
// although the cursor's query ran.
func TestExecuteOfCursorIsAudited(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, &S{}))}
		p.readUntil(t, "ready", 1)

		// readCursor DECLAREs cursor c for item id in a transaction, reads
		// it with a protocol Execute, and checks the Execute's event.
		readCursor := func(t *testing.T, id int) {
			t.Helper()
			before := len(g.rec.statements())
			declare := fmt.Sprintf("DECLARE c CURSOR FOR SELECT name FROM items WHERE id = %d", id)
			p.rc.conn.Write(encode(t, &Q{String: "BEGIN"}, &Q{String: declare}))
			p.readUntil(t, "ready", 2)
			p.rc.conn.Write(encode(t, &E{Portal: "c"}, &S{}))
			got := firstRowOrError(t, p)
			p.readUntil(t, "ready", 1)
			p.rc.conn.Write(encode(t, &Q{String: "COMMIT"}))
			p.readUntil(t, "ready", 1)
			if got != fmt.Sprintf("row item %d", id) {
				t.Fatalf("Execute of cursor c: %s, want item %d", got, id)
			}
			for _, e := range g.rec.statements()[before:] {
				if e.Kind == KindExecute && (!e.Executed || !e.Allowed || e.Text != declare) {
					t.Errorf("Execute of cursor c returned %s, but its event says executed=%t allowed=%t text=%q; want the DECLARE", got, e.Executed, e.Allowed, e.Text)
				}
			}
		}
		t.Run("declared-cursor", func(t *testing.T) { readCursor(t, 7) })
		t.Run("stale-portal", func(t *testing.T) {
			// A protocol portal c in an earlier transaction, gone with it.
			p.rc.conn.Write(encode(t, &Q{String: "BEGIN"}, &P{Name: "old", Query: "SELECT 'old statement'"},
				&B{DestinationPortal: "c", PreparedStatement: "old"}, &E{Portal: "c"}, &S{}, &Q{String: "COMMIT"}))
			p.readUntil(t, "ready", 3)
			readCursor(t, 8)
		})
	})
}
