package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-proxy/strata/certs"
	"github.com/strata-proxy/strata/cmd/config"
)

// defaultDataDir is global.data_dir's default, relative to the working
// directory when no configuration file is given.
const defaultDataDir = "./strata-data"

// cmdCA runs "strata ca root" and "strata ca issue": the internal CA kept
// in data_dir/ca, for clients that must trust strata's internal
// certificates and for backends that present certificates from the same
// CA.
func cmdCA(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("want a sub-command: root or issue")}
	}
	switch args[0] {
	case "root":
		return cmdCARoot(args[1:], stdout, stderr)
	case "issue":
		return cmdCAIssue(args[1:], stdout, stderr)
	}
	return usageError{fmt.Errorf("unknown sub-command %q: want root or issue", args[0])}
}

// caFlags are the flags that say where the CA lives.
type caFlags struct {
	config, data *string
}

func addCAFlags(fs *flag.FlagSet) caFlags {
	return caFlags{
		config: fs.String("c", "", "configuration `FILE` whose global.data_dir holds the CA"),
		data:   fs.String("data", "", "data `DIR` holding the CA (default: global.data_dir of -c, else "+defaultDataDir+")"),
	}
}

// open opens (creating when absent) the internal CA in DIR/ca.
func (f caFlags) open(stderr io.Writer) (*certs.CA, error) {
	dir := defaultDataDir
	switch {
	case *f.data != "":
		dir = *f.data
	case *f.config != "":
		cfg, err := config.Load(*f.config)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return nil, errReported
		}
		dir = cfg.Global.DataDir
	}
	return certs.OpenCA(filepath.Join(dir, "ca"), nil)
}

// parseInterleaved parses flags that may come after positional arguments,
// as in "strata ca issue a.internal --out certs".
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func cmdCARoot(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ca root", flag.ContinueOnError)
	fs.SetOutput(stderr)
	where := addCAFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return usageError{err}
	}
	if len(pos) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", pos[0])}
	}
	ca, err := where.open(stderr)
	if err != nil {
		return err
	}
	_, err = stdout.Write(ca.RootPEM())
	return err
}

func cmdCAIssue(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ca issue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	where := addCAFlags(fs)
	out := fs.String("out", "", "`DIR` to write NAME.crt (chain) and NAME.key into (required)")
	base := fs.String("name", "", "file `BASE` name (default: the first NAME, '*' written as 'wildcard')")
	client := fs.Bool("client", false, "also allow the certificate to authenticate a client (mutual TLS)")
	lifetime := fs.Duration("lifetime", certs.DefaultLifetime, "validity `DURATION` of the certificate")
	names, err := parseInterleaved(fs, args)
	if err != nil {
		return usageError{err}
	}
	switch {
	case len(names) == 0:
		return usageError{errors.New("want at least one NAME (a DNS name, *.domain or an IP address)")}
	case *out == "":
		return usageError{errors.New("--out DIR is required")}
	case *lifetime < time.Minute:
		return usageError{errors.New("--lifetime must be at least 1m")}
	}
	ca, err := where.open(stderr)
	if err != nil {
		return err
	}
	c, err := ca.Issue(names, certs.IssueOptions{Client: *client, Lifetime: *lifetime})
	if err != nil {
		return err
	}
	b := *base
	if b == "" {
		b = strings.ReplaceAll(strings.ReplaceAll(names[0], "*", "wildcard"), ":", "_")
	}
	if strings.ContainsAny(b, `/\`) || b == "." || b == ".." {
		return usageError{fmt.Errorf("--name %q: want a file name, not a path", b)}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if err := certs.WriteFiles(c, *out, b); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n%s\n", filepath.Join(*out, b+".crt"), filepath.Join(*out, b+".key"))
	return nil
}
