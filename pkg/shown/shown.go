// Package shown makes text that came from outside the gateway safe to print
// on one line of a terminal or a log: a client's database name in an audit
// row, a file name or commit subject from a policy commit. Printed raw, an
// escape sequence in it could move the cursor, erase what an auditor reads
// and forge a line in its place, and a bidi override could reorder it.
package shown

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// String returns s with every character that is not printable (controls,
// the format characters that reorder text, non-ASCII spaces) escaped as Go
// quotes it ("\x1b", "\t", "\u202e"), and every byte that is not UTF-8 as
// "\xff". Text with nothing to escape is returned as it is.
func String(s string) string { return Cut(s, -1) }

// Cut is String cut to at most max bytes, ending with "…" when cut, never
// inside an escape or a character; max < 0 means no limit.
func Cut(s string, max int) string {
	if (max < 0 || len(s) <= max) && !strings.ContainsFunc(s, hidden) && utf8.ValidString(s) {
		return s // the common case: nothing to do
	}
	var b strings.Builder
	fit := 0 // bytes of b that leave room for "…"
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case hidden(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
		if max < 0 {
			continue
		}
		if b.Len() > max {
			return b.String()[:fit] + "…"
		}
		if b.Len() <= max-len("…") {
			fit = b.Len()
		}
	}
	return b.String()
}

func hidden(r rune) bool { return !unicode.IsPrint(r) }
