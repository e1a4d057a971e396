package h2

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// pipeConn is one end of an in-memory connection whose reads come from r
// and whose writes go to w.
type pipeConn struct {
	net.Conn // for the methods a test does not use
	r        io.Reader
	w        *bytes.Buffer
}

func (c *pipeConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *pipeConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) Close() error                     { return nil }
func (c *pipeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *pipeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *pipeConn) String() string                   { return "pipe" }
func (c *pipeConn) readAll(t *testing.T, g net.Conn) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, 7) // odd-sized reads: the guard must not care
	for {
		n, err := g.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
}

// frames encodes what write writes with a Framer.
func frames(t *testing.T, write func(fr *http2.Framer) error) []byte {
	t.Helper()
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	fr.AllowIllegalWrites = true
	if err := write(fr); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var testLimits = newAbuseLimits(100, 16<<10)

// TestGuardPassesFrames: frames the guard does not mend reach the server
// byte for byte, after the preface, whatever the read sizes.
func TestGuardPassesFrames(t *testing.T) {
	in := frames(t, func(fr *http2.Framer) error {
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82, 0x87}, EndHeaders: true})
		fr.WriteData(1, false, bytes.Repeat([]byte("x"), 5000))
		fr.WriteData(1, true, nil)
		fr.WritePing(false, [8]byte{1, 2})
		return fr.WriteWindowUpdate(0, 100)
	})
	all := append([]byte(http2.ClientPreface), in...)
	c := &pipeConn{r: bytes.NewReader(all), w: &bytes.Buffer{}}
	g := newGuard(c, false, testLimits, nil)
	defer g.Close()
	got := c.readAll(t, g)
	if !bytes.Equal(got, all) {
		t.Fatalf("the server read %d bytes, not the %d the client sent", len(got), len(all))
	}
}

// TestGuardMendsSettings: a SETTINGS frame naming a setting twice reaches
// the server with each setting once, as processing in order would leave
// them (the smallest header table size).
func TestGuardMendsSettings(t *testing.T) {
	in := frames(t, func(fr *http2.Framer) error {
		return fr.WriteSettings(
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100},
			http2.Setting{ID: http2.SettingHeaderTableSize, Val: 100},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1},
			http2.Setting{ID: http2.SettingMaxFrameSize, Val: 20000},
			http2.Setting{ID: http2.SettingHeaderTableSize, Val: 4096},
		)
	})
	c := &pipeConn{r: bytes.NewReader(in), w: &bytes.Buffer{}}
	g := newGuard(c, true, testLimits, nil)
	defer g.Close()
	got := c.readAll(t, g)
	f, err := http2.NewFramer(nil, bytes.NewReader(got)).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf := f.(*http2.SettingsFrame)
	if sf.HasDuplicates() {
		t.Fatal("duplicates passed")
	}
	want := map[http2.SettingID]uint32{
		http2.SettingInitialWindowSize: 1, http2.SettingHeaderTableSize: 100, http2.SettingMaxFrameSize: 20000,
	}
	if sf.NumSettings() != len(want) {
		t.Fatalf("%d settings passed, want %d", sf.NumSettings(), len(want))
	}
	for id, v := range want {
		if got, _ := sf.Value(id); got != v {
			t.Errorf("%v = %d, want %d", id, got, v)
		}
	}

	// An invalid value is left for the server to refuse with its own
	// error code.
	bad := frames(t, func(fr *http2.Framer) error {
		return fr.WriteSettings(
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1},
		)
	})
	c = &pipeConn{r: bytes.NewReader(bad), w: &bytes.Buffer{}}
	g2 := newGuard(c, true, testLimits, nil)
	defer g2.Close()
	if got := c.readAll(t, g2); !bytes.Equal(got, bad) {
		t.Fatal("a SETTINGS frame with an invalid value was changed")
	}
}

func TestGuardEnds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frames func(fr *http2.Framer) error
		reason string
	}{
		{"rapid reset", func(fr *http2.Framer) error {
			for id := uint32(1); id < 1000; id += 2 {
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0x82}, EndHeaders: true, EndStream: true})
				fr.WriteRSTStream(id, http2.ErrCodeCancel)
			}
			return nil
		}, "rapid reset"},
		{"PING flood", func(fr *http2.Framer) error {
			for i := 0; i < 2000; i++ {
				fr.WritePing(false, [8]byte{})
			}
			return nil
		}, "PING flood"},
		{"empty CONTINUATION", func(fr *http2.Framer) error {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82}})
			for i := 0; i < 100; i++ {
				fr.WriteContinuation(1, false, nil)
			}
			return nil
		}, "CONTINUATION flood"},
		{"empty DATA", func(fr *http2.Framer) error {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x83}, EndHeaders: true})
			for i := 0; i < 2000; i++ {
				fr.WriteData(1, false, nil)
			}
			return nil
		}, "empty DATA flood"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := frames(t, tc.frames)
			out := &bytes.Buffer{}
			c := &pipeConn{r: bytes.NewReader(in), w: out}
			var reason string
			ended := make(chan struct{})
			g := newGuard(c, true, testLimits, func(r string) { reason = r; close(ended) })
			// The server is half-way through a frame when the guard ends the
			// connection: the GOAWAY must wait for its end.
			data := frames(t, func(fr *http2.Framer) error { return fr.WriteData(1, false, []byte("0123456789")) })
			g.Write(data[:12])
			go func() {
				time.Sleep(50 * time.Millisecond)
				g.Write(data[12:])
			}()
			buf := make([]byte, 1<<10)
			var err error
			for i := 0; i < 1<<20 && err == nil; i++ {
				_, err = g.Read(buf)
			}
			if !errors.Is(err, errGuard) {
				t.Fatalf("read ended with %v", err)
			}
			<-ended
			g.Close() // sends what is queued
			if reason != tc.reason {
				t.Errorf("ended for %q, want %q", reason, tc.reason)
			}
			fr := http2.NewFramer(nil, bytes.NewReader(out.Bytes()))
			f1, err1 := fr.ReadFrame()
			f2, err2 := fr.ReadFrame()
			if err1 != nil || err2 != nil {
				t.Fatalf("the server's output does not parse: %v, %v", err1, err2)
			}
			if _, ok := f1.(*http2.DataFrame); !ok {
				t.Fatalf("first frame %v", f1)
			}
			ga, ok := f2.(*http2.GoAwayFrame)
			if !ok || ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
				t.Fatalf("then %v, want GOAWAY ENHANCE_YOUR_CALM", f2)
			}
			if n, err := g.Write([]byte("more")); n != 0 || err == nil {
				t.Fatal("the server wrote after the GOAWAY")
			}
		})
	}
}

