package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
)

// Set by the release build (-ldflags -X).
var (
	version = "dev"
	commit  = ""
	date    = ""
)

func newVersionCmd(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print gatectl's version",
		Example: "  $ gatectl version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := commit
			if c == "" {
				if bi, ok := debug.ReadBuildInfo(); ok {
					for _, s := range bi.Settings {
						if s.Key == "vcs.revision" {
							c = s.Value
						}
					}
				}
			}
			fmt.Fprintf(f.IO.Out, "gatectl %s", version)
			if c != "" {
				fmt.Fprintf(f.IO.Out, " (%s)", c)
			}
			if date != "" {
				fmt.Fprintf(f.IO.Out, " built %s", date)
			}
			fmt.Fprintf(f.IO.Out, " %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

// newManCmd writes man pages; `make docs` runs it. Hidden: it is for
// packagers, not users.
func newManCmd(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:    "man <dir>",
		Short:  "Write gatectl's man pages into a directory",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			hdr := &doc.GenManHeader{Title: "GATECTL", Section: "1", Source: "gatectl", Manual: "gatectl manual"}
			if err := doc.GenManTree(root, hdr, args[0]); err != nil {
				return err
			}
			n, _ := filepath.Glob(filepath.Join(args[0], "*.1"))
			fmt.Fprintf(f.IO.ErrOut, "wrote %d man pages to %s\n", len(n), args[0])
			return nil
		},
	}
}
