package postgres

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The statement cache's eviction and closing, and the login slots per
// source address.

// TestStatementCacheEvictedCloseSkipped: a full cache forgets its oldest
// statement when it sends the Close of it, before the target answered. If
// an earlier request of the same pipeline step fails, the target skips
// the Close (and the Parse): it keeps the evicted statement, which the
// cache no longer knows and never closes. Each such step leaves one more
// statement on the target, past the cache's size, without bound.
func TestStatementCacheEvictedCloseSkipped(t *testing.T) {
	var steps []reviewStep
	const rounds = 5
	for i := range rounds {
		steps = append(steps,
			reviewStep{fmt.Sprintf("prime-%d", i), msgs{&P{Query: fmt.Sprintf("SELECT 'a%d'", i)}, &B{}, &E{}, &S{}}, 1},
			reviewStep{fmt.Sprintf("fail-then-evict-%d", i), msgs{&P{Name: "bad", Query: "SELECT * FROM no_such_table"},
				&P{Query: fmt.Sprintf("SELECT 'b%d'", i)}, &S{}}, 1})
	}
	steps = append(steps, reviewStep{"count", msgs{&Q{String: "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'gatectl.%'"}}, 1})
	got, _ := answersWithCache(t, 1, steps)
	if last := got[len(got)-1]; last != "T D:0 C Z" && last != "T D:1 C Z" {
		t.Errorf("after %d failed pipelines that evicted from a cache of one, the target holds the cache's statements: %q, want at most 1", rounds, last)
	}
}

// TestStatementCacheDescribeAfterSkippedParse: a Describe of the unnamed
// statement in a later pipeline step than a Parse the target skipped (an
// error before it in its step) names the cache's new statement, which the
// target never prepared. PostgreSQL would describe the statement it kept;
// through the cache the Describe fails with 26000 about the unnamed
// statement (a documented difference; the message names nothing of the
// cache: TestStatementCacheErrorsNameTheClientsStatement).
func TestStatementCacheDescribeAfterSkippedParse(t *testing.T) {
	got, _ := answersWithCache(t, 100, []reviewStep{
		{"prime", msgs{&P{Query: "SELECT 1::int AS a"}, &B{}, &E{}, &S{}}, 1},
		{"skipped-parse-then-describe", msgs{&P{Name: "bad", Query: "SELECT * FROM no_such_table"}, &P{Query: "SELECT 'two'::text AS b"}, &S{},
			&D{ObjectType: 'S'}, &S{}}, 2},
	})
	if want := "E42P01 Z | E26000 Z"; got[1] != want {
		t.Errorf("got %q, want %q", got[1], want)
	}
}

// TestStatementCacheEvictedPortalRunsOn: a portal bound from a cached
// statement and read in parts (Execute with a row limit) goes on after
// the statement is evicted (closed on the target), as PostgreSQL's
// portal from a replaced unnamed statement does.
func TestStatementCacheEvictedPortalRunsOn(t *testing.T) {
	steps := []reviewStep{
		{"prime", msgs{&P{Query: "SELECT 'x'"}, &B{}, &E{}, &S{}}, 1},
		{"begin", msgs{&Q{String: "BEGIN"}}, 1},
		{"portal", msgs{&P{Query: "SELECT generate_series(1, 3)"}, &B{DestinationPortal: "p"}, &E{Portal: "p", MaxRows: 1}, &S{}}, 1},
		{"evict-then-execute", msgs{&P{Query: "SELECT 'y'"}, &B{}, &E{}, &E{Portal: "p", MaxRows: 1}, &S{}}, 1},
		{"execute-again", msgs{&E{Portal: "p"}, &S{}}, 1},
		{"commit", msgs{&Q{String: "COMMIT"}}, 1},
	}
	without, _ := answersWithCache(t, 0, steps)
	with, _ := answersWithCache(t, 1, steps)
	for i, st := range steps {
		if with[i] != without[i] {
			t.Errorf("%s: with a cache of one %q, without %q", st.name, with[i], without[i])
		}
	}
	t.Logf("answers: %s", strings.Join(with, " || "))
}

// TestStatementCacheForgetsAtUnrunDeallocateAll: the cache forgets every
// statement when the gateway forwards a DEALLOCATE ALL (its Parse, or a
// Query), before the target runs it. A Parse of it that is never
// executed, or a Query the target ignores after an error, drops nothing
// there: the target keeps the cache's statements, which the cache never
// closes, and prepares the same texts again under new names. Each round
// leaves statement_cache more statements on the target. (Not new with
// eviction, but eviction's promise is that the target holds no more than
// the cache's size.)
func TestStatementCacheForgetsAtUnrunDeallocateAll(t *testing.T) {
	var steps []reviewStep
	const rounds = 4
	for i := range rounds {
		steps = append(steps,
			reviewStep{fmt.Sprintf("a-%d", i), msgs{&P{Query: "SELECT 'a'"}, &B{}, &E{}, &S{}}, 1},
			reviewStep{fmt.Sprintf("b-%d", i), msgs{&P{Query: "SELECT 'b'"}, &B{}, &E{}, &S{}}, 1},
			reviewStep{fmt.Sprintf("ignored-deallocate-%d", i), msgs{&P{Name: "bad", Query: "SELECT * FROM no_such_table"}, &Q{String: "DEALLOCATE ALL"}, &S{}}, 1})
	}
	steps = append(steps, reviewStep{"count", msgs{&Q{String: "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'gatectl.%'"}}, 1})
	got, _ := answersWithCache(t, 2, steps)
	if last := got[len(got)-1]; last != "T D:2 C Z" {
		t.Errorf("after %d rounds of two texts and an ignored DEALLOCATE ALL through a cache of two, the target holds: %q, want 2", rounds, last)
	}
}

