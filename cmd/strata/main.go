// Command strata is the strata proxy: sub-commands, flags, signals and exit
// codes. The configuration schema lives in cmd/config and the assembly of a
// running graph from it in cmd/graph.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

const usage = `strata: a TLS-terminating, layered stream proxy

Usage:
  strata run -c FILE         run the configuration in FILE (SIGHUP reloads, SIGTERM drains and exits)
  strata validate FILE       check FILE; prints FILE:LINE:COL: message and exits 1 when invalid
  strata proxy --from ADDR --to URL [--to URL…] [--mode tcp] [--cert FILE --key FILE]
                             run a one-line front with no file
  strata demo [--port N]     run an embedded default: TLS front, two built-in backends
  strata ca root [-c FILE | --data DIR]
                             print the internal CA's root certificate (PEM) for clients to trust
  strata ca issue NAME… --out DIR [--client] [-c FILE | --data DIR]
                             write NAME.crt and NAME.key from the internal CA, for a backend
  strata version             print the version

Run "strata COMMAND -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "run":
		err = cmdRun(ctx, rest, stderr)
	case "validate":
		err = cmdValidate(rest, stderr)
	case "proxy":
		err = cmdProxy(ctx, rest, stderr)
	case "demo":
		err = cmdDemo(ctx, rest, stdout, stderr)
	case "ca":
		err = cmdCA(rest, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "strata %s\n", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "strata: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "strata %s: %v\n", cmd, ue.error)
		return 2
	case errors.Is(err, errReported):
		return 1
	default:
		fmt.Fprintf(stderr, "strata %s: %v\n", cmd, err)
		return 1
	}
}

// usageError is a bad command line (exit status 2).
type usageError struct{ error }

// errReported means the command already printed what went wrong.
var errReported = errors.New("reported")
