package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go/http3"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "h3load:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	url      string
	conns    int
	streams  int
	duration time.Duration
	ca       string
	sni      string
	insecure bool
	pid      int
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("h3load", flag.ContinueOnError)
	o := &options{}
	fs.StringVar(&o.url, "url", "", "`URL` to GET (https://host:port/path)")
	fs.IntVar(&o.conns, "c", 16, "QUIC connections")
	fs.IntVar(&o.streams, "m", 16, "requests in flight per connection")
	fs.DurationVar(&o.duration, "d", 8*time.Second, "how long to run")
	fs.StringVar(&o.ca, "ca", "", "PEM `FILE` of the CA the server's certificate is verified against")
	fs.StringVar(&o.sni, "sni", "", "server name to send and verify (default: the URL's host)")
	fs.BoolVar(&o.insecure, "insecure", false, "do not verify the server's certificate")
	fs.IntVar(&o.pid, "pid", 0, "`PID` of the server, to report its CPU time per request")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	u, err := url.Parse(o.url)
	switch {
	case err != nil || u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("-url %q: want https://host:port/path", o.url)
	case o.conns < 1 || o.streams < 1:
		return nil, errors.New("-c and -m must be at least 1")
	case o.duration <= 0:
		return nil, errors.New("-d must be positive")
	}
	if o.sni == "" {
		o.sni = u.Hostname()
	}
	return o, nil
}

// worker results, merged at the end.
type tally struct {
	requests, errors int64
	latencies        []time.Duration
}

func run(args []string, out io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	tc := &tls.Config{ServerName: o.sni, InsecureSkipVerify: o.insecure}
	if o.ca != "" {
		pem, err := os.ReadFile(o.ca)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-ca %s: no certificate", o.ca)
		}
		tc.RootCAs = pool
	}
	// One Transport per connection: each keeps exactly one QUIC
	// connection to the server.
	transports := make([]*http3.Transport, o.conns)
	for i := range transports {
		transports[i] = &http3.Transport{TLSClientConfig: tc.Clone()}
		defer transports[i].Close()
		if err := get(context.Background(), transports[i], o.url); err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
	}
	cpu0, _ := cpuTime(o.pid)
	self0, _ := cpuTime(os.Getpid())
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(o.duration))
	defer cancel()
	tallies := make([]tally, o.conns*o.streams)
	var wg sync.WaitGroup
	var inflight atomic.Int64
	for i := range tallies {
		tr := transports[i/o.streams]
		t := &tallies[i]
		wg.Go(func() {
			for ctx.Err() == nil {
				inflight.Add(1)
				t0 := time.Now()
				err := get(ctx, tr, o.url)
				inflight.Add(-1)
				if ctx.Err() != nil {
					return // ended by the deadline: not counted
				}
				if err != nil {
					t.errors++
					continue
				}
				t.requests++
				t.latencies = append(t.latencies, time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, cpuErr := cpuTime(o.pid)
	self1, _ := cpuTime(os.Getpid())

	var all tally
	for _, t := range tallies {
		all.requests += t.requests
		all.errors += t.errors
		all.latencies = append(all.latencies, t.latencies...)
	}
	slices.Sort(all.latencies)
	line := fmt.Sprintf("H3 requests=%d errors=%d seconds=%.2f rate=%.0f p50_us=%d p99_us=%d client_us_per_req=%.1f",
		all.requests, all.errors, elapsed.Seconds(), float64(all.requests)/elapsed.Seconds(),
		percentile(all.latencies, 0.50).Microseconds(), percentile(all.latencies, 0.99).Microseconds(),
		perRequest(self1-self0, all.requests))
	if o.pid != 0 && cpuErr == nil {
		line += fmt.Sprintf(" server_cpu_pct=%.0f server_us_per_req=%.1f",
			100*(cpu1-cpu0).Seconds()/elapsed.Seconds(), perRequest(cpu1-cpu0, all.requests))
	}
	fmt.Fprintln(out, line)
	if all.requests == 0 {
		return errors.New("no request succeeded")
	}
	return nil
}

// get makes one GET and reads the body to its end.
func get(ctx context.Context, tr *http3.Transport, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %s", resp.Status)
	}
	return err
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func perRequest(d time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(n)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// cpuTime is the user+system CPU time process pid has used, from
// /proc/PID/stat; pid 0 gives 0.
func cpuTime(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after it are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}