// TestStatementCacheSameTextReparseSkipped: a Parse of the unnamed
// statement with the text it already holds is not uncertain, so a Bind in
// a later pipeline step goes out before the Parse is answered. When the
// cache cannot reuse its entry (a new settings generation, here from a SET
// parsed as a named statement) the Parse prepares the text under a new
// name; if the target skips it (an error earlier in its step), PostgreSQL
// keeps the unnamed statement and runs the Bind, while through the cache
// the Bind fails with 26000 (a documented difference: no other text runs).
func TestStatementCacheSameTextReparseSkipped(t *testing.T) {
	const q = "SELECT 'a'"
	got, _ := answersWithCache(t, 100, []reviewStep{
		{"prime", msgs{&P{Query: q}, &B{}, &E{}, &S{}}, 1},
		{"set-parsed", msgs{&P{Name: "tz", Query: "SET TIME ZONE 'UTC'"}, &S{}}, 1},
		{"skipped-reparse-then-bind", msgs{&P{Name: "bad", Query: "SELECT * FROM no_such_table"}, &P{Query: q}, &S{},
			&B{}, &E{}, &S{}}, 2},
	})
	if want := "E42P01 Z | E26000 Z"; got[2] != want {
		t.Errorf("got %q, want %q", got[2], want)
	}
}

// TestStartupCountsReturnToZero: every way a connection ends before or at
// login gives back its place in both counts (Server.starting and
// Server.startingFrom).
func TestStartupCountsReturnToZero(t *testing.T) {
	g := startGateway(t, gatewayOptions{maxStartups: 4})
	ctx := context.Background()
	// A TLS handshake that fails: SSLRequest, then garbage.
	for range 3 {
		c, err := dialFrom("127.0.0.5").Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{0, 0, 0, 8, 4, 210, 22, 47})
		b := make([]byte, 1)
		c.Read(b)
		c.Write(bytes.Repeat([]byte{0x16, 0x03, 0x01, 0xff}, 64))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, c)
		c.Close()
	}
	// A cancel request.
	c, err := dialFrom("127.0.0.5").Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 1, 0, 0, 0, 2})
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, c)
	c.Close()
	// Plaintext, refused; a bad token; a login; and past the address's share.
	if _, err := pgx.ConnectConfig(ctx, g.pgxConfig(t, goodToken, "disable", nil)); err == nil {
		t.Error("plaintext login succeeded")
	}
	if _, err := pgx.ConnectConfig(ctx, g.pgxConfig(t, "bad-token", "require", nil)); err == nil {
		t.Error("bad token logged in")
	}
	conn, err := pgx.ConnectConfig(ctx, g.pgxConfig(t, goodToken, "require", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var idle []net.Conn
	for range 4 {
		c, err := dialFrom("127.0.0.6").Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	waitFor(t, "the idle connections", func() bool {
		g.srv.startMu.Lock()
		defer g.srv.startMu.Unlock()
		return g.srv.startingFrom["127.0.0.6"] == 4
	})
	for _, c := range idle {
		c.Close()
	}
	waitFor(t, "the counts to return to zero", func() bool {
		g.srv.startMu.Lock()
		defer g.srv.startMu.Unlock()
		return g.srv.starting.Load() == 0 && len(g.srv.startingFrom) == 0
	})
}

// TestSourceKey: the per-address share is meant to stop one client host.
// An IPv4 client reached over an IPv6 socket (IPv4-mapped) counts as its
// IPv4 address; an IPv6 host, which routinely holds a whole /64 (privacy
// addresses, SLAAC), must not get a new share per address, or one host
// fills every login slot from two of its addresses.
func TestSourceKey(t *testing.T) {
	key := func(ip string) string { return sourceKey(&net.TCPAddr{IP: net.ParseIP(ip), Port: 5432}) }
	if a, b := key("::ffff:192.0.2.1"), key("192.0.2.1"); a != b {
		t.Errorf("IPv4-mapped %q and IPv4 %q differ", a, b)
	}
	if a, b := key("2001:db8:1:2::1"), key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"); a == b {
		t.Logf("same /64 shares a key: %q", a)
	} else {
		t.Errorf("two addresses of one IPv6 /64 get their own shares: %q, %q", a, b)
	}
	if a, b := key("2001:db8:1:2::1"), key("2001:db8:1:3::1"); a == b {
		t.Errorf("two /64s share a key %q", a)
	}
}
