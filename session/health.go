package session

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/h1"
	"github.com/strata-proxy/strata/layers/h2"
	"github.com/strata-proxy/strata/layers/msg"
)

// HealthOptions configures the active checks of a backend's servers.
type HealthOptions struct {
	// Kind is "tcp" (the default when empty): a TCP connect to the server's
	// address; or "tls": Connector.Connect, whose stages include the TLS
	// handshake (and a PROXY header, if configured), then close. A server
	// with no Connector gets the "tcp" check.
	Kind string
	// Interval is the time between two checks of a server; default 2 s.
	Interval time.Duration
	// Timeout bounds one check; default Interval.
	Timeout time.Duration
	// Rise is how many consecutive successes bring a down server up;
	// default 2.
	Rise int
	// Fall is how many consecutive failures take an up server down;
	// default 3.
	Fall int

	// HTTP is the request of the "http" kind: sent through the server's
	// Connector (so over TLS when the server is), the server is up when it
	// answers with the expected status.
	HTTP HTTPCheck
}

// HTTPCheck is the request of an "http" health check.
type HTTPCheck struct {
	// Method defaults to GET; Path to "/"; Host to the server's address.
	Method, Path, Host string
	// Status lists the statuses expected; empty accepts any 2xx or 3xx.
	Status []int
}

func (h HealthOptions) withDefaults() (HealthOptions, error) {
	switch h.Kind {
	case "":
		h.Kind = "tcp"
	case "tcp", "tls":
	case "http":
		if h.HTTP.Method == "" {
			h.HTTP.Method = "GET"
		}
		if h.HTTP.Path == "" {
			h.HTTP.Path = "/"
		}
		if !validToken(h.HTTP.Method) || h.HTTP.Path[0] != '/' || strings.ContainsAny(h.HTTP.Path+h.HTTP.Host, " \r\n\x00") {
			return h, fmt.Errorf("http health check: invalid method %q, path %q or host %q", h.HTTP.Method, h.HTTP.Path, h.HTTP.Host)
		}
	default:
		return h, fmt.Errorf("unknown health check kind %q: use tcp, tls or http", h.Kind)
	}
	if h.Interval <= 0 {
		h.Interval = 2 * time.Second
	}
	if h.Timeout <= 0 {
		h.Timeout = h.Interval
	}
	if h.Rise < 1 {
		h.Rise = 2
	}
	if h.Fall < 1 {
		h.Fall = 3
	}
	return h, nil
}

// Start starts the active health checks: one goroutine per server, the
// first check at a random point of the first interval so that servers (and
// backends) are not all checked at once. They stop when ctx is done.
// Servers start up, and go down after Fall failed checks. Start does
// nothing without HealthOptions, and nothing the second time.
func (b *Backend) Start(ctx context.Context) {
	if b.health == nil || !b.started.CompareAndSwap(false, true) {
		return
	}
	for _, s := range b.servers {
		b.checks.Go(func() { s.runChecks(ctx, b.health) })
	}
}

// runChecks is the server's checker. Its counters are its own; it is the
// only writer of s.healthy.
func (s *Server) runChecks(ctx context.Context, h *HealthOptions) {
	t := time.NewTimer(rand.N(h.Interval))
	defer t.Stop()
	var oks, fails int
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.probe(ctx, h)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			oks, fails = oks+1, 0
			if oks >= h.Rise && !s.healthy.Load() {
				s.setHealthy(true, fmt.Sprintf("%d %s checks passed", oks, h.Kind))
			}
		} else {
			oks, fails = 0, fails+1
			if fails >= h.Fall && s.healthy.Load() {
				s.setHealthy(false, err.Error())
			}
		}
		t.Reset(h.Interval)
	}
}

// probe runs one check.
func (s *Server) probe(ctx context.Context, h *HealthOptions) error {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	var c net.Conn
	var err error
	if (h.Kind == "tls" || h.Kind == "http") && s.opts.Connector != nil {
		// A task pretending to be a client: no socket, no addresses.
		in := &layers.Initiator{Listener: "health-check", Accepted: time.Now()}
		c, err = s.opts.Connector.Connect(ctx, in)
	} else {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", s.opts.Address)
	}
	if err != nil {
		return err
	}
	if h.Kind == "http" && s.mux != nil {
		return s.probeH2(ctx, c, &h.HTTP)
	}
	defer c.Close()
	if h.Kind == "http" {
		return s.probeHTTP(ctx, c, &h.HTTP)
	}
	return nil
}

// probeH2 is the HTTP check of a server spoken to over HTTP/2: the same
// request, as an HTTP/2 stream on a connection of its own.
func (s *Server) probeH2(ctx context.Context, c net.Conn, hc *HTTPCheck) error {
	host := hc.Host
	if host == "" {
		host = s.opts.Address
	}
	status, err := h2.Probe(ctx, c, hc.Method, hc.Path, host)
	if err != nil {
		return err
	}
	if (len(hc.Status) == 0 && status < 400) || slices.Contains(hc.Status, status) {
		return nil
	}
	return fmt.Errorf("http check %s %s: status %d", hc.Method, hc.Path, status)
}

// healthBuffers serves the HTTP checks of every backend: a check reads a
// status line and a few fields.
var healthBuffers = layers.NewBufferPool(4 << 10)

// probeHTTP sends the check's request on c and checks the status.
func (s *Server) probeHTTP(ctx context.Context, c net.Conn, hc *HTTPCheck) error {
	var timeout time.Duration
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
		timeout = max(time.Until(d), time.Millisecond)
	}
	host := hc.Host
	if host == "" {
		host = s.opts.Address
	}
	req := &msg.Head{Method: []byte(hc.Method), Path: []byte(hc.Path), Authority: []byte(host), Major: 1, Minor: 1,
		Close: true, Fields: msg.Fields{{Name: []byte("User-Agent"), Value: []byte("strata-health-check")},
			{Name: []byte("Connection"), Value: []byte("close")}}}
	cc := h1.NewClientConn(c, healthBuffers, h1.Limits{})
	defer cc.Close()
	if err := cc.WriteRequest(req, nil, true); err != nil {
		return err
	}
	for {
		resp, err := cc.ReadHead(timeout)
		if err != nil {
			return err
		}
		if resp.Status < 200 {
			continue
		}
		if (len(hc.Status) == 0 && resp.Status < 400) || slices.Contains(hc.Status, resp.Status) {
			return nil
		}
		return fmt.Errorf("http check %s %s: status %d", hc.Method, hc.Path, resp.Status)
	}
}

func (s *Server) setHealthy(up bool, reason string) {
	b := s.b
	attrs := []any{
		slog.String("backend", b.name),
		slog.String("server", s.opts.Name),
		slog.String("address", s.opts.Address),
		slog.String("reason", reason),
	}
	if up {
		b.log.Info("server up", attrs...)
	} else {
		b.log.Warn("server down", attrs...)
	}
	s.healthy.Store(up)
	// Up: queued clients may use it. Down: those pinned to it move on, or
	// fail when nothing is left.
	b.wake()
}
