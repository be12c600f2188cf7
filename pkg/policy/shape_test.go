package policy

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/BurntSushi/toml"
)

// nested is n arrays around inner: [[[…inner…]]].
func nested(n int, inner string) string {
	return strings.Repeat("[", n) + inner + strings.Repeat("]", n)
}

// nestedTables is n inline tables around inner: {a = {a = … inner …}}.
func nestedTables(n int, inner string) string {
	return strings.Repeat("{a = ", n) + inner + strings.Repeat("}", n)
}

// dotted is a key of n parts: a.a.….a.
func dotted(n int) string {
	return strings.TrimSuffix(strings.Repeat("a.", n), ".")
}

func TestCheckShape(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int // 0: accepted
	}{
		{"empty", "", 0},
		{"policy", linesSrc, 0},
		{"arrays-at-limit", "a = " + nested(maxNesting, "1"), 0},
		{"arrays-past-limit", "x = 1\na = " + nested(maxNesting+1, "1"), 2},
		{"tables-at-limit", "a = " + nestedTables(maxKeyParts-1, "1"), 0},
		{"tables-past-limit", "a = " + nestedTables(maxKeyParts, "1"), 1},
		{"arrays-of-tables-past-limit", "a = " + strings.Repeat("[{b=", maxNesting/2) + "[1" + strings.Repeat("}]", maxNesting/2), 1},
		{"multi-line-array-past-limit", "a = [\n" + strings.Repeat("[\n", maxNesting) + "1" + strings.Repeat("]", maxNesting+1), maxNesting + 1},
		{"multi-line-inline-table", "a = {\n  b = 1,\n  c = " + nested(maxNesting-1, "1") + "\n}\n", 0},
		{"key-at-limit", dotted(maxKeyParts) + " = 1", 0},
		{"key-past-limit", "\n" + dotted(maxKeyParts+1) + " = 1", 2},
		{"key-spaced-past-limit", strings.ReplaceAll(dotted(maxKeyParts+1), ".", " . ") + " = 1", 1},
		{"header-at-limit", "[" + dotted(maxKeyParts-1) + "]\nb = 1", 0},
		{"headers-at-limit", "[" + dotted(maxKeyParts) + "]\n\n[[" + dotted(maxKeyParts) + "]]\n# c = 1\n[b]\nc = {}", 0},
		{"header-at-limit-then-key", "[" + dotted(maxKeyParts) + "]\n\n  c = 1", 3},
		{"header-and-key-past-limit", "[" + dotted(maxKeyParts-1) + "]\nb.c = 1", 2},
		{"array-header-and-key-past-limit", "[[" + dotted(maxKeyParts-1) + "]]\nb.c = 1", 2},
		{"header-past-limit", "[[" + dotted(maxKeyParts+1) + "]]", 1},
		{"new-header-resets", "[" + dotted(maxKeyParts-1) + "]\n[b]\n" + dotted(maxKeyParts-1) + " = 1", 0},
		{"inline-keys-add-up", "a.b = {" + dotted(maxKeyParts-2) + " = 1}", 0},
		{"inline-keys-past-limit", "a.b = {c = 1, " + dotted(maxKeyParts-1) + " = 1}", 1},
		{"array-of-inline-tables-keys", "a = [{" + dotted(maxKeyParts-1) + " = 1}, {b = 1}]", 0},
		{"value-dots-not-keys", "a = [" + strings.Repeat("1.5, ", 100) + "1979-05-27T07:32:00.999]", 0},
		{"quoted-key-dots", `"` + dotted(100) + `" = 1` + "\n'" + dotted(100) + "' = 1", 0},
		{"brackets-in-basic-string", `a = "` + nested(100, "") + `"`, 0},
		{"brackets-in-literal-string", `a = '` + nested(100, "") + `'`, 0},
		{"brackets-in-comment", "a = 1 # " + nested(100, "") + "\n# " + nested(100, ""), 0},
		{"brackets-in-multi-line-basic", "a = \"\"\"\n" + nested(100, "") + "\n\"\"\"", 0},
		{"brackets-in-multi-line-literal", "a = '''\n" + nested(100, "") + "\n'''", 0},
		{"escaped-quote", `a = "\"` + nested(100, "") + `"`, 0},
		{"escaped-quote-past-limit", `a = "\"", b = ` + nested(maxNesting+1, ""), 1},
		{"escaped-backslash", `a = "\\" # ` + "\nb = " + nested(maxNesting+1, ""), 2},
		{"literal-no-escape", `a = '\' ` + "\nb = " + nested(maxNesting+1, ""), 2},
		{"multi-line-escaped-quotes", "a = \"\"\"\\\"\"\"" + nested(100, "") + "\"\"\"", 0},
		{"multi-line-closes-with-extra-quotes", "a = \"\"\"x\"\"\"\"\"\nb = " + nested(maxNesting+1, ""), 2},
		{"multi-line-literal-extra-quotes", "a = '''x''''\nb = " + nested(maxNesting+1, ""), 2},
		{"multi-line-line-continuation", "a = \"\"\"x\\\n" + nested(100, "") + "\"\"\"", 0},
		{"empty-string-then-array", `a = ""` + "\nb = " + nested(maxNesting+1, ""), 2},
		{"unterminated-string-ends-at-newline", `a = "x` + "\nb = " + nested(maxNesting+1, ""), 2},
		{"comment-hides-nothing-next-line", "a = [ # [[[[\n" + nested(maxNesting, "") + "]", 2},
		{"unbalanced-closers", strings.Repeat("]}", 100) + "\na = " + nested(maxNesting+1, ""), 2},
		{"deep-header", nested(maxNesting+1, "a"), 1},
		{"review-stack-overflow", "a = " + nested(2_000_000, ""), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := checkShape(tt.src)
			got := 0
			if e != nil {
				got = e.line
			}
			if got != tt.line {
				t.Errorf("checkShape: got line %d (%v), want %d", got, e, tt.line)
			}
		})
	}
}

