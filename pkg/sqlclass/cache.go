package sqlclass

import "sync"

// MaxCachedLen is the longest statement text a Cache keeps. Longer text is
// classified on every call, so the cache's memory stays bounded by its size
// times this length.
const MaxCachedLen = 8 << 10

// Cache is a bounded, concurrency-safe cache of Classify results keyed by the
// exact statement text, for the gateway's hot path, where clients repeat the
// same text (pgbench, prepared statements, ORMs). A hit takes a read lock and
// one map lookup, and allocates nothing.
//
// Results are shared between callers: treat them as read-only.
//
// Eviction is by generations: entries go into the current map; when it is
// full it becomes the previous map and the older one is dropped. A hit in the
// previous map moves the entry forward, so text in steady use stays cached.
// Errors are not cached: refusing costs a parse each time, as it should.
type Cache struct {
	gen int // entries per generation

	mu        sync.RWMutex
	cur, prev map[string]*Result
}

// NewCache returns a cache holding at most size results (at least 2).
func NewCache(size int) *Cache {
	gen := max(size/2, 1)
	return &Cache{gen: gen, cur: make(map[string]*Result, gen)}
}

// Classify returns the cached classification of sql, classifying and caching
// it on a miss. It has the contract of the package-level Classify.
func (c *Cache) Classify(sql string) (*Result, error) {
	if len(sql) > MaxCachedLen {
		return Classify(sql)
	}
	c.mu.RLock()
	r, ok := c.cur[sql]
	c.mu.RUnlock()
	if ok {
		return r, nil
	}
	c.mu.Lock()
	if r, ok = c.prev[sql]; ok {
		c.put(sql, r)
	}
	c.mu.Unlock()
	if ok {
		return r, nil
	}
	// Parse outside the lock: concurrent misses of the same text may both
	// parse; the results are equal, and the lock is never held across cgo.
	r, err := Classify(sql)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.put(sql, r)
	c.mu.Unlock()
	return r, nil
}

// Len returns the number of cached results.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := len(c.cur)
	for k := range c.prev {
		if _, dup := c.cur[k]; !dup {
			n++
		}
	}
	return n
}

// put stores r under sql; c.mu must be held for writing.
func (c *Cache) put(sql string, r *Result) {
	if _, ok := c.cur[sql]; !ok && len(c.cur) >= c.gen {
		c.prev, c.cur = c.cur, make(map[string]*Result, c.gen)
	}
	c.cur[sql] = r
}
