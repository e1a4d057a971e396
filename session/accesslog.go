package session

import (
	"context"
	"log/slog"
	"net/netip"
	"time"
	"unsafe"
)

// Record is the access-log record of one session: what HAProxy's TCP log
// line says, as structured fields. The session fills it in as it goes and
// logs it once, when both sides are done.
type Record struct {
	// Time is when the listener accepted the connection; the log line
	// carries it as its time, as HAProxy's accept date.
	Time time.Time
	// Client is the client's address (the PROXY header's when proxied);
	// Listener is the address the connection was accepted on.
	Client, Listener netip.AddrPort
	Frontend         string
	Backend, Server  string // empty until routed, connected
	SNI              string
	// Queue is the time spent waiting for a server slot (every attempt);
	// Connect the time of the last connect attempt; Total from accept to
	// the end of the session.
	Queue, Connect, Total time.Duration
	// BytesIn went client → server, BytesOut server → client: every byte
	// in TCP mode, the message bodies in HTTP mode.
	BytesIn, BytesOut int64
	// Retries is the number of connect attempts after the first.
	Retries     int
	Termination Termination

	// HTTP mode only (one record per request; Method is empty in TCP
	// mode, and the keys below are then left out). Method, Host, Path and
	// RequestID may share the session's memory: they are valid while Log
	// runs, and a handler that keeps them past Handle must copy them (the
	// slog handlers encode them before returning).
	Method, Host, Path string
	// Status is the status sent to the client (0: none was).
	Status    int
	RequestID string
	// RequestHead is the time from the request's first byte to its whole
	// head; Response from the request sent to the final response head.
	RequestHead, Response time.Duration
}

// Log writes r as one line on l (nil: nothing): level Info for a normal
// end, Warn when the termination has an error cause. Times are in
// milliseconds with microsecond precision (queue_ms, connect_ms,
// total_ms). It allocates no map, and nothing at all when l does not log
// at that level.
func (r *Record) Log(ctx context.Context, l *slog.Logger) {
	if l == nil {
		return
	}
	level := slog.LevelInfo
	if r.Termination.IsError() {
		level = slog.LevelWarn
	}
	h := l.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	if fh, ok := h.(*JSONAccessHandler); ok && fh.logSession(r, level) {
		return
	}
	// slog.LogAttrs would stamp the line with time.Now(); the record's
	// time is the accept time, so build the slog.Record ourselves.
	rec := slog.NewRecord(r.Time, level, "session", 0)
	rec.AddAttrs(
		slog.String("client", addrString(r.Client)),
		slog.String("listener", addrString(r.Listener)),
		slog.String("frontend", r.Frontend),
		slog.String("backend", r.Backend),
		slog.String("server", r.Server),
		slog.String("sni", r.SNI),
		slog.Float64("queue_ms", millis(r.Queue)),
		slog.Float64("connect_ms", millis(r.Connect)),
		slog.Float64("total_ms", millis(r.Total)),
		slog.Int64("bytes_in", r.BytesIn),
		slog.Int64("bytes_out", r.BytesOut),
		slog.Int("retries", r.Retries),
		slog.String("term", r.Termination.String()),
	)
	if r.Method != "" || r.Status != 0 {
		rec.AddAttrs(
			slog.String("method", r.Method),
			slog.String("host", r.Host),
			slog.String("path", r.Path),
			slog.Int("status", r.Status),
			slog.String("request_id", r.RequestID),
			slog.Float64("request_ms", millis(r.RequestHead)),
			slog.Float64("response_ms", millis(r.Response)),
		)
	}
	_ = h.Handle(ctx, rec)
}

// millis is d in milliseconds, rounded to the microsecond.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

func addrString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}

// viewString is b as a string without copying; b must not change while the
// string is used.
func viewString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
