package policy

import "testing"

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
