package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// enum is the shared text form of the policy's small enumerations: it parses
// with an error that lists the valid values.
type enum[T ~int] struct {
	what  string
	names []string // index i is the value T(i+1)
}

func (e enum[T]) String(v T) string {
	if v < 1 || int(v) > len(e.names) {
		return "unknown"
	}
	return e.names[v-1]
}

func (e enum[T]) Parse(s string) (T, error) {
	for i, n := range e.names {
		if n == s {
			return T(i + 1), nil
		}
	}
	return 0, fmt.Errorf("%s %q is not one of: %s", e.what, s, strings.Join(e.names, ", "))
}

// Access is an access level. Levels are ordered: read < write < admin.
type Access int

const (
	AccessRead Access = iota + 1
	AccessWrite
	AccessAdmin
)

var accessEnum = enum[Access]{"access", []string{"read", "write", "admin"}}

func (a Access) String() string { return accessEnum.String(a) }

// ParseAccess parses "read", "write" or "admin".
func ParseAccess(s string) (Access, error) { return accessEnum.Parse(s) }

func (a *Access) UnmarshalText(b []byte) (err error) {
	*a, err = ParseAccess(string(b))
	return err
}

func (a Access) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// TargetKind is what a target is.
type TargetKind int

const (
	TargetPostgres TargetKind = iota + 1
	TargetSSH
	TargetKubernetes
)

var targetKindEnum = enum[TargetKind]{"kind", []string{"postgres", "ssh", "kubernetes"}}

func (k TargetKind) String() string { return targetKindEnum.String(k) }

func (k *TargetKind) UnmarshalText(b []byte) (err error) {
	*k, err = targetKindEnum.Parse(string(b))
	return err
}

func (k TargetKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Decision is the outcome of evaluating a request.
type Decision int

const (
	Allow Decision = iota + 1
	Deny
	Hold
	Mask
)

var decisionEnum = enum[Decision]{"decision", []string{"allow", "deny", "hold", "mask"}}

func (d Decision) String() string { return decisionEnum.String(d) }

func (d *Decision) UnmarshalText(b []byte) (err error) {
	*d, err = decisionEnum.Parse(string(b))
	return err
}

func (d Decision) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// MaskStrategy is how a masked value is replaced.
type MaskStrategy int

const (
	MaskRedact MaskStrategy = iota + 1
	MaskPartial
	MaskHash
)

var maskStrategyEnum = enum[MaskStrategy]{"strategy", []string{"redact", "partial", "hash"}}

func (m MaskStrategy) String() string { return maskStrategyEnum.String(m) }

func (m *MaskStrategy) UnmarshalText(b []byte) (err error) {
	*m, err = maskStrategyEnum.Parse(string(b))
	return err
}

func (m MaskStrategy) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// Duration is a policy duration: Go syntax ("15m", "36h") plus days ("90d").
type Duration time.Duration

// ParseDuration parses "90d", "14d", "15m", "1h30m".
func ParseDuration(s string) (Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("duration %q: want a whole number of days like \"90d\" or a Go duration like \"15m\"", s)
		}
		return Duration(time.Duration(days) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("duration %q: want a whole number of days like \"90d\" or a Go duration like \"15m\"", s)
	}
	return Duration(d), nil
}

func (d *Duration) UnmarshalText(b []byte) (err error) {
	*d, err = ParseDuration(string(b))
	return err
}

func (d Duration) String() string {
	td := time.Duration(d)
	if td != 0 && td%(24*time.Hour) == 0 {
		return strconv.Itoa(int(td/(24*time.Hour))) + "d"
	}
	return td.String()
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
