package audit_test

import (
	"context"
	"maps"
	"sync"

	"github.com/gatectl/gatectl/pkg/audit"
)

// memStore is an in-memory audit.Store for testing Log and Verify without a
// database; pkg/store/sqlite tests the same contract against SQLite.
type memStore struct {
	mu     sync.Mutex
	events []audit.Event
	err    error // returned by Append when set
}

func (m *memStore) Append(_ context.Context, events []audit.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	for _, e := range events {
		e.Detail = maps.Clone(e.Detail)
		m.events = append(m.events, e)
	}
	return nil
}

func (m *memStore) Tail(context.Context) (int64, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.events) == 0 {
		return 0, "", nil
	}
	last := m.events[len(m.events)-1]
	return last.Seq, last.Hash, nil
}

// Scan supports the empty Filter only, which is all Log and Verify use.
func (m *memStore) Scan(_ context.Context, _ audit.Filter, fn func(audit.Event) error) error {
	m.mu.Lock()
	events := append([]audit.Event(nil), m.events...)
	m.mu.Unlock()
	for _, e := range events {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) failWith(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err = err
}

func (m *memStore) snapshot() []audit.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]audit.Event(nil), m.events...)
}
