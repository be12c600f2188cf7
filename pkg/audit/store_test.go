package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// lineStore is a memStore that takes JSON lines. It checks each line
// against json.Marshal of its event, which the lines must equal byte for
// byte, and refuses plain Appends, which a Log must not make to a
// LineStore.
type lineStore struct {
	memStore
	lines    int      // events received with their lines
	mismatch []string // what did not match
}

func (s *lineStore) AppendLines(ctx context.Context, events []audit.Event, lines []byte, ends []int) error {
	start := 0
	for i := range events {
		e := events[i]
		e.Time = e.Time.UTC()
		want, err := json.Marshal(e)
		if err != nil {
			return err
		}
		want = append(want, '\n')
		if i >= len(ends) || !bytes.Equal(lines[start:ends[i]], want) {
			s.mismatch = append(s.mismatch, fmt.Sprintf("event %d: got line %q, want %q", events[i].Seq, lines[start:min(ends[i], len(lines))], want))
			continue
		}
		start = ends[i]
	}
	if len(ends) != len(events) || start != len(lines) {
		s.mismatch = append(s.mismatch, fmt.Sprintf("%d ends and %d bytes of lines for %d events", len(ends), len(lines), len(events)))
	}
	s.lines += len(events)
	return s.memStore.Append(ctx, events)
}

func (s *lineStore) Append(context.Context, []audit.Event) error {
	return errors.New("Append called on a LineStore")
}
