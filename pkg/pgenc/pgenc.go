// Package pgenc tells the PostgreSQL client encodings in which the gateway
// reads statements as PostgreSQL does from those in which it cannot, and
// renders statements sent in the former as UTF-8 (Converter).
//
// The gateway parses statement text as bytes in which quotes, backslashes
// and keywords are ASCII. That holds for every encoding a PostgreSQL server
// may use: no byte of a multibyte character is ASCII. It does not hold for
// the client-only encodings (SJIS, BIG5, GBK, UHC, GB18030, JOHAB), where
// the second byte of a character can be a backslash or a quote, so a
// string the gateway saw as one literal could end early on the server and
// hide a second statement.
package pgenc

import "strings"

// safe holds, by Key, every name and alias PostgreSQL accepts for the
// encodings a server may use. The client-only encodings are missing on
// purpose, and so is any name PostgreSQL may learn later (fail closed).
var safe = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Fields(`sqlascii utf8 unicode muleinternal
		eucjp eucjis2004 euccn euckr euctw
		latin1 latin2 latin3 latin4 latin5 latin6 latin7 latin8 latin9 latin10
		iso88591 iso88592 iso88593 iso88594 iso88595 iso88596 iso88597 iso88598 iso88599
		iso885910 iso885913 iso885914 iso885915 iso885916
		koi8 koi8r koi8u
		win win866 win874 win1250 win1251 win1252 win1253 win1254 win1255 win1256 win1257 win1258
		windows866 windows874 windows1250 windows1251 windows1252 windows1253 windows1254
		windows1255 windows1256 windows1257 windows1258
		alt abc tcvn tcvn5712 vscii`) {
		m[n] = true
	}
	return m
}()

// Safe reports whether PostgreSQL would read statements sent in the
// encoding called name with the quotes and backslashes the gateway sees.
func Safe(name string) bool { return safe[Key(name)] }

// Key is an encoding name as PostgreSQL looks it up (clean_encoding_name):
// ASCII letters and digits only, lower-cased, so "Shift_JIS", "s.jis" and
// "sjis " all name SJIS.
func Key(name string) string {
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'A' <= c && c <= 'Z':
			b = append(b, c+'a'-'A')
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			b = append(b, c)
		}
	}
	return string(b)
}
