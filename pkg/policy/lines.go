package policy

import (
	"strings"
)

// lineIndex maps the keys of one TOML file to the lines they are written on.
// BurntSushi/toml reports which keys were not decoded but not where they are,
// so the loader scans the source itself. The scan understands exactly as much
// TOML as it needs to: table headers, array-of-tables headers, dotted and
// quoted keys, and values that span lines (multi-line strings and arrays),
// which it skips. Keys inside inline tables are not indexed; lookups for them
// fall back to the line of the nearest indexed parent.
type lineIndex struct {
	byKey  map[string][]keyLine // dotted key → each place it is written, in order
	inElem map[elemKey]int      // key in one element of an [[array]] → first line it is on
	arrays map[string][]int     // "grant" → line of each [[grant]] header
}

// elemKey is a dotted key inside element idx of [[arr]] (arr "" for none).
// Looking a key up by its element, rather than scanning all its places, keeps
// the loader linear in the size of a file with many elements.
type elemKey struct {
	arr string
	idx int
	key string
}

// keyLine is one key written in the file.
type keyLine struct {
	key  string // dotted path without array indexes: "grant.match.sub"
	arr  string // the [[array]] table the key is inside, "" for none
	idx  int    // which element of arr
	line int
}

// indexLines scans src. It never fails: on text it does not understand it
// indexes less, and lookups fall back to coarser positions.
func indexLines(src string) *lineIndex {
	li := &lineIndex{byKey: map[string][]keyLine{}, inElem: map[elemKey]int{}, arrays: map[string][]int{}}
	var (
		table []string // current table path
		arr   string
		idx   int
		sc    valueScanner
	)
	for n, text := range strings.Split(src, "\n") {
		line := n + 1
		if sc.open() {
			sc.scan(text)
			continue
		}
		s := strings.TrimSpace(text)
		switch {
		case s == "" || s[0] == '#':
			continue
		case strings.HasPrefix(s, "[["):
			path, _, ok := parseKey(s[2:])
			if !ok {
				continue
			}
			table = path
			arr, idx = strings.Join(path, "."), len(li.arrays[strings.Join(path, ".")])
			li.arrays[arr] = append(li.arrays[arr], line)
			li.add(keyLine{arr, arr, idx, line})
		case s[0] == '[':
			path, _, ok := parseKey(s[1:])
			if !ok {
				continue
			}
			table = path
			arr, idx = li.enclosingArray(path)
			li.add(keyLine{strings.Join(path, "."), arr, idx, line})
		default:
			path, rest, ok := parseKey(s)
			if !ok || !strings.HasPrefix(rest, "=") {
				continue
			}
			full := append(append([]string{}, table...), path...)
			li.add(keyLine{strings.Join(full, "."), arr, idx, line})
			sc.scan(rest[1:])
		}
	}
	return li
}

func (li *lineIndex) add(kl keyLine) {
	li.byKey[kl.key] = append(li.byKey[kl.key], kl)
	ek := elemKey{kl.arr, kl.idx, kl.key}
	if _, ok := li.inElem[ek]; !ok {
		li.inElem[ek] = kl.line
	}
}

// enclosingArray finds the array of tables that a [table.path] header extends:
// the longest prefix of path that is an array seen so far, and its last
// element.
func (li *lineIndex) enclosingArray(path []string) (string, int) {
	for i := len(path) - 1; i > 0; i-- {
		name := strings.Join(path[:i], ".")
		if lines := li.arrays[name]; len(lines) > 0 {
			return name, len(lines) - 1
		}
	}
	return "", 0
}

// arrayLine is the line of the header of element idx of [[arr]], or 0.
func (li *lineIndex) arrayLine(arr string, idx int) int {
	if lines := li.arrays[arr]; idx < len(lines) {
		return lines[idx]
	}
	return 0
}

// keyLine is the line of key (a dotted path without indexes, relative to the
// file's root) inside element idx of [[arr]] (arr "" for none). Without an
// exact match it returns the line of the nearest indexed parent key, then the
// element's header line, then 0.
func (li *lineIndex) keyLine(arr string, idx int, key string) int {
	for k := key; k != ""; k = parentKey(k) {
		if line, ok := li.inElem[elemKey{arr, idx, k}]; ok {
			return line
		}
	}
	return li.arrayLine(arr, idx)
}

// occurrence finds the nth (0-based) written occurrence of key, or the
// nearest indexed parent's (its last one when it has fewer). ok is false
// when nothing matches.
func (li *lineIndex) occurrence(key string, nth int) (keyLine, bool) {
	for k := key; k != ""; k = parentKey(k) {
		if all := li.byKey[k]; len(all) > 0 {
			return all[min(nth, len(all)-1)], true
		}
	}
	return keyLine{}, false
}

func parentKey(k string) string {
	i := strings.LastIndexByte(k, '.')
	if i < 0 {
		return ""
	}
	return k[:i]
}

// parseKey reads a dotted key of bare and quoted parts from the start of s and
// returns its parts and the text after it (trimmed). For a table header the
// closing bracket is consumed too.
func parseKey(s string) (parts []string, rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", false
		}
		var part string
		switch s[0] {
		case '"', '\'':
			end := strings.IndexByte(s[1:], s[0])
			if end < 0 {
				return nil, "", false
			}
			part, s = s[1:end+1], s[end+2:]
		default:
			end := strings.IndexFunc(s, func(r rune) bool {
				return !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
			})
			if end == 0 {
				return nil, "", false
			}
			if end < 0 {
				end = len(s)
			}
			part, s = s[:end], s[end:]
		}
		parts = append(parts, part)
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, ".") {
			s = s[1:]
			continue
		}
		s = strings.TrimLeft(strings.TrimPrefix(strings.TrimPrefix(s, "]]"), "]"), " \t")
		return parts, s, true
	}
}

// valueScanner follows a TOML value across lines: strings (single- and
// multi-line, basic and literal), comments and bracket nesting.
type valueScanner struct {
	depth int
	ml    string // `"""` or `'''` while inside a multi-line string
}

func (v *valueScanner) open() bool { return v.depth > 0 || v.ml != "" }

func (v *valueScanner) scan(s string) {
	for i := 0; i < len(s); i++ {
		if v.ml != "" {
			if v.ml == `"""` && s[i] == '\\' {
				i++
				continue
			}
			if strings.HasPrefix(s[i:], v.ml) {
				i += 2
				v.ml = ""
			}
			continue
		}
		switch c := s[i]; c {
		case '#':
			return
		case '[', '{':
			v.depth++
		case ']', '}':
			if v.depth > 0 {
				v.depth--
			}
		case '"', '\'':
			if strings.HasPrefix(s[i:], strings.Repeat(string(c), 3)) {
				v.ml = strings.Repeat(string(c), 3)
				i += 2
				continue
			}
			for i++; i < len(s) && s[i] != c; i++ {
				if c == '"' && s[i] == '\\' {
					i++
				}
			}
		}
	}
}
