package h2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// walkFrames lists the frame headers of b (type, flags, stream) up to the
// first incomplete frame.
func walkFrames(b []byte) (heads [][3]uint32) {
	for len(b) >= 9 {
		n := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
		if len(b) < 9+n {
			break
		}
		heads = append(heads, [3]uint32{uint32(b[3]), uint32(b[4]), binary.BigEndian.Uint32(b[5:]) & (1<<31 - 1)})
		b = b[9+n:]
	}
	return heads
}

// FuzzGuard feeds arbitrary client bytes through the guard in reads of
// varying sizes: it never panics, and what the server reads is the
// client's frames in order — the same types, flags and streams — with
// only SETTINGS and header-block payloads possibly changed.
func FuzzGuard(f *testing.F) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, kv := range [][2]string{{":method", "GET"}, {":path", "/"}, {"connection", "close"}, {"te", "gzip"}} {
		enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	block := bytes.Clone(hb.Bytes())
	seed := func(write func(fr *http2.Framer)) {
		var b bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		fr.AllowIllegalWrites = true
		write(fr)
		f.Add(b.Bytes(), uint8(7))
	}
	seed(func(fr *http2.Framer) {
		fr.WriteSettings(http2.Setting{ID: 4, Val: 100}, http2.Setting{ID: 4, Val: 1}, http2.Setting{ID: 1, Val: 0})
	})
	seed(func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:3], PadLength: 2})
		fr.WriteContinuation(1, true, block[3:])
		fr.WriteRSTStream(1, http2.ErrCodeCancel)
	})
	seed(func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block, EndHeaders: true,
			Priority: http2.PriorityParam{StreamDep: 1, Weight: 5}})
		fr.WriteData(3, false, nil)
		fr.WritePing(false, [8]byte{})
	})
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		c := &pipeConn{r: bytes.NewReader(in), w: &bytes.Buffer{}}
		lim := newAbuseLimits(4, 1024)
		g := newGuard(c, true, lim, nil)
		defer g.Close()
		size := int(step%32) + 1
		var out []byte
		buf := make([]byte, 64)
		for i := 0; i < 1<<16; i++ {
			n, err := g.Read(buf[:size])
			out = append(out, buf[:n]...)
			if err != nil {
				if err != io.EOF && !errors.Is(err, errGuard) {
					t.Fatalf("read error %v", err)
				}
				break
			}
		}
		want, got := walkFrames(in), walkFrames(out)
		if len(got) > len(want) {
			t.Fatalf("%d frames out of %d in", len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("frame %d: %v became %v", i, want[i], got[i])
			}
		}
		if len(out) > len(in)+len(resetField)*len(want) {
			t.Fatalf("%d bytes out of %d", len(out), len(in))
		}
	})
}

// FuzzHeaderBlock feeds arbitrary header block fragments to the mux's
// decoder, the block split at cut: it never panics, and a block it
// accepts holds only lower-case token names, values without forbidden
// bytes, pseudo-header fields first, each once, and fits the list size.
func FuzzHeaderBlock(f *testing.F) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {":authority", "a"}, {"accept", "*/*"}} {
		enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	f.Add(bytes.Clone(hb.Bytes()), 3)
	enc.WriteField(hpack.HeaderField{Name: "X-Upper", Value: "1"})
	f.Add(bytes.Clone(hb.Bytes()), 0)
	f.Add([]byte{0x3f, 0xe1, 0x1f}, 1) // a table size update past the limit
	f.Add([]byte{0x80}, 0)             // index 0
	f.Fuzz(func(t *testing.T, block []byte, cut int) {
		b := newHeaderBlock(1024)
		cut = min(max(cut, 0), len(block))
		var hf http2.HeadersFrame // only its flags matter: none
		b.meta = http2.MetaHeadersFrame{HeadersFrame: &hf}
		b.remain = b.maxList
		if _, err := b.write(block[:cut], false); err != nil {
			return
		}
		done, err := b.write(block[cut:], true)
		if err != nil || !done || b.invalid {
			return
		}
		size, regular := 0, false
		seen := map[string]bool{}
		for _, f := range b.meta.Fields {
			size += int(f.Size())
			if !httpguts.ValidHeaderFieldValue(f.Value) {
				t.Fatalf("value %q accepted", f.Value)
			}
			if f.IsPseudo() {
				if regular || seen[f.Name] {
					t.Fatalf("pseudo-header field %q accepted after a regular one or twice", f.Name)
				}
				seen[f.Name] = true
				continue
			}
			regular = true
			if !validWireName(f.Name) || strings.ToLower(f.Name) != f.Name {
				t.Fatalf("name %q accepted", f.Name)
			}
		}
		if size > 1024 {
			t.Fatalf("list of %d bytes accepted, limit 1024", size)
		}
	})
}
