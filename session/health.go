package session

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"

	"github.com/strata-proxy/strata/layers"
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
}

func (h HealthOptions) withDefaults() (HealthOptions, error) {
	switch h.Kind {
	case "":
		h.Kind = "tcp"
	case "tcp", "tls":
	default:
		return h, fmt.Errorf("unknown health check kind %q: use tcp or tls", h.Kind)
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
	if h.Kind == "tls" && s.opts.Connector != nil {
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
	c.Close()
	return nil
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
