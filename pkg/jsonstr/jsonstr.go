// Package jsonstr encodes strings as JSON exactly as encoding/json does,
// without its reflection and allocations: the audit log's lines and
// gatectl exec's JSON output write many strings, most of them plain.
package jsonstr

import "unicode/utf8"

// Plain reports whether every byte of s is ASCII that JSON writes as it
// is, which also makes s valid UTF-8: whether Append would only quote it.
func Plain(s string) bool {
	n := len(s)
	if n < 8 {
		// Pad to a word with a plain byte.
		x := uint64(lsb * 'a')
		for i := range n {
			x = x&^(0xff<<(8*i)) | uint64(s[i])<<(8*i)
		}
		return plainWord(x)
	}
	if i := skipPlain(s, 0); i <= n-8 {
		return false
	}
	// The last word overlaps bytes already found plain.
	return plainWord(load64(s[n-8:]))
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// skipPlain returns the first index from i on, in steps of eight bytes,
// where an 8-byte word may hold a byte that JSON does not write as it is.
// It never skips such a byte.
func skipPlain(s string, i int) int {
	for ; i+8 <= len(s) && plainWord(load64(s[i:i+8])); i += 8 {
	}
	return i
}

// load64 returns the first eight bytes of w, little-endian.
func load64(w string) uint64 {
	w = w[:8]
	return uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
		uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
}

// plainWord reports whether none of x's bytes is 0x80 or more, a control
// byte, '"', '\\', '<', '>' or '&': whether JSON writes all eight as they
// are. (v-lsb) &^ v has a byte's high bit set if and only if some byte of
// v is zero; (x-0x20*lsb) &^ x likewise for a byte below 0x20 when no byte
// is 0x80 or more, which x itself flags.
func plainWord(x uint64) bool {
	q, bs, lt, gt, amp := x^('"'*lsb), x^('\\'*lsb), x^('<'*lsb), x^('>'*lsb), x^('&'*lsb)
	return (x|(x-0x20*lsb)&^x|(q-lsb)&^q|(bs-lsb)&^bs|(lt-lsb)&^lt|(gt-lsb)&^gt|(amp-lsb)&^amp)&msb == 0
}

// jsonSafe marks the ASCII bytes encoding/json writes as they are (with its
// default HTML escaping: '<', '>' and '&' are escaped).
var jsonSafe = func() (safe [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		safe[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return safe
}()

// Append appends s as a JSON string exactly as encoding/json writes it: the short escapes \b \f \n \r \t, \u00XX for other control
// bytes and for '<' '>' '&', \u2028 and \u2029 escaped, and each byte of
// invalid UTF-8 replaced by \ufffd.
func Append(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if i = skipPlain(s, i); i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
