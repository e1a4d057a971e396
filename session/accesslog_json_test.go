package session

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/strata-proxy/strata/layers"
)

// logBoth logs r through slog's JSONHandler and through JSONAccessHandler,
// both behind With("log", "access") as cmd/strata builds them.
func logBoth(r *Record) (want, got []byte) {
	var a, b bytes.Buffer
	r.Log(context.Background(), slog.New(slog.NewJSONHandler(&a, nil)).With("log", "access"))
	r.Log(context.Background(), slog.New(NewJSONAccessHandler(&b, nil)).With("log", "access"))
	return a.Bytes(), b.Bytes()
}

func accessRecords() map[string]Record {
	at := time.Date(2026, 11, 25, 3, 4, 5, 600700000, time.UTC)
	client := netip.MustParseAddrPort("192.0.2.7:51234")
	local := netip.MustParseAddrPort("[2001:db8::1]:443")
	return map[string]Record{
		"tcp": {Time: at, Client: client, Listener: local, Frontend: "f", Backend: "b", Server: "s1",
			Queue: 1500 * time.Microsecond, Connect: 250 * time.Microsecond, Total: 3 * time.Second,
			BytesIn: 123, BytesOut: 1 << 40, Termination: closedBy(layers.SideClient)},
		"http": {Time: at, Client: client, Listener: local, Frontend: "web", Backend: "app", Server: "a",
			SNI: "example.com", Total: 1234567 * time.Nanosecond, Method: "GET", Host: "example.com",
			Path: "/a?b=c", Status: 200, RequestID: "0123abcd", RequestHead: 7 * time.Microsecond,
			Response: 2 * time.Millisecond},
		"error": {Time: at.Add(-time.Hour), Frontend: "web", Method: "POST", Status: 502,
			Termination: TerminationOf(&layers.StageError{Side: layers.SideServer, Stage: "http response", Err: layers.ErrTimeout})},
		"escapes": {Time: at, Method: "GET", Host: "h\"\\", Path: "/\x01\x1f\t\n\r\u2028\u2029é\xff<>&", Status: 400,
			RequestID: "ü", Termination: TerminationOf(&layers.StageError{Side: layers.SideClient, Stage: "http request", Err: &layers.StageError{Err: errTestCause}})},
		"empty": {},
	}
}

var errTestCause = testCause("bad \"thing\"")

type testCause string

func (e testCause) Error() string { return string(e) }

// TestJSONAccessHandlerMatchesSlog: the fast path writes, byte for byte,
// the line slog's JSON handler writes for the same record.
func TestJSONAccessHandlerMatchesSlog(t *testing.T) {
	for name, r := range accessRecords() {
		t.Run(name, func(t *testing.T) {
			want, got := logBoth(&r)
			if !bytes.Equal(want, got) {
				t.Fatalf("lines differ:\nslog: %s\nfast: %s", want, got)
			}
		})
	}
}

// TestJSONAccessHandlerOtherRecords: records that are not a session's, and
// handlers with groups, go through slog's JSON handler.
func TestJSONAccessHandlerOtherRecords(t *testing.T) {
	var a, b bytes.Buffer
	slog.New(slog.NewJSONHandler(&a, nil)).With("k", 1).WithGroup("g").Info("hello", "x", 2.5)
	slog.New(NewJSONAccessHandler(&b, nil)).With("k", 1).WithGroup("g").Info("hello", "x", 2.5)
	if !bytes.Equal(dropTime(a.Bytes()), dropTime(b.Bytes())) {
		t.Fatalf("slog: %s\nours: %s", a.Bytes(), b.Bytes())
	}
	r := accessRecords()["http"]
	var c, d bytes.Buffer
	r.Log(context.Background(), slog.New(slog.NewJSONHandler(&c, nil)).WithGroup("g"))
	r.Log(context.Background(), slog.New(NewJSONAccessHandler(&d, nil)).WithGroup("g"))
	if !bytes.Equal(c.Bytes(), d.Bytes()) {
		t.Fatalf("grouped:\nslog: %s\nours: %s", c.Bytes(), d.Bytes())
	}
	var e bytes.Buffer
	r.Log(context.Background(), slog.New(NewJSONAccessHandler(&e, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if e.Len() != 0 {
		t.Fatalf("an Info record was written at level Warn: %s", e.Bytes())
	}
}

func dropTime(line []byte) []byte {
	if i := bytes.Index(line, []byte(`","level"`)); i > 0 {
		return line[i:]
	}
	return line
}

// FuzzJSONAccessLine: for any request facts, the fast line is slog's.
func FuzzJSONAccessLine(f *testing.F) {
	f.Add("GET", "example.com", "/", "id", int64(0))
	f.Add("P\"OST", "h\\", "/\x00\u2028\xff", "é", int64(-5))
	f.Fuzz(func(t *testing.T, method, host, path, id string, d int64) {
		r := accessRecords()["http"]
		r.Method, r.Host, r.Path, r.RequestID, r.Total = method, host, path, id, time.Duration(d)
		want, got := logBoth(&r)
		if !bytes.Equal(want, got) {
			t.Fatalf("lines differ:\nslog: %s\nfast: %s", want, got)
		}
	})
}

// BenchmarkAccessLogJSON compares slog's JSON handler and the fast path
// for one HTTP access line.
func BenchmarkAccessLogJSON(b *testing.B) {
	r := accessRecords()["http"]
	for _, bc := range []struct {
		name string
		h    slog.Handler
	}{
		{"slog", slog.NewJSONHandler(discard{}, nil)},
		{"fast", NewJSONAccessHandler(discard{}, nil)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := slog.New(bc.h).With("log", "access")
			b.ReportAllocs()
			for b.Loop() {
				r.Log(context.Background(), l)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
