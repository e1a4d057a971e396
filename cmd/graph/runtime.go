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
	current   *Graph
	draining  sync.WaitGroup
	serving   sync.WaitGroup
	closed    bool
}

// NewRuntime returns a Runtime with no listener. logger receives operational
// lines, accessLog one line per session.
func NewRuntime(logger, accessLog *slog.Logger) *Runtime {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Runtime{logger: logger, accessLog: accessLog, svc: newServices(logger), listeners: make(map[string]*layers.Listener)}
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
	for _, f := range cfg.Frontends {
		for _, a := range f.Bind {
			key := a.String()
			if _, ok := r.listeners[key]; ok {
				continue
			}
			ln, err := layers.Listen("tcp", net.JoinHostPort(a.Host, strconv.Itoa(a.Port)))
			if err != nil {
				for _, l := range opened {
					l.Close()
				}
				return fmt.Errorf("%s:%s: frontend %s: bind %s: %w", cfg.File, a.Pos, f.Name, key, err)
			}
			opened[key] = ln
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
	g := r.current
	r.mu.Unlock()
	r.serving.Wait()
	var err error
	if g != nil {
		err = g.Drain(ctx)
	}
	r.draining.Wait()
	r.svc.stop()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("drain timeout: %w", err)
	}
	return err
}
