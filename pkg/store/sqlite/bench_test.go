package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gatectl/gatectl/pkg/audit"
)

// BenchmarkRecordDurable measures audit throughput end to end: Record from
// parallel goroutines until every event is committed to SQLite.
func BenchmarkRecordDurable(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "gatectl.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	l, err := audit.Open(context.Background(), db.Audit(), audit.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
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
