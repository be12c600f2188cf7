package audit_test

import (
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/audit"
)

func sampleEvent() audit.Event {
	return audit.Event{
		Seq:          7,
		Time:         time.Date(2026, 3, 1, 12, 30, 0, 123456789, time.UTC),
		Principal:    "user:alice",
		Action:       "statement",
		Target:       "orders",
		Decision:     "deny",
		Reason:       "destructive DDL is not allowed through the gateway",
		Rule:         "no-drop",
		PolicyCommit: "3f2a9c1",
		Session:      "s-1",
		Detail:       map[string]string{"statement": "DROP TABLE orders", "client": "127.0.0.1:5000"},
		Prev:         audit.Genesis,
	}
}

func TestComputeHashGolden(t *testing.T) {
	// Pins the canonical encoding: want was computed by an independent
	// implementation of the encoding documented on ComputeHash. A change here
	// breaks every stored chain.
	e := sampleEvent()
	got := e.ComputeHash()
	const want = "b125393bb32b1b314a21fbd5c547836257702dfbed3b462922907edecd2f9732"
	if got != want {
		t.Errorf("ComputeHash() = %s, want %s", got, want)
	}
}

func TestComputeHashCoversEveryField(t *testing.T) {
	base := sampleEvent()
	baseHash := base.ComputeHash()
	tests := []struct {
		name string
		edit func(*audit.Event)
	}{
		{"seq", func(e *audit.Event) { e.Seq++ }},
		{"time", func(e *audit.Event) { e.Time = e.Time.Add(time.Nanosecond) }},
		{"principal", func(e *audit.Event) { e.Principal = "user:mallory" }},
		{"action", func(e *audit.Event) { e.Action = "session.start" }},
		{"target", func(e *audit.Event) { e.Target = "billing" }},
		{"decision", func(e *audit.Event) { e.Decision = "allow" }},
		{"reason", func(e *audit.Event) { e.Reason = "" }},
		{"rule", func(e *audit.Event) { e.Rule = "other" }},
		{"policy-commit", func(e *audit.Event) { e.PolicyCommit = "0000000" }},
		{"session", func(e *audit.Event) { e.Session = "s-2" }},
		{"detail-value", func(e *audit.Event) {
			e.Detail = map[string]string{"statement": "SELECT 1", "client": "127.0.0.1:5000"}
		}},
		{"detail-key", func(e *audit.Event) {
			e.Detail = map[string]string{"statement": "DROP TABLE orders", "addr": "127.0.0.1:5000"}
		}},
		{"detail-removed", func(e *audit.Event) { e.Detail = nil }},
		{"prev", func(e *audit.Event) { e.Prev = "ab" }},
		// Length prefixes keep a byte moving between fields from colliding.
		{"field-boundary", func(e *audit.Event) { e.Principal, e.Action = "user:alices", "tatement" }},
		{"detail-boundary", func(e *audit.Event) {
			e.Detail = map[string]string{"statementDROP TABLE orders": "", "client": "127.0.0.1:5000"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sampleEvent()
			tt.edit(&e)
			if got := e.ComputeHash(); got == baseHash {
				t.Errorf("hash unchanged after editing %s: got %s, want anything else", tt.name, got)
			}
		})
	}
}

func TestComputeHashIgnoresRepresentation(t *testing.T) {
	tests := []struct {
		name string
		edit func(*audit.Event)
	}{
		{"hash-field", func(e *audit.Event) { e.Hash = "anything" }},
		{"time-zone", func(e *audit.Event) { e.Time = e.Time.In(time.FixedZone("x", 3600)) }},
		{"detail-order", func(e *audit.Event) {
			e.Detail = map[string]string{"client": "127.0.0.1:5000", "statement": "DROP TABLE orders"}
		}},
	}
	want := sampleEvent().ComputeHash()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sampleEvent()
			tt.edit(&e)
			if got := e.ComputeHash(); got != want {
				t.Errorf("ComputeHash() = %s, want %s", got, want)
			}
		})
	}
	empty, none := sampleEvent(), sampleEvent()
	empty.Detail, none.Detail = map[string]string{}, nil
	if got, want := empty.ComputeHash(), none.ComputeHash(); got != want {
		t.Errorf("empty Detail hash = %s, want the nil Detail hash %s", got, want)
	}
}
