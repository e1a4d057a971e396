package session

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// JSONAccessHandler is a slog.Handler writing JSON lines, as
// slog.NewJSONHandler does, with a fast path for the access log: a session
// Record (Record.Log) is encoded straight into a pooled buffer, field by
// field, with no slog.Attr, no interface conversion and no allocation —
// at tens of thousands of requests per second per core, slog's generic
// encoding was a tenth of the proxy's user CPU. The line is the one the
// JSONHandler would write for the same record (same keys, same order,
// same number and string formats), and every other record goes through a
// JSONHandler on the same writer.
//
// Each line is one Write call, so w must take concurrent Writes whole (a
// *os.File does; so does cmd/strata's buffered log writer).
type JSONAccessHandler struct {
	json  slog.Handler // every record that is not a session's
	w     io.Writer
	level slog.Leveler
	attrs []byte // the attributes of WithAttrs, encoded, each ending in ','
	// grouped: WithGroup was used; the fast path cannot reproduce
	// nesting, so session records go through json too.
	grouped bool
}

// NewJSONAccessHandler writes to w with the options of
// slog.NewJSONHandler (only Level is read by the fast path; ReplaceAttr
// and AddSource turn it off).
func NewJSONAccessHandler(w io.Writer, opts *slog.HandlerOptions) *JSONAccessHandler {
	if opts == nil {
		opts = &slog.HandlerOptions{}
	}
	h := &JSONAccessHandler{json: slog.NewJSONHandler(w, opts), w: w, level: opts.Level}
	if h.level == nil {
		h.level = slog.LevelInfo
	}
	h.grouped = opts.ReplaceAttr != nil || opts.AddSource
	return h
}

// Enabled reports whether records at level are written.
func (h *JSONAccessHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.json.Enabled(ctx, level)
}

// Handle writes a record through the JSON handler.
func (h *JSONAccessHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.json.Handle(ctx, r)
}

// WithAttrs returns a handler whose lines carry attrs too.
func (h *JSONAccessHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.json = h.json.WithAttrs(attrs)
	h2.attrs = append([]byte(nil), h.attrs...)
	for _, a := range attrs {
		switch a.Value.Kind() {
		case slog.KindString:
			h2.attrs = appendKey(h2.attrs, a.Key)
			h2.attrs = appendJSONString(h2.attrs, a.Value.String())
		case slog.KindInt64:
			h2.attrs = appendKey(h2.attrs, a.Key)
			h2.attrs = strconv.AppendInt(h2.attrs, a.Value.Int64(), 10)
		case slog.KindBool:
			h2.attrs = appendKey(h2.attrs, a.Key)
			h2.attrs = strconv.AppendBool(h2.attrs, a.Value.Bool())
		default:
			h2.grouped = true // rare kinds: leave them to the JSON handler
		}
		h2.attrs = append(h2.attrs, ',')
	}
	return &h2
}

// WithGroup returns a handler that nests later attributes under name.
func (h *JSONAccessHandler) WithGroup(name string) slog.Handler {
	h2 := *h
	h2.json = h.json.WithGroup(name)
	h2.grouped = true
	return &h2
}

var lineBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// logSession writes r at level; false when the fast path does not apply.
func (h *JSONAccessHandler) logSession(r *Record, level slog.Level) bool {
	if h.grouped {
		return false
	}
	bp := lineBuffers.Get().(*[]byte)
	b := r.appendJSON((*bp)[:0], level, h.attrs)
	h.w.Write(b)
	*bp = b
	lineBuffers.Put(bp)
	return true
}

// appendJSON appends r as the JSON line slog's JSONHandler writes for it.
func (r *Record) appendJSON(b []byte, level slog.Level, attrs []byte) []byte {
	b = append(b, '{')
	if !r.Time.IsZero() { // slog leaves a zero time out
		b = append(b, `"time":"`...)
		b = r.Time.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `",`...)
	}
	b = append(b, `"level":"`...)
	b = append(b, level.String()...)
	b = append(b, `","msg":"session",`...)
	b = append(b, attrs...)
	b = appendKey(b, "client")
	b = appendAddr(b, r.Client)
	b = append(b, ',')
	b = appendKey(b, "listener")
	b = appendAddr(b, r.Listener)
	b = appendStr(b, "frontend", r.Frontend)
	b = appendStr(b, "backend", r.Backend)
	b = appendStr(b, "server", r.Server)
	b = appendStr(b, "sni", r.SNI)
	b = appendMillis(b, "queue_ms", r.Queue)
	b = appendMillis(b, "connect_ms", r.Connect)
	b = appendMillis(b, "total_ms", r.Total)
	b = appendInt(b, "bytes_in", r.BytesIn)
	b = appendInt(b, "bytes_out", r.BytesOut)
	b = appendInt(b, "retries", int64(r.Retries))
	var term [128]byte
	b = appendStr(b, "term", viewString(r.Termination.appendText(term[:0])))
	if r.Method != "" || r.Status != 0 {
		b = appendStr(b, "method", r.Method)
		b = appendStr(b, "host", r.Host)
		b = appendStr(b, "path", r.Path)
		b = appendInt(b, "status", int64(r.Status))
		b = appendStr(b, "request_id", r.RequestID)
		b = appendMillis(b, "request_ms", r.RequestHead)
		b = appendMillis(b, "response_ms", r.Response)
	}
	return append(b, "}\n"...)
}

// appendKey appends "key": (the first field of a record, no comma).
func appendKey(b []byte, key string) []byte {
	b = appendJSONString(b, key)
	return append(b, ':')
}

// appendStr appends ,"key":"value".
func appendStr(b []byte, key, value string) []byte {
	b = append(b, ',')
	b = appendKey(b, key)
	return appendJSONString(b, value)
}

func appendInt(b []byte, key string, v int64) []byte {
	b = append(b, ',')
	b = appendKey(b, key)
	return strconv.AppendInt(b, v, 10)
}

// appendMillis appends d in milliseconds rounded to the microsecond, in
// encoding/json's float format (which slog uses): no exponent in this
// range.
func appendMillis(b []byte, key string, d time.Duration) []byte {
	b = append(b, ',')
	b = appendKey(b, key)
	return strconv.AppendFloat(b, millis(d), 'f', -1, 64)
}

func appendAddr(b []byte, ap netip.AddrPort) []byte {
	b = append(b, '"')
	if ap.IsValid() {
		b = ap.AppendTo(b)
	}
	return append(b, '"')
}

// appendJSONString appends s quoted and escaped as slog's JSON handler
// escapes it: ", \ and control bytes escaped, invalid UTF-8 as U+FFFD,
// U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigit[c>>4], hexDigit[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigit[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigit = "0123456789abcdef"
