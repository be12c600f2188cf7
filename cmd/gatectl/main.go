// Command gatectl is the gatectl gateway and its command-line client.
package main

import (
	"os"

	"github.com/gatectl/gatectl/pkg/cli"
)

func main() { os.Exit(cli.Main()) }
