package audit

import (
	"context"
	"errors"
	"fmt"
)

// Report is the outcome of Verify.
type Report struct {
	// Events is the number of events found intact, from event 1 on.
	Events int64 `json:"events"`
	// Head is the Hash of the last intact event (Genesis for an empty log).
	// Compare it with a copy kept elsewhere to detect a truncated tail.
	Head string `json:"head"`
	// FirstBad is the Seq of the first event that breaks the chain, or 0.
	FirstBad int64 `json:"first_bad,omitempty"`
	// Problem says what is wrong with FirstBad, e.g. "event 42 was edited:
	// its hash does not match its contents".
	Problem string `json:"problem,omitempty"`
}

// OK reports whether the whole chain verified.
func (r Report) OK() bool { return r.FirstBad == 0 }

// reorderWindow is how far from its position Verify looks for the Seq an
// out-of-place event was sealed with. Farther moves are still detected, but
// reported as edits.
const reorderWindow = 1024

// errBroken stops the scan at the first problem.
var errBroken = errors.New("audit chain broken")

// Verify walks the chain in Seq order and checks that Seq starts at 1 with
// no gaps, that every event's Hash matches its contents, and that every
// Prev is the Hash of the event before it (Genesis for event 1). It stops
// at the first problem and describes it in the Report. The error is for
// failures to read the store, not for a broken chain.
func Verify(ctx context.Context, st Store) (Report, error) {
	r := Report{Head: Genesis}
	var h hasher
	want := int64(1)
	err := st.Scan(ctx, Filter{}, func(e Event) error {
		switch {
		case e.Seq != want:
			r.FirstBad, r.Problem = want, gapProblem(want, e.Seq)
		case h.hash(&e) != e.Hash:
			r.FirstBad, r.Problem = e.Seq, hashProblem(&h, e)
		case e.Prev != r.Head:
			r.FirstBad = e.Seq
			r.Problem = fmt.Sprintf("event %d does not follow event %d: its prev is not the hash of event %d, so one of them was rewritten", e.Seq, e.Seq-1, e.Seq-1)
			if e.Seq == 1 {
				r.Problem = "event 1 does not start the chain: its prev is not the genesis value, so it was rewritten"
			}
		default:
			r.Events++
			r.Head = e.Hash
			want++
			return nil
		}
		return errBroken
	})
	var corrupt *CorruptEventError
	switch {
	case err == nil || errors.Is(err, errBroken):
	case errors.As(err, &corrupt) && corrupt.Seq > want:
		r.FirstBad, r.Problem = want, gapProblem(want, corrupt.Seq)
	case errors.As(err, &corrupt) && corrupt.Seq == want:
		r.FirstBad = want
		r.Problem = fmt.Sprintf("event %d was edited: its stored form cannot be read (%v)", want, corrupt.Err)
	default:
		return r, fmt.Errorf("verify audit log: read events after event %d: %w", want-1, err)
	}
	return r, nil
}

// gapProblem describes the events that are missing before got.
func gapProblem(want, got int64) string {
	if got < want {
		return fmt.Sprintf("event %d appears again after event %d: the store returned events out of order", got, want-1)
	}
	missing := fmt.Sprintf("event %d is missing", want)
	if got-want > 1 {
		missing = fmt.Sprintf("events %d to %d are missing", want, got-1)
	}
	if want == 1 {
		return fmt.Sprintf("%s: the log starts at event %d", missing, got)
	}
	return fmt.Sprintf("%s: %d is followed by %d", missing, want-1, got)
}

// hashProblem tells a moved event, whose hash matches its contents at
// another Seq, from an edited one.
func hashProblem(h *hasher, e Event) string {
	at := e.Seq
	for m := max(1, at-reorderWindow); m <= at+reorderWindow; m++ {
		if m == at {
			continue
		}
		e.Seq = m
		if h.hash(&e) == e.Hash {
			return fmt.Sprintf("event %d is out of place: it holds the contents of event %d, so events were removed or reordered", at, m)
		}
	}
	return fmt.Sprintf("event %d was edited: its hash does not match its contents", at)
}
