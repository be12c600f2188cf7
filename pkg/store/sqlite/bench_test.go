package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/audit"
)

// benchLog opens an audit Log over a new database in b's temp dir. The
// database closes when b ends; the Log is the caller's to close.
func benchLog(b *testing.B) *audit.Log {
	b.Helper()
	db, err := Open(filepath.Join(b.TempDir(), "gatectl.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	l, err := audit.Open(context.Background(), db.Audit(), audit.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkRecordDurable measures audit throughput end to end: Record from
// parallel goroutines until every event is committed to SQLite.
func BenchmarkRecordDurable(b *testing.B) {
	l := benchLog(b)
	e := fixture(1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Record(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	if err := l.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAppend measures the store's share of auditing a statement: one
// Append of a 256-event batch shaped like the gateway's statement events.
func BenchmarkAppend(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "gatectl.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	st := db.Audit()
	const batch = 256
	events := make([]audit.Event, batch)
	seq := int64(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range events {
			seq++
			events[j] = audit.Event{Seq: seq, Time: t0.Add(time.Duration(seq)), Principal: "service:etl", Action: "statement",
				Target: "orders", Decision: "allow", PolicyCommit: "3f2a9c1d3f2a9c1d3f2a9c1d3f2a9c1d3f2a9c1d", Session: "s-0011223344556677",
				Detail: map[string]string{"text": "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", "kind": "execute", "class": "SELECT",
					"rows": "1", "duration_us": "93", "tag": "SELECT"},
				Prev: "0000000000000000000000000000000000000000000000000000000000000000", Hash: "1111111111111111111111111111111111111111111111111111111111111111"}
		}
		if err := st.Append(context.Background(), events); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
}
