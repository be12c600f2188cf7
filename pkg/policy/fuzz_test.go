package policy

import (
	"testing"
	"testing/fstest"
)

// FuzzLoad feeds arbitrary text to the loader as a grants file and a target:
// Load must never panic, and a problem always has a line within the file.
func FuzzLoad(f *testing.F) {
	for _, data := range baseFiles() {
		f.Add(data)
	}
	f.Add(linesSrc)
	f.Add("[[grant]]\nid = \"a\nb\"\n[\"x\n")
	f.Add("a = '''\n[[grant]]\n'''\n[[grant]]\nid = 1\n")
	f.Fuzz(func(t *testing.T, src string) {
		fsys := mapFS(baseFiles())
		fsys["grants/fuzz.toml"] = &fstest.MapFile{Data: []byte(src)}
		fsys["targets/fuzz.toml"] = &fstest.MapFile{Data: []byte(src)}
		_, err := Load(fsys)
		if le, ok := err.(*LoadError); ok {
			lines := 1
			for _, c := range src {
				if c == '\n' {
					lines++
				}
			}
			for _, p := range le.Problems {
				if p.Pos.Line < 0 || p.Pos.Line > lines {
					t.Errorf("problem %s: line out of the file's %d lines", p, lines)
				}
			}
		}
	})
}
