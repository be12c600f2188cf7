package sqlclass

import "testing"

const pgbenchSelect = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"

func BenchmarkClassify(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Classify(pgbenchSelect); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheHit(b *testing.B) {
	c := NewCache(1024)
	if _, err := c.Classify(pgbenchSelect); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Classify(pgbenchSelect); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheHitParallel(b *testing.B) {
	c := NewCache(1024)
	if _, err := c.Classify(pgbenchSelect); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Classify(pgbenchSelect); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
