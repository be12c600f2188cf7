package policy

import (
	"fmt"
	"strings"
	"testing"
)

const linesSrc = `# comment [[grant]]
top = "x"
doc = """
[[grant]]
fake = 1
"""

[[grant]]
id = "a"
list = [
  "b = 1",
  "[c]",
]
"quoted.key" = 1
a.b = 2
match = { sub = "x" }

[[grant]]
id = 'it''s'
[grant.match]
sub = "y"  # trailing [comment]
[other]
k = 1
`

func TestIndexLines(t *testing.T) {
	li := indexLines(linesSrc)
	tests := []struct {
		name string
		arr  string
		idx  int
		key  string
		want int
	}{
		{"root-key", "", 0, "top", 2},
		{"after-multiline-string", "grant", 0, "grant", 8},
		{"first-element-key", "grant", 0, "grant.id", 9},
		{"after-multiline-array", "grant", 0, "grant.quoted.key", 14},
		{"dotted-key", "grant", 0, "grant.a.b", 15},
		{"inline-table-falls-back", "grant", 0, "grant.match.sub", 16},
		{"second-element", "grant", 1, "grant.id", 19},
		{"subtable-of-element", "grant", 1, "grant.match.sub", 21},
		{"plain-table", "", 0, "other.k", 23},
		{"unknown-falls-back-to-header", "grant", 1, "grant.nope", 18},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := li.keyLine(tt.arr, tt.idx, tt.key); got != tt.want {
				t.Errorf("keyLine(%s, %d, %s): got %d, want %d", tt.arr, tt.idx, tt.key, got, tt.want)
			}
		})
	}
	if got, want := li.arrayLine("grant", 1), 18; got != want {
		t.Errorf("arrayLine(grant, 1): got %d, want %d", got, want)
	}
	kl, ok := li.occurrence("grant.id", 1)
	if !ok || kl.line != 19 || kl.idx != 1 {
		t.Errorf("occurrence(grant.id, 1): got %+v %v, want line 19 in element 1", kl, ok)
	}
}

// TestKeyLineManyElements: keys are found in their own element of an array
// of tables, the first place wins when a key is written twice in one
// element, and a key missing from its element falls back to the element's
// header even when other elements have it.
func TestKeyLineManyElements(t *testing.T) {
	var src strings.Builder
	const n = 1000
	for i := range n {
		src.WriteString("[[grant]]\n") // line 4i+1
		if i%2 == 0 {
			src.WriteString("id = 1\nid = 2\n[grant.match]\n") // lines 4i+2 to 4i+4
		} else {
			src.WriteString("x = 1\n\n\n")
		}
	}
	li := indexLines(src.String())
	for i := range n {
		header, wantID, wantSub := 4*i+1, 4*i+2, 4*i+4
		if i%2 == 1 {
			wantID, wantSub = header, header
		}
		if got := li.keyLine("grant", i, "grant.id"); got != wantID {
			t.Errorf("keyLine(grant, %d, grant.id): got %d, want %d", i, got, wantID)
		}
		if got := li.keyLine("grant", i, "grant.match.sub"); got != wantSub {
			t.Errorf("keyLine(grant, %d, grant.match.sub): got %d, want %d", i, got, wantSub)
		}
	}
}

// BenchmarkKeyLine indexes a file of many [[grant]] elements and looks up a
// key in each, as the loader does for every problem and decoded element. The
// time per byte must not grow with the file's size: a scan of every place a
// key is written, per lookup, made 400 KB take seconds.
func BenchmarkKeyLine(b *testing.B) {
	for _, size := range []int{100 << 10, 200 << 10, 400 << 10} {
		src := strings.Repeat("[[grant]]\nx=1\n", size/len("[[grant]]\nx=1\n"))
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				li := indexLines(src)
				for i := range li.arrays["grant"] {
					li.keyLine("grant", i, "grant.x")
				}
			}
		})
	}
}
