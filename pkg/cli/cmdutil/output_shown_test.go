package cmdutil

import (
	"bytes"
	"strings"
	"testing"
)

// TestTableShowsNoControlCharacters is the audit-tail attack: a refused
// client's database name that erases the row on a terminal and prints a
// forged one in its place.
func TestTableShowsNoControlCharacters(t *testing.T) {
	forged := "orders\x1b[2K\r\x1b[1A\x1b[2K\x1b]0;pwned\x07\nFAKE-ROW\tuser:alice\tsession.end"
	for _, f := range []Format{FormatTable, FormatTSV} {
		tb := &Table{Header: []string{"SEQ", "TARGET", "REASON"}}
		tb.Add("1", forged, "no token")
		var buf bytes.Buffer
		if err := tb.Write(&buf, f); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if strings.ContainsAny(out, "\x1b\x07\r") {
			t.Errorf("%s output holds control characters: %q", f, out)
		}
		if lines := strings.Count(out, "\n"); lines != 2 {
			t.Errorf("%s output has %d lines, want 2 (header and one row): %q", f, lines, out)
		}
		if !strings.Contains(out, `orders\x1b[2K\r`) {
			t.Errorf("%s output does not show the escaped value: %q", f, out)
		}
	}
}

// TestWriteRowsShowsNoControlCharacters is the same for audit tail
// --follow, which writes rows as they come; its CSV is quoted as CSV.
func TestWriteRowsShowsNoControlCharacters(t *testing.T) {
	forged := "orders\x1b[1A\x1b[2K\nFAKE-ROW\tuser:alice"
	for f, want := range map[Format]string{
		FormatTable: `1  orders\x1b[1A\x1b[2K\nFAKE-ROW\tuser:alice  no token` + "\n",
		FormatTSV:   `1	orders\x1b[1A\x1b[2K\nFAKE-ROW\tuser:alice	no token` + "\n",
		FormatCSV:   "1,\"orders\x1b[1A\x1b[2K\nFAKE-ROW\tuser:alice\",no token\n",
	} {
		tb := &Table{Header: []string{"SEQ", "TARGET", "REASON"}}
		tb.Add("1", forged, "no token")
		var buf bytes.Buffer
		if err := tb.WriteRows(&buf, f); err != nil {
			t.Fatal(err)
		}
		if buf.String() != want {
			t.Errorf("%s rows = %q, want %q", f, buf.String(), want)
		}
	}
}
