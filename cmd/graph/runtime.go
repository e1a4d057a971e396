package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"github.com/strata-proxy/strata/cmd/config"
	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/h3"
)

// Runtime owns the listening sockets across reloads and the Graph in force.
// Apply builds a new Graph, keeps the sockets both configurations bind,
// opens the new ones and closes the gone ones, so a reload refuses no
// connection; the old Graph drains in the background.
//
// Apply and Shutdown are serialised by mu; the accept loops only read the
// listener's handler, which SetHandler swaps atomically.
type Runtime struct {
	logger    *slog.Logger
	accessLog *slog.Logger
	// svc (the ACME Provider, the internal CA) outlives the Graphs.
	svc *services

	mu        sync.Mutex
	global    *layers.ConnLimit
	listeners map[string]*layers.Listener
	// quic are the UDP listeners of `quic: true` binds, by the same keys.
	quic     map[string]*h3.Listener
	current  *Graph
	draining sync.WaitGroup
	serving  sync.WaitGroup
	closed   bool
}

// NewRuntime returns a Runtime with no listener. logger receives operational
// lines, accessLog one line per session.
func NewRuntime(logger, accessLog *slog.Logger) *Runtime {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Runtime{logger: logger, accessLog: accessLog, svc: newServices(logger),
		listeners: make(map[string]*layers.Listener), quic: make(map[string]*h3.Listener)}
}

// Apply makes cfg the configuration in force. On error nothing changes: the
// previous Graph keeps serving on its listeners.
func (r *Runtime) Apply(cfg *config.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return layers.ErrShutdown
	}
	g, err := buildGraph(cfg, r.logger, r.accessLog, r.svc, false)
	if err != nil {
		return err
	}
	if r.global == nil {
		r.global = layers.NewConnLimit(cfg.Global.MaxConnections)
	} else if r.current != nil && r.current.Config.Global.MaxConnections != cfg.Global.MaxConnections {
		r.logger.Warn("global.max_connections changed: the new value applies after a restart",
			"running", r.current.Config.Global.MaxConnections, "configured", cfg.Global.MaxConnections)
	}

	// Open what is new first: if any bind fails, close only those and keep
	// the old configuration.
	opened := make(map[string]*layers.Listener)
	openedQUIC := make(map[string]*h3.Listener)
	closeOpened := func() {
		for _, l := range opened {
			l.Close()
		}
		for _, l := range openedQUIC {
			l.Close()
		}
	}
	for _, f := range cfg.Frontends {
		for _, a := range f.Bind {
			key := a.String()
			if _, ok := r.listeners[key]; !ok {
				ln, err := layers.Listen("tcp", net.JoinHostPort(a.Host, strconv.Itoa(a.Port)))
				if err != nil {
					closeOpened()
					return fmt.Errorf("%s:%s: frontend %s: bind %s: %w", cfg.File, a.Pos, f.Name, key, err)
				}
				opened[key] = ln
			}
			if _, ok := r.quic[key]; a.QUIC && !ok {
				ln, err := h3.Listen(net.JoinHostPort(a.Host, strconv.Itoa(a.Port)), h3.Options{
					MaxHeaderBytes: int(f.HTTPLimits.MaxHeaderBytes),
					Logger:         r.logger.With("frontend", f.Name),
				})
				if err != nil {
					closeOpened()
					return fmt.Errorf("%s:%s: frontend %s: bind %s (quic): %w", cfg.File, a.Pos, f.Name, key, err)
				}
				openedQUIC[key] = ln
			}
		}
	}

	g.Start()
	for key, ln := range r.listeners {
		if h := g.Handler(key); h != nil {
			ln.SetHandler(h)
			continue
		}
		ln.Close()
		delete(r.listeners, key)
		r.logger.Info("listener closed", "addr", key)
	}
	for key, ln := range r.quic {
		if h, ok := g.QUICHandler(key); ok {
			ln.SetHandler(h) // the QUIC connections stay; new streams use g
			continue
		}
		delete(r.quic, key)
		r.draining.Add(1)
		go func() {
			defer r.draining.Done()
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Global.DrainTimeout)
			defer cancel()
			ln.Shutdown(ctx) // GOAWAY; the streams in flight finish
		}()
		r.logger.Info("quic listener closed", "addr", key)
	}
	for key, ln := range openedQUIC {
		h, _ := g.QUICHandler(key)
		ln.SetHandler(h)
		r.quic[key] = ln
		r.serving.Add(1)
		go func() {
			defer r.serving.Done()
			if err := ln.Serve(r.global); err != nil {
				r.logger.Error("quic listener stopped", "addr", ln.Name(), "err", err)
			}
		}()
		r.logger.Info("listening", "addr", ln.Addr().String(), "bind", key, "proto", "quic")
	}
	for key, ln := range opened {
		ln.SetHandler(g.Handler(key))
		r.listeners[key] = ln
		r.serving.Add(1)
		go func() {
			defer r.serving.Done()
			if err := ln.Serve(r.global); err != nil {
				r.logger.Error("listener stopped", "addr", ln.Name(), "err", err)
			}
		}()
		r.logger.Info("listening", "addr", ln.Addr().String(), "bind", key)
	}

	old := r.current
	r.current = g
	if old != nil {
		r.draining.Add(1)
		go func() {
			defer r.draining.Done()
			ctx, cancel := context.WithTimeout(context.Background(), old.Config.Global.DrainTimeout)
			defer cancel()
			if err := old.Drain(ctx); err != nil {
				r.logger.Warn("previous configuration drained with errors", "err", err)
			}
		}()
	}
	return nil
}

// Addrs returns the bound address of every listener, keyed by its
// configured bind string (tests bind port 0 and read the real port here).
func (r *Runtime) Addrs() map[string]net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]net.Addr, len(r.listeners))
	for k, ln := range r.listeners {
		m[k] = ln.Addr()
	}
	return m
}

// QUICAddrs returns the bound address of every UDP (QUIC) listener, keyed
// by its configured bind string.
func (r *Runtime) QUICAddrs() map[string]net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]net.Addr, len(r.quic))
	for k, ln := range r.quic {
		m[k] = ln.Addr()
	}
	return m
}

// QUICStats returns the counters of every UDP (QUIC) listener, keyed by its
// configured bind string.
func (r *Runtime) QUICStats() map[string]h3.ListenerStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]h3.ListenerStats, len(r.quic))
	for k, ln := range r.quic {
		m[k] = ln.Stats()
	}
	return m
}

// Current is the Graph in force.
func (r *Runtime) Current() *Graph {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// Shutdown stops accepting, lets live sessions finish until ctx is done,
// closes the rest and waits for the background work to stop.
func (r *Runtime) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	for key, ln := range r.listeners {
		ln.Close()
		delete(r.listeners, key)
	}
	quic := r.quic
	r.quic = make(map[string]*h3.Listener)
	g := r.current
	r.mu.Unlock()
	// QUIC listeners send GOAWAY and wait for their streams while the
	// Graph drains the same sessions.
	var wg sync.WaitGroup
	for _, ln := range quic {
		wg.Go(func() { ln.Shutdown(ctx) })
	}
	var err error
	if g != nil {
		err = g.Drain(ctx)
	}
	wg.Wait()
	r.serving.Wait()
	r.draining.Wait()
	r.svc.stop()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("drain timeout: %w", err)
	}
	return err
}
