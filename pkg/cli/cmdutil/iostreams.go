// Package cmdutil holds what every gatectl command shares: IO streams, the
// factory of lazily built dependencies, typed errors that carry exit codes,
// and output formatting.
package cmdutil

import (
	"io"
	"os"

	"golang.org/x/term"
)

// IOStreams is where a command reads and writes. Results go to Out;
// progress, notices and TUIs go to ErrOut.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	outTTY  bool
	noColor bool
}

// System returns the process's streams.
func System() *IOStreams {
	return &IOStreams{
		In:      os.Stdin,
		Out:     os.Stdout,
		ErrOut:  os.Stderr,
		outTTY:  term.IsTerminal(int(os.Stdout.Fd())),
		noColor: os.Getenv("NO_COLOR") != "",
	}
}

// Test returns streams over the given buffers, as a non-terminal.
func Test(in io.Reader, out, errOut io.Writer) *IOStreams {
	return &IOStreams{In: in, Out: out, ErrOut: errOut, noColor: true}
}

// IsTerminal reports whether Out is a terminal.
func (s *IOStreams) IsTerminal() bool { return s.outTTY }

// ColorEnabled reports whether output may use colour.
func (s *IOStreams) ColorEnabled() bool { return s.outTTY && !s.noColor }

// SetNoColor turns colour off (--no-color).
func (s *IOStreams) SetNoColor() { s.noColor = true }
