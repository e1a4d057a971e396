package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/strata-proxy/strata/cmd/config"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// cmdProxy runs a one-line front with no file. It writes the configuration
// the flags describe and runs it exactly as `strata run` would, so the two
// share one schema, one validation and one assembly.
func cmdProxy(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := proxyConfig(args, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, nil, nil, stderr)
}

// proxyConfig turns the proxy command's flags into a validated Config.
func proxyConfig(args []string, stderr io.Writer) (*config.Config, error) {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var to listFlag
	from := fs.String("from", "", "listen `ADDR` (host:port, or :port for all addresses)")
	fs.Var(&to, "to", "server `URL`: http:// or https:// (mode http), tcp:// or tls:// (mode tcp); repeat for several")
	mode := fs.String("mode", "http", "`http` (HTTP/1.1 session) or tcp (byte stream)")
	cert := fs.String("cert", "", "certificate chain `FILE` (PEM): terminate TLS on the front")
	key := fs.String("key", "", "private key `FILE` (PEM) of --cert")
	noH3 := fs.Bool("no-h3", false, "with --cert/--key in mode http: do not serve HTTP/3 (QUIC) on the --from port")
	ca := fs.String("ca", "", "CA `FILE` (PEM) that tls:// servers are verified against (default: system roots)")
	insecure := fs.Bool("insecure", false, "do not verify tls:// servers' certificates")
	balance := fs.String("balance", "roundrobin", "balancing `algorithm`: roundrobin, leastconn, random, source, first")
	logFormat := fs.String("log", "json", "log `format`: json or text")
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err}
	}
	switch {
	case fs.NArg() != 0:
		return nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	case *from == "":
		return nil, usageError{errors.New("--from is required")}
	case len(to) == 0:
		return nil, usageError{errors.New("at least one --to is required")}
	case (*cert == "") != (*key == ""):
		return nil, usageError{errors.New("--cert and --key go together")}
	}

	// --to schemes: tcp:// and tls:// in mode tcp, http:// and https:// in
	// mode http; the second of each pair re-encrypts to the servers.
	plain, secure := "tcp", "tls"
	switch *mode {
	case "tcp":
	case "http":
		plain, secure = "http", "https"
	default:
		return nil, usageError{fmt.Errorf("--mode %q: want tcp or http", *mode)}
	}
	var servers []map[string]any
	scheme := ""
	for _, raw := range to {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, usageError{fmt.Errorf("--to %q: want SCHEME://host:port", raw)}
		}
		if u.Scheme != plain && u.Scheme != secure {
			return nil, usageError{fmt.Errorf("--to %q: in --mode %s the scheme is %s:// or %s://", raw, *mode, plain, secure)}
		}
		if scheme != "" && scheme != u.Scheme {
			return nil, usageError{errors.New("--to URLs must all use the same scheme")}
		}
		scheme = u.Scheme
		host := u.Host
		if u.Port() == "" {
			port := "80"
			if u.Scheme == "https" {
				port = "443"
			}
			host = net.JoinHostPort(u.Hostname(), port)
		}
		servers = append(servers, map[string]any{"address": host})
	}

	fe := map[string]any{"bind": *from, "mode": *mode, "default_backend": "to"}
	// As Caddy does, a TLS front in mode http serves HTTP/1.1, HTTP/2 and
	// HTTP/3 on the same port (TCP and UDP).
	if *cert != "" && *mode == "http" && !*noH3 {
		fe["bind"] = []any{map[string]any{"address": *from, "quic": true}}
	}
	if *cert != "" {
		c, _ := filepath.Abs(*cert)
		k, _ := filepath.Abs(*key)
		fe["tls"] = map[string]any{"certificates": []any{map[string]any{"cert": c, "key": k}}}
	}
	be := map[string]any{"balance": *balance, "servers": servers}
	if scheme == secure {
		t := map[string]any{"verify": !*insecure}
		if *ca != "" {
			c, _ := filepath.Abs(*ca)
			t["ca"] = c
		}
		be["tls"] = t
	}
	doc := map[string]any{
		"global":    map[string]any{"log": map[string]any{"format": *logFormat}},
		"frontends": map[string]any{"proxy": fe},
		"backends":  map[string]any{"to": be},
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Parse("strata-proxy-flags.yaml", data)
	if err != nil {
		return nil, fmt.Errorf("flags: %w", err)
	}
	return cfg, nil
}
