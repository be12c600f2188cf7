package pgenc

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestConverterString(t *testing.T) {
	for _, c := range []struct {
		name, enc, src, want string
	}{
		{"ascii", "LATIN1", "SELECT 1", "SELECT 1"},
		{"latin1", "LATIN1", "SELECT 'caf\xe9'", "SELECT 'café'"},
		{"latin1-alias", "iso-8859-1", "SELECT \xe9t\xe9", "SELECT été"},
		{"win1252-euro", "WIN1252", "SELECT '\x80'", "SELECT '€'"},
		{"win1251", "win", "SELECT '\xcf\xf0\xe8\xe2\xe5\xf2'", "SELECT 'Привет'"},
		{"koi8r", "KOI8R", "SELECT '\xf0\xd2\xc9\xd7\xc5\xd4'", "SELECT 'Привет'"},
		{"latin9", "LATIN9", "SELECT '\xa4'", "SELECT '€'"},
		{"euc-jp", "EUC_JP", "SELECT '\xc6\xfc\xcb\xdc'", "SELECT '日本'"},
		{"euc-kr", "EUC_KR", "SELECT '\xc7\xd1'", "SELECT '한'"},
		{"euc-cn", "EUC_CN", "SELECT '\xd6\xd0'", "SELECT '中'"},
		// Without a decoder, or where the decoder fails or would change
		// the tokens, every byte >= 0x80 is one rune.
		{"sql-ascii", "SQL_ASCII", "SELECT '\xe9\xff'", "SELECT '\u00e9\u00ff'"},
		{"euc-tw", "EUC_TW", "SELECT '\x8e\xa2\xa1\xa1'", "SELECT '\u008e\u00a2\u00a1\u00a1'"},
		{"unknown", "klingon", "SELECT '\xe9'", "SELECT 'é'"},
		{"win1252-undefined", "WIN1252", "SELECT '\x81\xe9'", "SELECT '\u0081é'"},
		{"euc-jp-invalid", "EUC_JP", "SELECT '\xc6'", "SELECT '\u00c6'"},
		// CP949 (what x/text calls EUC-KR) and GBK take ASCII letters as
		// second bytes; PostgreSQL's EUC_KR and EUC_CN do not.
		{"euc-kr-ascii-trail", "EUC_KR", "SELECT '\x81A'", "SELECT '\u0081A'"},
		{"euc-cn-ascii-trail", "EUC_CN", "SELECT '\x81A'", "SELECT '\u0081A'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conv := ConverterFor(c.enc)
			if conv == nil {
				t.Fatalf("ConverterFor(%q) = nil", c.enc)
			}
			got := conv.String([]byte(c.src))
			if got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
			if !sameTokens([]byte(c.src), []byte(got)) {
				t.Errorf("%q does not keep the tokens of %q", got, c.src)
			}
		})
	}
}

func TestConverterForUTF8(t *testing.T) {
	for _, name := range []string{"UTF8", "utf-8", "Unicode"} {
		if c := ConverterFor(name); c != nil {
			t.Errorf("ConverterFor(%q) = %v, want nil", name, c)
		}
	}
}

// TestConverterForEverySafeName: every encoding the gateway accepts has a
// decoder, except the ones listed here on purpose.
func TestConverterForEverySafeName(t *testing.T) {
	without := map[string]bool{"utf8": true, "unicode": true, "sqlascii": true, "muleinternal": true, "eucjis2004": true, "euctw": true}
	for name := range safe {
		if _, ok := decoders[name]; ok == without[name] {
			t.Errorf("%s: has a decoder %v, want %v", name, ok, !without[name])
		}
	}
	for name := range decoders {
		if !safe[name] {
			t.Errorf("%s has a decoder but is not Safe", name)
		}
	}
}

func TestSameTokens(t *testing.T) {
	for _, c := range []struct {
		name, src, out string
		want           bool
	}{
		{"equal", "a\xe9b", "a\xc3\xa9b", true},
		{"ascii-lost", "a\x81Ab", "a\xea\xb0\x80b", false},
		{"run-lost", "1\xe9", "1", false},
		{"run-added", "1", "1\xc3\xa9", false},
		{"ascii-changed", "a\xe9'", "a\xc3\xa9\"", false},
		{"trailing", "a", "ab", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := sameTokens([]byte(c.src), []byte(c.out)); got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func FuzzConverterKeepsTokens(f *testing.F) {
	f.Add("EUC_JP", []byte("SELECT '\xc6\xfc' || \x81'x"))
	f.Add("EUC_KR", []byte("SELECT \x81A"))
	f.Add("WIN1252", []byte("SELECT '\x81\x80'"))
	f.Fuzz(func(t *testing.T, enc string, src []byte) {
		c := ConverterFor(enc)
		if c == nil {
			return
		}
		got := c.String(src)
		if !utf8.ValidString(got) {
			t.Errorf("%q renders as invalid UTF-8 %q", src, got)
		}
		if !sameTokens(src, []byte(got)) {
			t.Errorf("%q renders as %q, with other tokens", src, got)
		}
		if strings.ContainsRune(got, utf8.RuneError) {
			t.Errorf("%q renders with U+FFFD: %q", src, got)
		}
	})
}
