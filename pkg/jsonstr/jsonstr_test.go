package jsonstr

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestPlainWordEveryByte puts each byte value at each position of a word
// and across a word boundary: the 8-byte scan must stop for exactly the
// bytes JSON does not write as they are, and the string must encode as
// encoding/json encodes it.
func TestPlainWordEveryByte(t *testing.T) {
	for c := range 256 {
		for pos := range 19 {
			s := []byte(strings.Repeat("a", 19))
			s[pos] = byte(c)
			str := string(s)
			wantPlain := c < utf8.RuneSelf && jsonSafe[c]
			if got := Plain(str); got != wantPlain {
				t.Errorf("Plain(%q) = %t, want %t", str, got, wantPlain)
			}
			if got := Plain(str[pos:min(pos+3, len(str))]); got != wantPlain {
				t.Errorf("Plain(%q) = %t, want %t", str[pos:min(pos+3, len(str))], got, wantPlain)
			}
			want, _ := json.Marshal(str)
			if got := Append(nil, str); !bytes.Equal(got, want) {
				t.Errorf("Append(%q) = %s, want %s", str, got, want)
			}
		}
	}
}
