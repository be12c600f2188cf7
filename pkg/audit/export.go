package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// WriteJSONL writes e as one line of JSON. Keys appear in the order of the
// Event fields, Detail keys sorted, Time in RFC 3339 with nanoseconds in UTC,
// so the same event always produces the same bytes.
func WriteJSONL(w io.Writer, e Event) error {
	e.Time = e.Time.UTC()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Statements hold < > & often; keep them readable.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return fmt.Errorf("encode audit event %d: %w", e.Seq, err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write audit event %d: %w", e.Seq, err)
	}
	return nil
}

// Export streams the events of st that match f to w as JSON Lines (see
// WriteJSONL) and returns how many it wrote.
func Export(ctx context.Context, w io.Writer, st Store, f Filter) (int64, error) {
	bw := bufio.NewWriter(w)
	var n int64
	err := st.Scan(ctx, f, func(e Event) error {
		if err := WriteJSONL(bw, e); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("export audit log: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("export audit log: %w", err)
	}
	return n, nil
}
