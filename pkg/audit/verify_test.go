package audit_test

import (
	"context"
	"strings"
	"testing"

	"github.com/gatectl/gatectl/pkg/audit"
)

// sealed returns a valid chain of n events in a memStore.
func sealed(t *testing.T, n int) *memStore {
	t.Helper()
	st := &memStore{}
	l := openLog(t, st, audit.Options{Batch: 16, FlushEvery: never})
	record(t, l, n, "user:alice")
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return st
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name         string
		tamper       func(ev []audit.Event) []audit.Event
		wantFirstBad int64
		wantProblem  string
	}{
		{"clean", func(ev []audit.Event) []audit.Event { return ev }, 0, ""},
		{"empty", func([]audit.Event) []audit.Event { return nil }, 0, ""},
		{"edited", func(ev []audit.Event) []audit.Event {
			ev[41].Decision = "allow-really"
			return ev
		}, 42, "event 42 was edited: its hash does not match its contents"},
		{"removed", func(ev []audit.Event) []audit.Event {
			return append(ev[:16:16], ev[17:]...)
		}, 17, "event 17 is missing: 16 is followed by 18"},
		{"removed-several", func(ev []audit.Event) []audit.Event {
			return append(ev[:16:16], ev[19:]...)
		}, 17, "events 17 to 19 are missing: 16 is followed by 20"},
		{"removed-first", func(ev []audit.Event) []audit.Event { return ev[1:] },
			1, "event 1 is missing: the log starts at event 2"},
		{"swapped", func(ev []audit.Event) []audit.Event {
			ev[9], ev[10] = ev[10], ev[9]
			ev[9].Seq, ev[10].Seq = 10, 11
			return ev
		}, 10, "event 10 is out of place: it holds the contents of event 11"},
		{"removed-and-renumbered", func(ev []audit.Event) []audit.Event {
			ev = append(ev[:29:29], ev[30:]...)
			for i := 29; i < len(ev); i++ {
				ev[i].Seq--
			}
			return ev
		}, 30, "event 30 is out of place: it holds the contents of event 31"},
		{"relinked", func(ev []audit.Event) []audit.Event {
			ev[19].Principal = "user:mallory"
			ev[19].Hash = ev[19].ComputeHash()
			return ev
		}, 21, "event 21 does not follow event 20"},
		{"new-genesis", func(ev []audit.Event) []audit.Event {
			ev[0].Prev = strings.Repeat("1", 64)
			ev[0].Hash = ev[0].ComputeHash()
			return ev
		}, 1, "event 1 does not start the chain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := sealed(t, 60)
			st.events = tt.tamper(st.events)
			r, err := audit.Verify(context.Background(), st)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if r.FirstBad != tt.wantFirstBad {
				t.Errorf("FirstBad = %d (%s), want %d", r.FirstBad, r.Problem, tt.wantFirstBad)
			}
			if !strings.Contains(r.Problem, tt.wantProblem) || (tt.wantProblem == "") != (r.Problem == "") {
				t.Errorf("Problem = %q, want it to contain %q", r.Problem, tt.wantProblem)
			}
			if tt.wantFirstBad != 0 && r.Events != tt.wantFirstBad-1 {
				t.Errorf("Events = %d, want %d intact before the first bad one", r.Events, tt.wantFirstBad-1)
			}
		})
	}
}
