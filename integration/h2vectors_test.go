package integration

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/strata-proxy/strata/certs"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawH2 is an HTTP/2 client connection built on x/net's Framer and HPACK
// encoder, so that it can send what a normal client never would. One
// goroutine uses it.
type rawH2 struct {
	conn net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	buf  bytes.Buffer
}

// dialRawH2 connects to addr: over TLS offering only "h2" by ALPN when cfg
// is set, else cleartext with prior knowledge. It sends the preface and
// an empty SETTINGS frame.
func dialRawH2(t *testing.T, addr string, cfg *tls.Config) *rawH2 {
	t.Helper()
	var conn net.Conn
	var err error
	if cfg != nil {
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"h2"}
		var tc *tls.Conn
		tc, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err == nil && tc.ConnectionState().NegotiatedProtocol != "h2" {
			err = fmt.Errorf("ALPN chose %q", tc.ConnectionState().NegotiatedProtocol)
		}
		conn = tc
	} else {
		conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawH2{conn: conn}
	c.fr = http2.NewFramer(conn, conn)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 1 << 20
	c.enc = hpack.NewEncoder(&c.buf)
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c
}

// block HPACK-encodes fields exactly as given.
func (c *rawH2) block(fields []hfield) []byte {
	c.buf.Reset()
	for _, f := range fields {
		c.enc.WriteField(hpack.HeaderField{Name: f.name, Value: f.value})
	}
	return bytes.Clone(c.buf.Bytes())
}

// writeHeaders sends a header block on stream id, in CONTINUATION frames
// past the default frame size.
func (c *rawH2) writeHeaders(id uint32, block []byte, endStream bool) error {
	const max = 16384
	first := block
	if len(first) > max {
		first = block[:max]
	}
	rest := block[len(first):]
	err := c.fr.WriteHeaders(http2.HeadersFrameParam{
		StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(rest) == 0,
	})
	for err == nil && len(rest) > 0 {
		n := min(len(rest), max)
		err = c.fr.WriteContinuation(id, n == len(rest), rest[:n])
		rest = rest[n:]
	}
	return err
}

// send writes v on stream id: its header section, its DATA, its trailers.
// Write errors are ignored: the server may reset or close early.
func (c *rawH2) send(id uint32, v streamVector) {
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	noBody := len(v.body) == 0 && len(v.trailers) == 0
	if c.writeHeaders(id, c.block(v.fields), noBody) != nil || noBody {
		return
	}
	for i, p := range v.body {
		if c.fr.WriteData(id, i == len(v.body)-1 && len(v.trailers) == 0, []byte(p)) != nil {
			return
		}
	}
	if len(v.trailers) > 0 {
		c.writeHeaders(id, c.block(v.trailers), true)
	}
}

// await reads frames until stream id gets its final response head or is
// reset, or the connection ends; it answers SETTINGS and PING on the way.
func (c *rawH2) await(id uint32, within time.Duration) streamOutcome {
	c.conn.SetReadDeadline(time.Now().Add(within))
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return streamOutcome{closed: true, detail: err.Error()}
			}
			return streamOutcome{detail: err.Error()}
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				c.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			return streamOutcome{closed: true, detail: "GOAWAY " + f.ErrCode.String()}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return streamOutcome{reset: true, detail: f.ErrCode.String()}
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			status, _ := strconv.Atoi(f.PseudoValue("status"))
			if status >= 200 {
				return streamOutcome{status: status}
			}
		}
	}
}

// h2Driver sends each vector on stream 1 of a new connection.
func h2Driver(addr string, cfg *tls.Config) streamDriver {
	return func(t *testing.T, v streamVector) streamOutcome {
		c := dialRawH2(t, addr, cfg)
		defer c.conn.Close()
		c.send(1, v)
		return c.await(1, 10*time.Second)
	}
}

// TestH2Vectors runs the downgrade vectors (streamvectors_test.go) over
// HTTP/2 against a TLS frontend (ALPN h2) and a cleartext h2c frontend,
// each in front of a recording HTTP/1 backend.
func TestH2Vectors(t *testing.T) {
	p := newPKI(t)
	cert, key := p.issue(t, "front", certs.IssueOptions{}, "localhost")
	rec := newRecorder(t)
	tlsAddr, h2cAddr := freeAddr(t), freeAddr(t)
	startStrata(t, fmt.Sprintf(`frontends:
  tls:
    bind: %q
    mode: http
    tls: { certificates: [ { cert: %q, key: %q } ] }
    default_backend: rec
  h2c:
    bind: %q
    mode: http
    h2c: true
    default_backend: rec
backends:
  rec:
    servers: [ { address: %q } ]
`, tlsAddr, cert, key, h2cAddr, rec.addr))
	t.Run("tls", func(t *testing.T) {
		runStreamVectors(t, h2Driver(tlsAddr, &tls.Config{RootCAs: p.pool(), ServerName: "localhost"}), rec)
	})
	t.Run("h2c", func(t *testing.T) {
		runStreamVectors(t, h2Driver(h2cAddr, nil), rec)
	})
}
