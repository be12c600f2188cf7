package sqlite

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/audit"
)

// BenchmarkStatementPath measures what auditing one statement costs the
// gateway end to end: building the event as pkg/gateway's pgObserver.Statement
// does, Record from parallel sessions, sealing, encoding and the SQLite
// write, until Flush says every event is durable.
//
// ns/op is wall time per event. cpu-us/event is the process's user+system
// CPU time per event (getrusage), which also counts the sealer, the
// committer, SQLite and the garbage collector on other goroutines; it is
// the number that matters on a gateway whose cores are busy relaying.
func BenchmarkStatementPath(b *testing.B) {
	l := benchLog(b)
	defer l.Close(context.Background())
	const (
		principal = "service:etl"
		target    = "orders"
		commit    = "3f2a9c1d3f2a9c1d3f2a9c1d3f2a9c1d3f2a9c1d"
		text      = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"
	)
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		session := "s-" + strconv.FormatInt(time.Now().UnixNano(), 16)
		var i int64
		for pb.Next() {
			i++
			// As pgObserver.Statement builds it: Detail comes from Details
			// when the event is sealed.
			start := time.Now()
			dur := time.Duration(40+i%200) * time.Microsecond
			ev := audit.Event{Time: start, Action: "statement", Principal: principal, Target: target, Session: session, PolicyCommit: commit,
				Decision: "allow", Details: &benchStatementDetail{text: text, kind: "execute", class: "SELECT", tag: "SELECT", rows: 1, duration: dur}}
			if err := l.Record(ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := l.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-us/event")
}

// cpuTime returns the user plus system CPU time of the whole process.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchStatementDetail is pkg/gateway's statementDetail.
type benchStatementDetail struct {
	text, kind, class, tag string
	rows                   int64
	duration               time.Duration
}

func (d *benchStatementDetail) AppendDetail(dst []audit.Field) []audit.Field {
	return append(dst, audit.Field{Key: "class", Value: d.class},
		audit.Field{Key: "duration_us", Value: strconv.FormatInt(d.duration.Microseconds(), 10)},
		audit.Field{Key: "kind", Value: d.kind}, audit.Field{Key: "rows", Value: strconv.FormatInt(d.rows, 10)},
		audit.Field{Key: "tag", Value: d.tag}, audit.Field{Key: "text", Value: d.text})
}
