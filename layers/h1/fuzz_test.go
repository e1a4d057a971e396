package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/strata-proxy/strata/layers/msg"
)

// addVectorSeeds adds the inputs of the shared vectors (h1test) of one kind.
func addVectorSeeds(f *testing.F, response bool) {
	vs, err := readVectors()
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range vs {
		if v.response == response {
			f.Add(v.in)
		}
	}
}

// checkParseError asserts what every parser error must be.
func checkParseError(t *testing.T, n int, err error) {
	t.Helper()
	if n != 0 {
		t.Fatalf("n = %d with error %v", n, err)
	}
	if err != ErrIncomplete && statusOf(err) == 0 {
		t.Fatalf("error %v is neither ErrIncomplete nor an *Error", err)
	}
}

// FuzzParseRequest checks ParseRequestHead (and the body framing after it)
// on any input: no panic, input unmodified, n within the input, and what
// parses re-serialises canonically to a message that parses the same, with
// one framing field, idempotently. The seed corpus in
// testdata/fuzz/FuzzParseRequest is net/http's client output; the vectors
// are added too.
func FuzzParseRequest(f *testing.F) {
	addVectorSeeds(f, false)
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		var h msg.Head
		n, err := ParseRequestHead(b, &h, Limits{})
		if !bytes.Equal(b, orig) {
			t.Fatal("input modified")
		}
		if err != nil {
			checkParseError(t, n, err)
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("n = %d for %d bytes", n, len(b))
		}
		m, err := parseMessage(b, false, nil, Limits{})
		if err != nil {
			if err != ErrIncomplete && statusOf(err) == 0 {
				t.Fatalf("body error %v", err)
			}
			return
		}
		checkRoundTrip(t, m, nil)
		checkNetHTTPAgrees(t, b[:m.n], m)
	})
}

// checkNetHTTPAgrees parses an accepted request with net/http as a
// backend would: where net/http accepts it too, it must see the same
// method and body, or a backend written with it would frame the stream
// differently from the proxy.
func checkNetHTTPAgrees(t *testing.T, b []byte, m *message) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(b))
	r, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if r.Method != string(m.head.Method) || !bytes.Equal(body, m.body) || br.Buffered() != 0 {
		t.Fatalf("net/http reads %q as %s with body %q and %d bytes left; strata as %s with body %q",
			b, r.Method, body, br.Buffered(), m.head.Method, m.body)
	}
}

// FuzzParseResponse is FuzzParseRequest for responses, answering a GET, a
// HEAD or a CONNECT by the input's first byte.
func FuzzParseResponse(f *testing.F) {
	addVectorSeeds(f, true)
	f.Fuzz(func(t *testing.T, b []byte) {
		var method []byte
		if len(b) > 0 {
			switch b[0] % 8 {
			case 0:
				method = []byte("HEAD")
			case 1:
				method = []byte("CONNECT")
			default:
				method = []byte("GET")
			}
			b = b[1:]
		}
		var h msg.Head
		n, err := ParseResponseHead(b, &h, method, Limits{})
		if err != nil {
			checkParseError(t, n, err)
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("n = %d for %d bytes", n, len(b))
		}
		if h.Status < 100 || h.Status > 599 {
			t.Fatalf("status %d", h.Status)
		}
		m, err := parseMessage(b, true, method, Limits{})
		if err != nil {
			if err != ErrIncomplete && statusOf(err) == 0 {
				t.Fatalf("body error %v", err)
			}
			return
		}
		checkRoundTrip(t, m, method)
	})
}

// FuzzChunked checks the ChunkedDecoder: fed whole or in pieces it decodes
// the same, never consumes more than it is given, and a body it accepts
// re-encodes canonically to one that decodes to the same data and
// trailers.
func FuzzChunked(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"), uint8(1))
	f.Add([]byte(chunkedBody), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		data, trailers, n, err := decodeAll(b, len(b)+1, Limits{})
		if n > len(b) {
			t.Fatalf("consumed %d of %d", n, len(b))
		}
		if err != nil && err != ErrIncomplete && statusOf(err) == 0 {
			t.Fatalf("error %v", err)
		}
		data2, trailers2, n2, err2 := decodeAll(b, int(step)+1, Limits{})
		if statusOf(err) != statusOf(err2) || (err == nil) != (err2 == nil) {
			t.Fatalf("whole: %v; in steps of %d: %v", err, int(step)+1, err2)
		}
		if err != nil {
			return
		}
		if !bytes.Equal(data, data2) || n != n2 || len(trailers) != len(trailers2) {
			t.Fatalf("whole and stepped decoding differ: %q %q", data, data2)
		}
		// Re-encode: the data in up to three chunks, then the trailers.
		d := ChunkedDecoder{}
		var fs msg.Fields
		{
			src := b[:n]
			for {
				_, k, err := d.Decode(src)
				src = src[k:]
				if err != nil {
					if !errors.Is(err, io.EOF) {
						t.Fatal(err)
					}
					break
				}
			}
			fs = d.Trailers
		}
		var enc []byte
		third := len(data) / 3
		enc = AppendChunk(enc, data[:third])
		enc = AppendChunk(enc, data[third:2*third])
		enc = AppendChunk(enc, data[2*third:])
		enc = AppendLastChunk(enc, fs)
		back, trailersBack, nb, err := decodeAll(enc, len(enc), Limits{})
		if err != nil || nb != len(enc) {
			t.Fatalf("canonical %q: %d %v", enc, nb, err)
		}
		if !bytes.Equal(back, data) || len(trailersBack) != len(trailers) {
			t.Fatalf("canonical %q decodes to %q %q, want %q %q", enc, back, trailersBack, data, trailers)
		}
		for i := range trailers {
			if trailers[i] != trailersBack[i] {
				t.Fatalf("trailer %d: %q != %q", i, trailersBack[i], trailers[i])
			}
		}
		if again := AppendLastChunk(AppendChunk(nil, back), fs); !bytes.Equal(again, AppendLastChunk(AppendChunk(nil, data), fs)) {
			t.Fatal("re-encoding not idempotent")
		}
	})
}
