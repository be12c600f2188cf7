package sqlclass

import "fmt"

// Level is the access a statement needs. Levels are ordered: a grant of a
// level allows every statement of that level and below. The zero value is not
// a valid level, so an unset Level never reads as "read".
type Level int

// The access levels, lowest first.
const (
	// LevelRead is for statements that only read data or session state.
	LevelRead Level = iota + 1
	// LevelWrite adds statements that change rows: INSERT, UPDATE, DELETE,
	// MERGE, COPY FROM, and anything that contains one of them.
	LevelWrite
	// LevelAdmin is DDL, DCL and everything else, including every statement
	// this package does not recognise.
	LevelAdmin
)

var levelNames = [...]string{LevelRead: "read", LevelWrite: "write", LevelAdmin: "admin"}

// Valid reports whether l is one of LevelRead, LevelWrite or LevelAdmin.
func (l Level) Valid() bool { return l >= LevelRead && l <= LevelAdmin }

// String returns "read", "write" or "admin", or "level(N)" for an invalid level.
func (l Level) String() string {
	if !l.Valid() {
		return fmt.Sprintf("level(%d)", int(l))
	}
	return levelNames[l]
}

// MarshalText encodes a valid level as its name.
func (l Level) MarshalText() ([]byte, error) {
	if !l.Valid() {
		return nil, fmt.Errorf("invalid access level %d", int(l))
	}
	return []byte(l.String()), nil
}

// UnmarshalText decodes a level name, so TOML and JSON decode into Level directly.
func (l *Level) UnmarshalText(text []byte) error {
	v, err := ParseLevel(string(text))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// ParseLevel returns the level named s; the error lists the valid names.
func ParseLevel(s string) (Level, error) {
	for l := LevelRead; l <= LevelAdmin; l++ {
		if levelNames[l] == s {
			return l, nil
		}
	}
	return 0, fmt.Errorf("unknown access level %q: valid levels are read, write, admin", s)
}
