package pgenc

import "testing"

func TestSafe(t *testing.T) {
	for name, want := range map[string]bool{
		"UTF8": true, "utf-8": true, "Unicode": true, "SQL_ASCII": true, "LATIN1": true,
		"ISO_8859_15": true, "WIN1252": true, "windows-1251": true, "EUC_JP": true, "KOI8-R": true,
		// PostgreSQL's client-only encodings and their aliases, however spelt.
		"SJIS": false, "sjis ": false, "s.jis": false, "Shift_JIS": false, "SHIFT_JIS_2004": false,
		"windows932": false, "WIN-932": false, "mskanji": false, "BIG5": false, "win950": false,
		"GBK": false, "windows936": false, "UHC": false, "win949": false, "GB18030": false, "JOHAB": false,
		// Unknown names are not safe (fail closed).
		"": false, "auto": false, "klingon": false, "utf８": false,
	} {
		if got := Safe(name); got != want {
			t.Errorf("Safe(%q) = %v, want %v", name, got, want)
		}
	}
}
