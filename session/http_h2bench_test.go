package session

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/strata-proxy/strata/layers/h2"
)

// BenchmarkH2Session is BenchmarkHTTPSession's request as a stream of an
// h2c connection, one stream after another: client → HTTP/2 mux →
// analysers → pooled server connection → the raw backend, and back. "own"
// is strata's mux, "xnet" x/net's server (STRATA_H2_IMPL=xnet) with
// layers/hstream's translation. The client is a raw framer, so that the
// allocations reported are nearly all strata's.
func BenchmarkH2Session(b *testing.B) {
	for _, impl := range []string{"own", "xnet"} {
		b.Run(impl, func(b *testing.B) {
			if impl == "xnet" {
				b.Setenv("STRATA_H2_IMPL", "xnet")
			}
			addr := startServer(b, benchServer)
			be := newBackend(b, "app", "", 0, addr)
			h := startHTTP(b, HTTPFrontendOptions{
				DefaultBackend: be,
				H2C:            true,
				AccessLog:      slog.New(slog.DiscardHandler),
				Forwarded:      ForwardedOptions{XForwardedFor: true},
				RequestID:      RequestIDOptions{Enabled: true},
				Timeouts:       HTTPTimeouts{HTTPRequest: 5 * time.Second, Client: 5 * time.Second, Server: 5 * time.Second},
			})
			c := h.dial(b)
			io.WriteString(c, h2.Preface)
			fr := http2.NewFramer(c, c)
			fr.WriteSettings()
			fr.WriteWindowUpdate(0, 1<<30)
			var hb bytes.Buffer
			enc := hpack.NewEncoder(&hb)
			id := uint32(1)
			b.ReportAllocs()
			for b.Loop() {
				hb.Reset()
				for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "www.example.com"},
					{":path", "/articles/2024/strata-proxy?utm_source=feed&page=2"},
					{"user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
					{"accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
					{"accept-language", "en-US,en;q=0.5"}, {"accept-encoding", "gzip, deflate, br, zstd"},
					{"cookie", "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark"}} {
					enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
				}
				if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
					b.Fatal(err)
				}
				for done := false; !done; {
					f, err := fr.ReadFrame()
					if err != nil {
						b.Fatal(err)
					}
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							fr.WriteSettingsAck()
						}
					case *http2.RSTStreamFrame:
						b.Fatalf("stream %d reset: %v", f.StreamID, f.ErrCode)
					case *http2.WindowUpdateFrame, *http2.PingFrame:
					}
					done = f.Header().StreamID == id && f.Header().Flags.Has(http2.FlagDataEndStream)
				}
				id += 2
			}
		})
	}
}