// TestGuardGlitches: the server refusing stream after stream ends the
// connection.
func TestGuardGlitches(t *testing.T) {
	out := &bytes.Buffer{}
	c := &pipeConn{r: bytes.NewReader(nil), w: out}
	ended := make(chan string, 1)
	g := newGuard(c, true, testLimits, func(r string) { ended <- r })
	for id := uint32(1); id < 400; id += 2 {
		rst := frames(t, func(fr *http2.Framer) error { return fr.WriteRSTStream(id, http2.ErrCodeProtocol) })
		if _, err := g.Write(rst); err != nil {
			break
		}
	}
	select {
	case r := <-ended:
		if r != "too many refused streams" {
			t.Fatalf("ended for %q", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not ended")
	}
	g.Close()
	if !bytes.Contains(out.Bytes(), []byte{0, 0, 8, 7, 0, 0, 0, 0, 0}) {
		t.Fatal("no GOAWAY written")
	}
}

func TestSniffPreface(t *testing.T) {
	for _, tc := range []struct {
		in    string
		isH2  bool
		after string
	}{
		{http2.ClientPreface + "rest", true, "rest"},
		{"GET / HTTP/1.1\r\n\r\n", false, "GET / HTTP/1.1\r\n\r\n"},
		{"PRI * HTTP/1.1\r\n", false, "PRI * HTTP/1.1\r\n"},
	} {
		c := &pipeConn{r: bytes.NewReader([]byte(tc.in)), w: &bytes.Buffer{}}
		next, isH2, err := SniffPreface(c)
		if err != nil || isH2 != tc.isH2 {
			t.Fatalf("%q: h2 %v, %v", tc.in, isH2, err)
		}
		rest, _ := io.ReadAll(next)
		if string(rest) != tc.after {
			t.Errorf("%q: then %q, want %q", tc.in, rest, tc.after)
		}
	}
}

// TestGuardResetsConnectionSpecific: a header block with a
// connection-specific field, or te other than trailers, reaches the server
// in a form it resets the stream for; other blocks pass unchanged, and the
// guard's decoder follows the dynamic table across requests and
// CONTINUATION frames.
func TestGuardResetsConnectionSpecific(t *testing.T) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	block := func(fields ...string) []byte {
		hb.Reset()
		for i := 0; i < len(fields); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return bytes.Clone(hb.Bytes())
	}
	req := []string{":method", "GET", ":scheme", "https", ":authority", "a.test", ":path", "/"}
	type sent struct {
		block []byte
		bad   bool
	}
	blocks := []sent{
		{block(append(req, "x-a", "1")...), false},
		{block(append(req, "connection", "close")...), true},
		{block(append(req, "x-a", "1")...), false}, // indexed from the table
		{block(append(req, "te", "gzip")...), true},
		{block(append(req, "te", "trailers")...), false},
		{block(append(req, "upgrade", "h2c", "x-b", strings.Repeat("b", 300))...), true},
	}
	in := frames(t, func(fr *http2.Framer) error {
		for i, b := range blocks {
			id := uint32(2*i + 1)
			if i == 5 { // split over CONTINUATION frames, padded
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b.block[:100], EndStream: true, PadLength: 7})
				fr.WriteContinuation(id, false, b.block[100:200])
				fr.WriteContinuation(id, true, b.block[200:])
				continue
			}
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b.block, EndStream: true, EndHeaders: true})
		}
		return nil
	})
	c := &pipeConn{r: bytes.NewReader(in), w: &bytes.Buffer{}}
	g := newGuard(c, true, testLimits, nil)
	defer g.Close()
	out := c.readAll(t, g)
	fr := http2.NewFramer(nil, bytes.NewReader(out))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	for i, b := range blocks {
		f, err := fr.ReadFrame()
		var se http2.StreamError
		switch {
		case b.bad && (!errors.As(err, &se) || se.Code != http2.ErrCodeProtocol || se.StreamID != uint32(2*i+1)):
			t.Errorf("block %d: got %v, %v; want a PROTOCOL_ERROR stream error", i, f, err)
		case !b.bad && err != nil:
			t.Errorf("block %d: %v", i, err)
		case !b.bad:
			if got := f.(*http2.MetaHeadersFrame).PseudoValue("path"); got != "/" {
				t.Errorf("block %d: :path %q", i, got)
			}
		}
	}
}
