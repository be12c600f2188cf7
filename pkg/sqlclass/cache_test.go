package sqlclass

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestCacheHit(t *testing.T) {
	c := NewCache(16)
	const q = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
	first, err := c.Classify(q)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Classify(q)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("second Classify of the same text: got a new result, want the cached one")
	}
	if got, want := second.Level, LevelRead; got != want {
		t.Errorf("level: got %v, want %v", got, want)
	}
	if got := testing.AllocsPerRun(100, func() { _, _ = c.Classify(q) }); got != 0 {
		t.Errorf("allocations per cache hit: got %v, want 0", got)
	}
}

func TestCacheErrorsNotCached(t *testing.T) {
	c := NewCache(16)
	for range 2 {
		if _, err := c.Classify("SELEC 1"); err == nil {
			t.Fatalf("Classify(%q): got no error, want a parse error", "SELEC 1")
		}
	}
	if got := c.Len(); got != 0 {
		t.Errorf("entries after errors: got %d, want 0", got)
	}
}

func TestCacheBounded(t *testing.T) {
	const size = 8
	c := NewCache(size)
	hot := "SELECT 0"
	for i := range 100 {
		if _, err := c.Classify(fmt.Sprintf("SELECT %d", i+1)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Classify(hot); err != nil {
			t.Fatal(err)
		}
		if got := c.Len(); got > size {
			t.Fatalf("after %d statements: got %d entries, want at most %d", i+1, got, size)
		}
	}
	c.mu.RLock()
	_, inCur := c.cur[hot]
	_, inPrev := c.prev[hot]
	c.mu.RUnlock()
	if !inCur && !inPrev {
		t.Errorf("statement used on every round was evicted")
	}
}

func TestCacheLongTextNotCached(t *testing.T) {
	c := NewCache(16)
	long := "SELECT 1 -- " + strings.Repeat("x", MaxCachedLen)
	if _, err := c.Classify(long); err != nil {
		t.Fatal(err)
	}
	if got := c.Len(); got != 0 {
		t.Errorf("entries after a statement over MaxCachedLen: got %d, want 0", got)
	}
}

func TestCacheConcurrent(t *testing.T) {
	c := NewCache(32)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				q := fmt.Sprintf("SELECT %d FROM t%d", i%50, g%2)
				r, err := c.Classify(q)
				if err != nil {
					t.Errorf("Classify(%q): %v", q, err)
					return
				}
				if got, want := r.Statements[0].Text, q; got != want {
					t.Errorf("cached text: got %q, want %q", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
