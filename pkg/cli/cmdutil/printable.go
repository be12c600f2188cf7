package cmdutil

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Printable returns s with every character a terminal would act on rather
// than show written as an escape: C0 and C1 control characters (ESC starts
// the sequences that move the cursor, erase lines or set the window title),
// DEL, the Unicode controls that reorder text (bidi overrides and isolates),
// and bytes that are not UTF-8. Tab, newline and carriage return become \t,
// \n and \r, so one value stays on one line of one column. Text from the
// audit log can come from anyone who reached a listener, such as the
// database name of a refused connection; printed raw, it could rewrite what
// an auditor sees.
func Printable(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if mustEscape(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case !mustEscape(r, size):
			b.WriteString(s[i : i+size])
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

func mustEscape(r rune, size int) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r == utf8.RuneError && size == 1:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}
