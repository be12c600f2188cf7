package sqlclass

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// deep returns statements whose parse trees nest n levels or more, built
// from each construct that chains (the parser grows these trees without
// growing its own stack, so only the depth check stops them).
func deep(n int) map[string]string {
	r := strings.Repeat
	return map[string]string{
		"plus":     "select " + r("1+", n) + "1",
		"concat":   "select " + r("'a'||", n) + "'a'",
		"cast":     "select 1" + r("::int", n),
		"is-null":  "select 1" + r(" is null", n),
		"collate":  "select 'a'" + r(` collate "C"`, n),
		"time":     "select now()" + r(" at time zone 'UTC'", n),
		"join":     "select * from t0" + r(" join t1 on true", n),
		"union":    r("select 1 union ", n) + "select 1",
		"subquery": "select 1" + r(" + (select 1", n/2) + r(")", n/2),
		// Everything before BETWEEN's AND is above the operand after it.
		"not-between": "select " + r("not ", n/2) + "x between 1 and " + r("1+", n/2) + "1",
		// A union chain across commas and ANDs.
		"union-lists": r("select a, b from t where a and b union ", n) + "select 1, 2",
		// Literals and comments that hide nothing.
		"escaped-string": "select E'\\'' " + r("||'x'", n),
		"comments":       "select 1 /* a /* nested */ comment */ " + r("+1 -- c\n", n),
		"dollar":         "select $q$ $x$ $q$ " + r("||$q$x$q$", n),
	}
}

func TestClassifyRefusesDeepNesting(t *testing.T) {
	for name, sql := range deep(30000) {
		t.Run(name, func(t *testing.T) {
			if len(sql) > MaxLen {
				sql = sql[:MaxLen]
			}
			_, err := Classify(sql)
			if !errors.Is(err, ErrTooDeep) {
				t.Fatalf("Classify(%.60q…, %d bytes) = %v; want ErrTooDeep", sql, len(sql), err)
			}
		})
	}
}

// TestClassifyAcceptsLongFlatStatements: what ORMs and bulk loads send is
// long but flat, and must still be classified.
func TestClassifyAcceptsLongFlatStatements(t *testing.T) {
	r := strings.Repeat
	for name, sql := range map[string]string{
		"values":       "insert into t values " + r("(1, null, true, '2024-01-01'::date, -1, 1.5e-3),", 5000) + "(1, null, true, now(), -1, 2)",
		"or-list":      "select 1 from t where " + r("a = 1 or ", 20000) + "true",
		"and-list":     "select 1 from t where " + r("a = 1 and ", 20000) + "true",
		"in-list":      "select 1 from t where a in (" + r("1, ", 50000) + "1)",
		"case-arms":    "update t set x = case " + r("when (id = 1) then 'x'::text ", 5000) + "else null end where id in (1, 2)",
		"long-string":  "select '" + r("a+b-c*", 50000) + "'",
		"e-string":     "select E'" + r(`\'+\\`, 20000) + "'",
		"dollar-body":  "create function f() returns int language plpgsql as $body$ begin return " + r("1+", 20000) + "1; end $body$",
		"comments":     "select 1 " + r("-- 1+1+1+1+1\n", 20000),
		"between-list": "select 1 from t where " + r("a between 1 and 2 and ", 5000) + "true",
		"statements":   r("select 1+1+1+1+1; ", 20000),
		"union-few":    r("select 1 union all ", 500) + "select 1",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Classify(sql); err != nil {
				t.Fatalf("Classify(%.60q…, %d bytes) = %.200v", sql, len(sql), err)
			}
		})
	}
}

// msgDepth is the nesting depth of the messages in m.
func msgDepth(m protoreflect.Message) int {
	deepest := 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := range l.Len() {
				deepest = max(deepest, msgDepth(l.Get(i).Message()))
			}
		case fd.Message() != nil && !fd.IsMap():
			deepest = max(deepest, msgDepth(v.Message()))
		}
		return true
	})
	return deepest + 1
}

// FuzzDepthBound checks that the bound is one: whatever PostgreSQL parses
// has a tree no deeper than a few messages per level the bound counts, so
// no input can pass the check and reach the parser's limits.
func FuzzDepthBound(f *testing.F) {
	for _, sql := range deep(40) {
		f.Add(sql)
	}
	f.Add("select case when a then 1+1+1 else (select 2) end from t join u on x between 1 and 2")
	f.Add("select E'\\'' || $$ $a$ $$ || \"q\"\"x\" /* /* */ */ -- z\n + 1e-5::numeric")
	f.Fuzz(func(t *testing.T, sql string) {
		if len(sql) > 1<<16 || strings.IndexByte(sql, 0) >= 0 {
			return
		}
		bound := depthBound(sql)
		if bound > MaxDepth {
			return
		}
		tree, err := parse(sql)
		if err != nil {
			return
		}
		if d := msgDepth(tree.ProtoReflect()); d > 6*bound+20 {
			t.Fatalf("parse tree %d messages deep, bound %d: %q", d, bound, sql)
		}
	})
}
