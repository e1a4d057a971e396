package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/strata-proxy/strata/cmd/config"
)

// cmdValidate checks a configuration file and prints its errors as
// FILE:LINE:COL: message, one per line, and nothing when it is valid.
func cmdValidate(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("want exactly one FILE")}
	}
	cfg, err := config.Load(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errReported
	}
	// Build without starting: catches what only the runtime knows, such as
	// a mode this build does not serve yet.
	if err := checkBuild(cfg); err != nil {
		fmt.Fprintln(stderr, err)
		return errReported
	}
	return nil
}
