package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-proxy/strata/cmd/config"
	"github.com/strata-proxy/strata/cmd/graph"
	"github.com/strata-proxy/strata/session"
)

// cmdRun runs a configuration file until SIGTERM; SIGHUP reloads it.
func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "configuration `FILE`")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *file == "" || fs.NArg() != 0 {
		return usageError{errors.New("want -c FILE")}
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errReported
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := func() (*config.Config, error) { return config.Load(*file) }
	return serve(ctx, cfg, hup, reload, stderr)
}

// serve runs cfg until ctx is done, reloading on each value from hup with
// reload (nil: reloads are ignored), then drains and returns nil.
func serve(ctx context.Context, cfg *config.Config, hup <-chan os.Signal, reload func() (*config.Config, error), stderr io.Writer) error {
	logger, access, closeLog, err := newLoggers(cfg.Global.Log, stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	rt := graph.NewRuntime(logger, access)
	if err := rt.Apply(cfg); err != nil {
		logger.Error("cannot start", "err", err)
		fmt.Fprintln(stderr, err)
		return errReported
	}
	logger.Info("strata started", "version", version, "config", cfg.File, "pid", os.Getpid())
	for {
		select {
		case <-hup:
			if reload == nil {
				logger.Warn("SIGHUP ignored: no configuration file to reload")
				continue
			}
			next, err := reload()
			if err == nil {
				err = rt.Apply(next)
			}
			if err != nil {
				logger.Error("reload refused: the previous configuration keeps serving", "err", err)
				continue
			}
			cfg = next
			logger.Info("configuration reloaded", "config", cfg.File)
		case <-ctx.Done():
			logger.Info("shutting down: draining live sessions", "drain_timeout", cfg.Global.DrainTimeout.String())
			dctx, cancel := context.WithTimeout(context.Background(), cfg.Global.DrainTimeout)
			err := rt.Shutdown(dctx)
			cancel()
			if err != nil {
				logger.Warn("sessions still live at the drain timeout were closed", "err", err)
			}
			logger.Info("stopped")
			return nil
		}
	}
}

// newLoggers makes the operational logger and the access logger from the
// configuration's log settings. Both write to the same output.
func newLoggers(l config.Log, stderr io.Writer) (logger, access *slog.Logger, closeFn func(), err error) {
	var w io.Writer
	closeFn = func() {}
	switch l.Output {
	case "", "stderr":
		w = stderr
	case "stdout":
		w = os.Stdout
	default:
		f, err := os.OpenFile(l.Output, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("log output: %w", err)
		}
		w, closeFn = f, func() { f.Close() }
	}
	buffered := newBufferedLog(w)
	closeOutput := closeFn
	closeFn = func() {
		buffered.Close()
		closeOutput()
	}
	w = buffered
	opts := &slog.HandlerOptions{Level: l.Level}
	var h slog.Handler
	if l.Format == config.LogText {
		h = slog.NewTextHandler(w, opts)
	} else {
		// slog's JSON lines, with a fast path for the access log's
		// per-request records.
		h = session.NewJSONAccessHandler(w, opts)
	}
	logger = slog.New(h)
	return logger, logger.With("log", "access"), closeFn, nil
}

// checkBuild assembles cfg without starting it, for validate; state it
// would make (the internal CA, ACME storage) goes to a temporary directory.
func checkBuild(cfg *config.Config) error {
	return graph.Check(cfg)
}
