package pgenc

import (
	"bytes"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Converter renders statement text sent in one of PostgreSQL's server
// encodings as UTF-8, for the parser and the audit, with the tokens
// PostgreSQL sees in the original: the same ASCII bytes in the same order,
// and a run of non-ASCII characters wherever the original has one. The
// client's bytes themselves still go to the target.
type Converter struct {
	// enc decodes the encoding; nil renders every byte >= 0x80 as one
	// rune (see latin1).
	enc encoding.Encoding
}

// decoders holds, by Key, the x/text decoders for the server encodings
// that have one; every other name in safe gets the byte-per-rune fallback.
var decoders = map[string]encoding.Encoding{
	"latin1": charmap.ISO8859_1, "iso88591": charmap.ISO8859_1,
	"latin2": charmap.ISO8859_2, "iso88592": charmap.ISO8859_2,
	"latin3": charmap.ISO8859_3, "iso88593": charmap.ISO8859_3,
	"latin4": charmap.ISO8859_4, "iso88594": charmap.ISO8859_4,
	"iso88595": charmap.ISO8859_5,
	"iso88596": charmap.ISO8859_6,
	"iso88597": charmap.ISO8859_7,
	"iso88598": charmap.ISO8859_8,
	"latin5":   charmap.ISO8859_9, "iso88599": charmap.ISO8859_9,
	"latin6": charmap.ISO8859_10, "iso885910": charmap.ISO8859_10,
	"latin7": charmap.ISO8859_13, "iso885913": charmap.ISO8859_13,
	"latin8": charmap.ISO8859_14, "iso885914": charmap.ISO8859_14,
	"latin9": charmap.ISO8859_15, "iso885915": charmap.ISO8859_15,
	"latin10": charmap.ISO8859_16, "iso885916": charmap.ISO8859_16,
	"koi8": charmap.KOI8R, "koi8r": charmap.KOI8R,
	"koi8u":  charmap.KOI8U,
	"win866": charmap.CodePage866, "windows866": charmap.CodePage866, "alt": charmap.CodePage866,
	"win874": charmap.Windows874, "windows874": charmap.Windows874,
	"win1250": charmap.Windows1250, "windows1250": charmap.Windows1250,
	"win1251": charmap.Windows1251, "windows1251": charmap.Windows1251, "win": charmap.Windows1251,
	"win1252": charmap.Windows1252, "windows1252": charmap.Windows1252,
	"win1253": charmap.Windows1253, "windows1253": charmap.Windows1253,
	"win1254": charmap.Windows1254, "windows1254": charmap.Windows1254,
	"win1255": charmap.Windows1255, "windows1255": charmap.Windows1255,
	"win1256": charmap.Windows1256, "windows1256": charmap.Windows1256,
	"win1257": charmap.Windows1257, "windows1257": charmap.Windows1257,
	"win1258": charmap.Windows1258, "windows1258": charmap.Windows1258,
	"abc": charmap.Windows1258, "tcvn": charmap.Windows1258, "tcvn5712": charmap.Windows1258,
	"vscii": charmap.Windows1258,
	"eucjp": japanese.EUCJP,
	"euckr": korean.EUCKR,
	// GBK is a superset of EUC_CN (GB 2312 in EUC form).
	"euccn": simplifiedchinese.GBK,
}

// fallback is the Converter of the encodings without a decoder (SQL_ASCII,
// EUC_TW, MULE_INTERNAL, EUC_JIS_2004) and of names the gateway does not
// know.
var fallback = &Converter{}

// converters holds one Converter per name in decoders.
var converters = func() map[string]*Converter {
	m := make(map[string]*Converter, len(decoders))
	for k, e := range decoders {
		m[k] = &Converter{enc: e}
	}
	return m
}()

// ConverterFor returns the Converter for statement text sent in the
// encoding called name (any spelling PostgreSQL accepts), or nil when the
// text is UTF-8 already (UTF8, UNICODE). A name without a decoder, known or
// not, gets the byte-per-rune rendering: it keeps the tokens, if not the
// characters (fail closed: never taken for UTF-8).
func ConverterFor(name string) *Converter {
	k := Key(name)
	switch k {
	case "utf8", "unicode":
		return nil
	}
	if c := converters[k]; c != nil {
		return c
	}
	return fallback
}

// String renders src as UTF-8. Where the decoder fails, replaces a byte it
// cannot map (U+FFFD), or would change the tokens (a decoder that takes an
// ASCII byte as the second byte of a character, as GBK and CP949 do), every
// byte >= 0x80 becomes one rune U+0080–U+00FF instead (fail closed: the
// tokens stay PostgreSQL's, only non-ASCII characters may read wrong).
func (c *Converter) String(src []byte) string {
	i := 0
	for i < len(src) && src[i] < utf8.RuneSelf {
		i++
	}
	if i == len(src) {
		return string(src)
	}
	if c.enc != nil {
		out, err := c.enc.NewDecoder().Bytes(src)
		if err == nil && sameTokens(src, out) && !bytes.Contains(out, replacement) {
			return string(out)
		}
	}
	return latin1(src)
}

var replacement = []byte(string(utf8.RuneError))

// latin1 maps each byte >= 0x80 of src to the rune of the same number, as
// ISO 8859-1 does, and keeps ASCII bytes.
func latin1(src []byte) string {
	n := len(src)
	for _, b := range src {
		if b >= utf8.RuneSelf {
			n++
		}
	}
	out := make([]byte, 0, n)
	for _, b := range src {
		out = utf8.AppendRune(out, rune(b))
	}
	return string(out)
}

// sameTokens reports whether out has exactly the ASCII bytes of src in the
// same order, and a run of non-ASCII bytes exactly where src has one: then
// PostgreSQL's lexer, to which every byte >= 0x80 is a letter, splits both
// into the same tokens.
func sameTokens(src, out []byte) bool {
	i, j := 0, 0
	for {
		si, sj := i, j
		for i < len(src) && src[i] >= utf8.RuneSelf {
			i++
		}
		for j < len(out) && out[j] >= utf8.RuneSelf {
			j++
		}
		if (i > si) != (j > sj) {
			return false
		}
		if i == len(src) || j == len(out) {
			return i == len(src) && j == len(out)
		}
		if src[i] != out[j] {
			return false
		}
		i++
		j++
	}
}
