package audit

import (
	"context"
	"fmt"
	"time"
)

// Event is one entry of the audit log. Callers fill in the descriptive fields;
// Log assigns Seq, Prev and Hash when it writes the event.
type Event struct {
	// Seq numbers events from 1 without gaps.
	Seq int64 `json:"seq"`
	// Time is when the event happened; it is stored with nanosecond precision
	// in UTC.
	Time time.Time `json:"time"`
	// Principal names the verified caller ("user:alice", "service:etl"), or
	// is empty when there is none yet (a refused token).
	Principal string `json:"principal"`
	// Action says what happened: "auth.accept", "auth.refuse",
	// "policy.load", "session.start", "statement", "api.audit.search", ...
	Action string `json:"action"`
	// Target is the target's name, if the event concerns one.
	Target string `json:"target"`
	// Decision is the outcome: "allow", "deny", "hold", "mask", ...
	Decision string `json:"decision"`
	// Reason is a short human-readable explanation. It must never hold a
	// token, password or other credential.
	Reason string `json:"reason"`
	// Rule is the id of the rule that decided, if any.
	Rule string `json:"rule"`
	// PolicyCommit is the policy repository commit that made the decision.
	PolicyCommit string `json:"policy_commit"`
	// Session is the id of the client session the event belongs to.
	Session string `json:"session"`
	// Detail holds further key/value facts (the statement, the client
	// address, ...). A nil and an empty map are the same event.
	Detail map[string]string `json:"detail,omitempty"`
	// Details stands in for Detail where an event is recorded on a hot
	// path: the Log asks it for the entries when it seals the event, on
	// the Log's own goroutine, so that the caller builds no map. Set one of
	// Detail and Details; the event is the same either way, but
	// encoding/json sees only Detail (AppendJSONLine sees both).
	Details Details `json:"-"`
	// Prev is the Hash of the event with Seq-1, or Genesis for the first one.
	Prev string `json:"prev"`
	// Hash is Event.ComputeHash of this event, in lowercase hex.
	Hash string `json:"hash"`
}

// Details supplies an event's Detail entries (see Event.Details).
type Details interface {
	// AppendDetail appends the entries to dst and returns the result. Of
	// entries with equal keys the last one counts, as if each were
	// assigned to a map in turn; appending them in ascending key order
	// saves sorting. It is called on another goroutine than the one that
	// recorded the event, possibly more than once, and must append the
	// same entries every time.
	AppendDetail(dst []Field) []Field
}

// Field is one Detail entry.
type Field struct{ Key, Value string }

// Filter selects events for Store.Scan. Zero fields do not restrict.
type Filter struct {
	// Since and Until bound Time: Since <= Time < Until.
	Since, Until time.Time
	// Principal, Action, Target, Decision and Session match exactly.
	Principal, Action, Target, Decision, Session string
	// AfterSeq keeps events with Seq > AfterSeq; BeforeSeq keeps events with
	// Seq < BeforeSeq. They page forwards and backwards.
	AfterSeq, BeforeSeq int64
	// Limit caps the number of events; 0 means no limit.
	Limit int
	// Desc returns the newest events first; the default is ascending Seq.
	Desc bool
}

// Store persists audit events. Implementations must be safe for concurrent
// use; Log is the only writer.
type Store interface {
	// Append writes events, already sealed and in ascending Seq order, in one
	// transaction: either all of them are durable or none is. It must not
	// keep the slice after it returns.
	Append(ctx context.Context, events []Event) error
	// Tail returns the Seq and Hash of the last event, or (0, "", nil) when
	// the log is empty.
	Tail(ctx context.Context) (seq int64, hash string, err error)
	// Scan calls fn for each event that matches f, ordered by Seq, while
	// streaming: it never holds the whole result in memory. If fn returns an
	// error, Scan stops and returns an error that wraps it (errors.Is holds).
	Scan(ctx context.Context, f Filter, fn func(Event) error) error
}

// LineStore is a Store that keeps events as JSON lines (see
// AppendJSONLine). Log encodes each event's line as it seals the event,
// while the event is at hand with its Detail sorted, and writes through
// AppendLines instead of Append. An event given to AppendLines may carry
// its Detail as Details, with Detail nil: the line holds it either way.
type LineStore interface {
	Store
	// AppendLines is Append of events whose JSON lines, as AppendJSONLine
	// writes them, are given: event i's is lines[ends[i-1]:ends[i]], from 0
	// for the first. It must not keep lines or ends after it returns.
	AppendLines(ctx context.Context, events []Event, lines []byte, ends []int) error
}

// CorruptEventError is returned (wrapped) by Store.Scan for a stored event
// that cannot be read back as an Event, such as a Detail that is no longer
// a JSON object. Verify reports it as an edited event.
type CorruptEventError struct {
	Seq int64
	Err error
}

func (e *CorruptEventError) Error() string {
	return fmt.Sprintf("audit event %d cannot be read: %v", e.Seq, e.Err)
}

func (e *CorruptEventError) Unwrap() error { return e.Err }
