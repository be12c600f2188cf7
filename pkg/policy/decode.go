package policy

import (
	"errors"
	"io/fs"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// tomlFile is one decoded policy file with what is needed to place problems
// in it.
type tomlFile struct {
	name   string
	md     toml.MetaData
	lines  *lineIndex
	failed map[string]map[int]bool // [[array]] elements that did not decode
}

// pos is the position of key (a dotted path relative to the element) in
// element idx of [[arr]]; arr "" means the file's root table.
func (f *tomlFile) pos(arr string, idx int, key string) Pos {
	full := key
	if arr != "" {
		full = arr + "." + key
	}
	return Pos{f.name, f.lines.keyLine(arr, idx, full)}
}

// decodeFile reads and decodes name into v. A file that does not parse, or
// is past the size limits or checkShape's, is a problem with its line; the
// caller gets ok false and skips the file's content, so nothing from a
// broken file is ever applied (fail closed).
func (l *loader) decodeFile(name string, v any) (f *tomlFile, ok bool) {
	src, ok := l.readFile(name)
	if !ok {
		return nil, false
	}
	if e := checkShape(src); e != nil {
		l.problems.add(name, e.line, "%s", e.msg)
		return nil, false
	}
	f = &tomlFile{name: name, lines: indexLines(src), failed: map[string]map[int]bool{}}
	var err error
	f.md, err = toml.Decode(src, v)
	if err != nil {
		l.decodeError(f, "", 0, err)
		return f, false
	}
	return f, true
}

// readFile reads name within maxFileSize and what is left of maxTotalSize;
// the size is checked before the file is read.
func (l *loader) readFile(name string) (string, bool) {
	if l.tooLarge {
		return "", false // reported once, at the file that reached the limit
	}
	info, err := fs.Lstat(l.fsys, name)
	if err != nil {
		l.problems.add(name, 0, "cannot read the file: %v", err)
		return "", false
	}
	if !l.withinLimits(name, info.Size()) {
		return "", false
	}
	src, err := fs.ReadFile(l.fsys, name)
	if err != nil {
		l.problems.add(name, 0, "cannot read the file: %v", err)
		return "", false
	}
	if !l.withinLimits(name, int64(len(src))) { // it grew since Lstat
		return "", false
	}
	l.read += int64(len(src))
	return string(src), true
}

// withinLimits reports whether a file of size bytes may be read, and records
// a problem if not.
func (l *loader) withinLimits(name string, size int64) bool {
	switch {
	case size > maxFileSize:
		l.problems.add(name, 0, "the file is %d bytes, more than the %d a policy file may have; split it into several files", size, maxFileSize)
		return false
	case l.read+size > maxTotalSize:
		l.tooLarge = true
		l.problems.add(name, 0, "with this file the policy files come to more than %d bytes, the most a policy may have; this file and the ones after it were not read", maxTotalSize)
		return false
	}
	return true
}

// decodeItems decodes each element of an [[arr]] array of tables on its own,
// so that one bad element does not hide problems in the others. The result
// has nil where an element failed to decode.
func decodeItems[E any, P interface {
	*E
	setPos(Pos)
}](l *loader, f *tomlFile, arr string, prims []toml.Primitive) []P {
	out := make([]P, len(prims))
	for i, prim := range prims {
		v := P(new(E))
		if err := f.md.PrimitiveDecode(prim, v); err != nil {
			l.decodeError(f, arr, i, err)
			if f.failed[arr] == nil {
				f.failed[arr] = map[int]bool{}
			}
			f.failed[arr][i] = true
			continue
		}
		v.setPos(Pos{f.name, f.lines.arrayLine(arr, i)})
		out[i] = v
	}
	return out
}

func (i *Issuer) setPos(p Pos)         { i.Pos = p }
func (s *ServiceAccount) setPos(p Pos) { s.Pos = p }
func (g *Grant) setPos(p Pos)          { g.Pos = p }
func (r *DenyRule) setPos(p Pos)       { r.Pos = p }
func (r *ApproveRule) setPos(p Pos)    { r.Pos = p }
func (r *MaskRule) setPos(p Pos)       { r.Pos = p }
func (t *Test) setPos(p Pos)           { t.Pos = p }

// decodeErrorText matches the errors BurntSushi/toml returns as plain errors
// (type mismatches): `toml: line 3 (last key "grant.id"): incompatible ...`.
var decodeErrorText = regexp.MustCompile(`^toml: (?:line \d+ )?\(last key "([^"]*)"\): (.*)$`)

// decodeError records a decoding error at the line of the key it is about.
func (l *loader) decodeError(f *tomlFile, arr string, idx int, err error) {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		line := pe.Position.Line
		if arr != "" && pe.LastKey != "" {
			line = f.lines.keyLine(arr, idx, pe.LastKey)
		}
		l.problems.add(f.name, line, "%s", pe.Message)
		return
	}
	if m := decodeErrorText.FindStringSubmatch(err.Error()); m != nil {
		l.problems.add(f.name, f.lines.keyLine(arr, idx, m[1]), "%s: %s", m[1], m[2])
		return
	}
	l.problems.add(f.name, f.lines.arrayLine(arr, idx), "%s", strings.TrimPrefix(err.Error(), "toml: "))
}

// unknownKeys reports every key in f that no field decoded: a misspelt key
// must not be silently ignored, since it may be a rule that then never
// applies (fail closed). A table's unknown children are not repeated under
// an unknown table, and elements that failed to decode are already reported.
func (l *loader) unknownKeys(f *tomlFile) {
	undecoded := f.md.Undecoded()
	isUndecoded := make(map[string]bool, len(undecoded))
	for _, k := range undecoded {
		isUndecoded[k.String()] = true
	}
	nth := map[string]int{}
	for _, k := range undecoded {
		key := k.String()
		n := nth[key]
		nth[key]++
		if isUndecoded[parentKey(key)] {
			continue
		}
		kl, _ := f.lines.occurrence(key, n)
		if f.failed[kl.arr][kl.idx] {
			continue
		}
		l.problems.add(f.name, kl.line, "unknown key %q", key)
	}
}
