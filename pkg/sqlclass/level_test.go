package sqlclass

import (
	"strings"
	"testing"
)

func TestLevelText(t *testing.T) {
	for _, l := range []Level{LevelRead, LevelWrite, LevelAdmin} {
		b, err := l.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%v): %v", l, err)
		}
		var got Level
		if err := got.UnmarshalText(b); err != nil {
			t.Fatalf("UnmarshalText(%q): %v", b, err)
		}
		if got != l {
			t.Errorf("round trip: got %v, want %v", got, l)
		}
	}
	if !(LevelRead < LevelWrite && LevelWrite < LevelAdmin) {
		t.Errorf("levels are not ordered read < write < admin")
	}
	if got, want := Level(0).String(), "level(0)"; got != want {
		t.Errorf("zero level: got %q, want %q", got, want)
	}
	if _, err := Level(0).MarshalText(); err == nil {
		t.Errorf("MarshalText of the zero level: got no error")
	}
	var l Level
	err := l.UnmarshalText([]byte("superuser"))
	if err == nil || !strings.Contains(err.Error(), "read, write, admin") {
		t.Errorf("unknown level: got %v, want an error listing the valid levels", err)
	}
}
