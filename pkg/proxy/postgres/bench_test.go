package postgres

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
)

// BenchmarkRelayDataRows streams a 1,000-row result (DataRows, then
// CommandComplete and ReadyForQuery) through the target-side relay over an
// in-memory pipe to a client that discards it. One op is one result set.
func BenchmarkRelayDataRows(b *testing.B) {
	var result []byte
	row := []byte{'D', 0, 0, 0, 0, 0, 2}
	row = binary.BigEndian.AppendUint32(row, 4)
	row = append(row, "1234"...)
	row = binary.BigEndian.AppendUint32(row, 20)
	row = append(row, "customer@example.com"...)
	binary.BigEndian.PutUint32(row[1:], uint32(len(row)-1))
	for i := 0; i < 1000; i++ {
		result = append(result, row...)
	}
	result = append(result, 'C', 0, 0, 0, 16)
	result = append(result, "SELECT 1000\x00"...)
	result = append(result, 'Z', 0, 0, 0, 5, 'I')

	target, relayIn := net.Pipe()
	relayOut, client := net.Pipe()
	defer target.Close()
	defer client.Close()
	go io.Copy(io.Discard, client)
	go func() {
		for {
			if _, err := target.Write(result); err != nil {
				return
			}
		}
	}()
	ss := newFuzzSession(nil)
	ss.plan.Observer = nopObserver{}
	ss.be = newConduit(bufio.NewReaderSize(relayIn, relayBufferSize), bufio.NewWriterSize(relayOut, relayBufferSize), 0)
	b.SetBytes(int64(len(result)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ss.queue.push(entry{kind: entryQuery, text: "SELECT * FROM customers"})
		for {
			typ, n, err := ss.be.next()
			if err == nil {
				err = ss.handleTargetMessage(typ, n)
			}
			if err != nil {
				b.Fatal(err)
			}
			if typ == 'Z' {
				break
			}
		}
	}
}

type nopObserver struct{}

func (nopObserver) SessionStart(SessionInfo) {}
func (nopObserver) Statement(StatementEvent) {}
func (nopObserver) SessionEnd(SessionStats)  {}

// BenchmarkSelectByPK runs pgx select-by-primary-key round trips directly
// against the target and through the gateway, over TLS (goroutine relay) and
// in plaintext (event loop); compare the ns/op. The oneshot cases send what
// pgbench -M extended sends: Parse of the unnamed statement, Bind, Describe,
// Execute and Sync in one round trip.
func BenchmarkSelectByPK(b *testing.B) {
	pg := needPG(b)
	g := startGateway(b, gatewayOptions{plaintext: true})
	direct, err := pgx.Connect(context.Background(),
		"host=127.0.0.1 port="+portOf(pg.Addr())+" user=orders_rw password="+rwPassword+" dbname=orders sslmode=disable")
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close(context.Background())
	cfg := g.pgxConfig(b, goodToken, "require", nil)
	viaTLS, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer viaTLS.Close(context.Background())
	plain, err := pgx.ConnectConfig(context.Background(), g.pgxConfig(b, goodToken, "disable", nil))
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close(context.Background())
	for _, c := range []struct {
		name string
		conn *pgx.Conn
		mode pgx.QueryExecMode
	}{
		{"direct", direct, pgx.QueryExecModeCacheStatement},
		{"gateway-tls", viaTLS, pgx.QueryExecModeCacheStatement},
		{"gateway-plaintext", plain, pgx.QueryExecModeCacheStatement},
		{"direct-oneshot", direct, pgx.QueryExecModeExec},
		{"gateway-plaintext-oneshot", plain, pgx.QueryExecModeExec},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			var name string
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := c.conn.QueryRow(ctx, "SELECT name FROM items WHERE id = $1", c.mode, i%1000+1).Scan(&name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
