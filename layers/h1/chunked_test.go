package h1

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/strata-proxy/strata/layers/msg"
)

// decodeAll decodes a whole chunked body from in, handing the decoder at
// most step new bytes at a time, as a stage reading small packets would.
func decodeAll(in []byte, step int, lim Limits) (data []byte, trailers []string, n int, err error) {
	d := ChunkedDecoder{Limits: lim}
	var pending []byte // undecoded input, as the stage's buffer holds it
	fed := 0
	for {
		if fed < len(in) {
			k := min(step, len(in)-fed)
			pending = append(pending, in[fed:fed+k]...)
			fed += k
		}
		got, c, err := d.Decode(pending)
		data = append(data, got...)
		pending = pending[c:]
		n += c
		switch {
		case err == io.EOF:
			return data, fieldStrings(d.Trailers), n, nil
		case err == ErrIncomplete || err == nil:
			if err == ErrIncomplete && fed == len(in) {
				return data, nil, n, ErrIncomplete
			}
		default:
			return data, nil, n, err
		}
	}
}

func TestChunkedDecoder(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		data     string
		trailers []string
		lim      Limits
		status   int // 0: accepted
	}{
		{name: "one chunk", in: "5\r\nhello\r\n0\r\n\r\n", data: "hello"},
		{name: "several chunks with extensions", in: "3;a=b\r\nfoo\r\n3 ; c=\"d;e\"\r\nbar\r\n0;x\r\n\r\n", data: "foobar"},
		{name: "trailers kept in order", in: "1\r\nx\r\n0\r\nX-B: 2\r\nx-a:  1 \r\n\r\n", data: "x", trailers: []string{"X-B: 2", "x-a: 1"}},
		{name: "empty body", in: "0\r\n\r\n"},
		{name: "max size digits", in: "0000000000000001\r\nx\r\n0\r\n\r\n", data: "x"},
		{name: "17 digits", in: "00000000000000001\r\nx\r\n0\r\n\r\n", status: 400},
		{name: "signed", in: "+1\r\nx\r\n0\r\n\r\n", status: 400},
		{name: "0x", in: "0x1\r\nx\r\n0\r\n\r\n", status: 400},
		{name: "bare lf", in: "1\nx\r\n0\r\n\r\n", status: 400},
		{name: "no crlf after data", in: "1\r\nxy\r\n0\r\n\r\n", status: 400},
		{name: "bad extension", in: "1;=\r\nx\r\n0\r\n\r\n", status: 400},
		{name: "long line", in: "1;a=" + strings.Repeat("b", 5000) + "\r\nx\r\n0\r\n\r\n", status: 400},
		{name: "long line unterminated", in: "1;a=" + strings.Repeat("b", 5000), status: 400},
		{name: "framing trailer", in: "0\r\nContent-Length: 1\r\n\r\n", status: 400},
		{name: "body too large", in: "5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", lim: Limits{MaxBody: 10}, status: 413},
		{name: "body at limit", in: "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", lim: Limits{MaxBody: 10}, data: "helloworld"},
		{name: "too many trailers", in: "0\r\nA: 1\r\nB: 2\r\n\r\n", lim: Limits{MaxFields: 1}, status: 431},
		{name: "trailers too large", in: "0\r\nA: " + strings.Repeat("a", 100) + "\r\n\r\n", lim: Limits{MaxHeadBytes: 64}, status: 431},
	}
	for _, tt := range tests {
		for _, step := range []int{1, 2, 7, 1 << 20} {
			data, trailers, n, err := decodeAll([]byte(tt.in), step, tt.lim)
			if tt.status != 0 {
				if statusOf(err) != tt.status {
					t.Errorf("%s (step %d): err %v, want %d", tt.name, step, err, tt.status)
				}
				continue
			}
			if err != nil || string(data) != tt.data || n != len(tt.in) || strings.Join(trailers, "|") != strings.Join(tt.trailers, "|") {
				t.Errorf("%s (step %d): data %q trailers %q n %d err %v", tt.name, step, data, trailers, n, err)
			}
		}
	}
}

func TestChunkedDecoderSticky(t *testing.T) {
	var d ChunkedDecoder
	if _, _, err := d.Decode([]byte("z\r\n")); statusOf(err) != 400 {
		t.Fatal(err)
	}
	if _, _, err := d.Decode([]byte("1\r\nx\r\n")); statusOf(err) != 400 {
		t.Fatalf("after an error: %v", err)
	}
	d.Reset()
	if _, _, err := d.Decode([]byte("0\r\n\r\n")); err != io.EOF || !d.Done() {
		t.Fatalf("after Reset: %v", err)
	}
	if _, n, err := d.Decode([]byte("more")); err != io.EOF || n != 0 {
		t.Fatalf("after the end: %d %v", n, err)
	}
}

func TestAppendChunked(t *testing.T) {
	var out []byte
	out = AppendChunk(out, []byte("hello world, this is strata"))
	out = AppendChunk(out, nil)
	out = AppendLastChunk(out, msg.Fields{
		{Name: []byte("X-Sum"), Value: []byte("1")},
		{Name: []byte("Transfer-Encoding"), Value: []byte("chunked")},
		{Name: []byte("host"), Value: []byte("evil")},
	})
	want := "1b\r\nhello world, this is strata\r\n0\r\nX-Sum: 1\r\n\r\n"
	if string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}

	var bufs net.Buffers
	var scratch []byte
	bufs, scratch = AppendChunkBuffers(bufs, scratch, []byte("hello"))
	bufs, scratch = AppendChunkBuffers(bufs, scratch, nil)
	bufs, _ = AppendChunkBuffers(bufs, scratch, bytes.Repeat([]byte("a"), 300))
	var w bytes.Buffer
	if _, err := bufs.WriteTo(&w); err != nil {
		t.Fatal(err)
	}
	if want := "5\r\nhello\r\n12c\r\n" + strings.Repeat("a", 300) + "\r\n"; w.String() != want {
		t.Fatalf("buffers wrote %q", w.String())
	}
}