// TestLoadRefusesCostlyShapes loads the files a security review used against
// the loader: one value nested 2,000,000 deep overflowed the TOML decoder's
// stack (a fatal error, not a panic), and tens of KiB of nested inline
// tables or dotted keys took the decoder minutes and gigabytes. Each must be
// refused, with its file and line, before it is decoded: by its size or by
// checkShape.
func TestLoadRefusesCostlyShapes(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"nested-arrays-4mb", "a = " + nested(2_000_000, ""), "grants/x.toml: the file is 4000004 bytes, more than the 262144"},
		{"nested-arrays", "a = " + nested(100_000, ""), "grants/x.toml:1: arrays and inline tables are nested more than 32 deep"},
		{"nested-inline-tables", "a = " + nestedTables(5_000, "1"), "grants/x.toml:1: a key has more than 32 parts"},
		{"nested-inline-tables-100k", "a = " + nestedTables(20_000, "1"), "grants/x.toml:1: a key has more than 32 parts"},
		{"dotted-key", "[[grant]]\n" + dotted(50_000) + " = 1", "grants/x.toml:2: a key has more than 32 parts"},
		{"dotted-header", "[" + dotted(50_000) + "]", "grants/x.toml:1: a key has more than 32 parts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := baseFiles()
			files["grants/x.toml"] = tt.src
			_, err := Load(mapFS(files))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load: got %.300v, want a problem %q", err, tt.want)
			}
		})
	}
}

// FuzzCheckShape checks that checkShape never panics, reports a line within
// the file, and is not fooled by strings and comments: when it accepts a file
// that decodes, the decoded values are within its limits. (An array of
// tables adds a level of arrays that is a key part, not a bracket in a
// value, hence the looser bound on arrays.)
func FuzzCheckShape(f *testing.F) {
	f.Add(linesSrc)
	for _, data := range baseFiles() {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e := checkShape(src)
		if e != nil {
			if lines := strings.Count(src, "\n") + 1; e.line < 1 || e.line > lines {
				t.Fatalf("checkShape: line %d outside the file's %d lines", e.line, lines)
			}
			return
		}
		var v map[string]any
		if _, err := toml.Decode(src, &v); err != nil {
			return
		}
		if arrays, parts := shapeOf(v); arrays > maxNesting+maxKeyParts || parts > maxKeyParts {
			t.Fatalf("checkShape accepted a file whose values nest %d arrays and %d key parts deep", arrays, parts)
		}
	})
}

// shapeOf is the most arrays and tables on any path into v.
func shapeOf(v any) (arrays, tables int) {
	switch v := v.(type) {
	case map[string]any:
		for _, c := range v {
			a, t := shapeOf(c)
			arrays, tables = max(arrays, a), max(tables, t)
		}
		return arrays, tables + 1
	case []any:
		for _, c := range v {
			a, t := shapeOf(c)
			arrays, tables = max(arrays, a), max(tables, t)
		}
		return arrays + 1, tables
	case []map[string]any:
		for _, c := range v {
			a, t := shapeOf(c)
			arrays, tables = max(arrays, a), max(tables, t)
		}
		return arrays + 1, tables
	}
	return 0, 0
}

// BenchmarkLoadAtShapeLimits loads the costliest files checkShape accepts,
// each one maxFileSize bytes, and one refused file of each kind: a check by
// hand that the limits bound the decoder's cost (compare with the minutes
// the unbounded shapes took).
func BenchmarkLoadAtShapeLimits(b *testing.B) {
	fill := func(line func(i int) string) string {
		var sb strings.Builder
		for i := 0; ; i++ {
			l := line(i)
			if sb.Len()+len(l) > maxFileSize {
				return sb.String()
			}
			sb.WriteString(l)
		}
	}
	files := []struct {
		name string
		src  string
	}{
		{"inline-tables", fill(func(i int) string { return fmt.Sprintf("k%d = %s\n", i, nestedTables(maxKeyParts-1, "1")) })},
		{"arrays", fill(func(i int) string { return fmt.Sprintf("k%d = %s\n", i, nested(maxNesting, "1")) })},
		{"dotted-keys", fill(func(i int) string { return fmt.Sprintf("k%d.%s = 1\n", i, dotted(maxKeyParts-1)) })},
		{"headers", fill(func(i int) string { return fmt.Sprintf("[k%d.%s]\n", i, dotted(maxKeyParts-1)) })},
		{"grants", fill(func(i int) string { return "[[grant]]\nx = 1\n" })},
		{"refused-arrays", "a = " + nested(2_000_000, "")},
		{"refused-inline-tables", "a = " + nestedTables(20_000, "1")},
		{"refused-dotted-key", dotted(50_000) + " = 1"},
	}
	for _, f := range files {
		b.Run(f.name, func(b *testing.B) {
			fsys := mapFS(baseFiles())
			fsys["grants/x.toml"] = &fstest.MapFile{Data: []byte(f.src)}
			b.SetBytes(int64(len(f.src)))
			for b.Loop() {
				if _, err := Load(fsys); err == nil {
					b.Fatal("Load accepted the file")
				}
			}
		})
	}
}
