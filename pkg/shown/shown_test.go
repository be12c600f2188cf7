package shown

import "testing"

func TestCut(t *testing.T) {
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"plain", "grants/a.toml", 20, "grants/a.toml"},
		{"unicode", "zoë 数据", -1, "zoë 数据"},
		{"backslash-kept", `back\slash`, -1, `back\slash`},
		{"control", "a\x00b\tc\r\nd\x7f", 40, `a\x00b\tc\r\nd\x7f`},
		{"terminal-escape", "\x1b[2K\x1b]0;pwned\x07", -1, `\x1b[2K\x1b]0;pwned\a`},
		{"c1", "c1 \u009b31m", -1, `c1 \u009b31m`},
		{"bidi-override", "a\u202eb\u2066c\u2069", 40, `a\u202eb\u2066c\u2069`},
		{"invalid-utf8", "a\xff\xfeb", 40, `a\xff\xfeb`},
		{"replacement-char-kept", "a\uFFFDb", 40, "a\uFFFDb"},
		{"exactly-max", "abcdef", 6, "abcdef"},
		{"cut", "abcdefgh", 6, "abc…"},
		{"cut-not-inside-escape", "ab\x00cdefgh", 8, "ab…"},
		{"cut-not-inside-rune", "ab€€€", 8, "ab€…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Cut(tt.in, tt.max)
			if got != tt.want || (tt.max >= 0 && len(got) > tt.max) {
				t.Errorf("Cut(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
			if tt.max < 0 && String(tt.in) != got {
				t.Errorf("String(%q) = %q, want %q", tt.in, String(tt.in), got)
			}
		})
	}
}
