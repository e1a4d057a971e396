package h1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/strata-proxy/strata/layers/msg"
)

// message is one whole parsed message: head, body data and trailers.
type message struct {
	head     msg.Head
	body     []byte
	trailers msg.Fields
	n        int // bytes of input it took
}

// parseMessage parses one complete request (forMethod == nil) or response
// from b: its head and, by its framing, its body. It returns ErrIncomplete
// when b ends before the message does.
func parseMessage(b []byte, response bool, forMethod []byte, lim Limits) (*message, error) {
	m := &message{}
	var n int
	var err error
	if response {
		n, err = ParseResponseHead(b, &m.head, forMethod, lim)
	} else {
		n, err = ParseRequestHead(b, &m.head, lim)
	}
	if err != nil {
		return nil, err
	}
	rest := b[n:]
	switch m.head.Body {
	case msg.BodyLength:
		if int64(len(rest)) < m.head.ContentLength {
			return nil, ErrIncomplete
		}
		m.body = rest[:m.head.ContentLength]
		n += int(m.head.ContentLength)
	case msg.BodyUntilClose:
		m.body = rest
		n += len(rest)
	case msg.BodyChunked:
		d := ChunkedDecoder{Limits: lim}
		for {
			data, k, err := d.Decode(rest)
			m.body = append(m.body, data...)
			rest = rest[k:]
			n += k
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
		}
		m.trailers = d.Trailers
	}
	m.n = n
	return m, nil
}

// canonical re-serialises m as the proxy forwards it: the head from the
// Append functions and the body re-framed by the head's BodyKind.
func canonical(m *message) []byte {
	var out []byte
	if m.head.IsResponse() {
		out = AppendResponseHead(nil, &m.head)
	} else {
		out = AppendRequestHead(nil, &m.head)
	}
	switch m.head.Body {
	case msg.BodyLength, msg.BodyUntilClose:
		out = append(out, m.body...)
	case msg.BodyChunked:
		out = AppendChunk(out, m.body)
		out = AppendLastChunk(out, m.trailers)
	}
	return out
}

// sameMessage reports how a and b differ in what a forwarding proxy must
// keep: method, authority, path, status, version, fields in order, framing,
// flags, body and trailers. The scheme is not compared: HTTP/1 forwards in
// origin-form.
func sameMessage(a, b *message) error {
	ha, hb := &a.head, &b.head
	switch {
	case !bytes.Equal(ha.Method, hb.Method):
		return fmt.Errorf("method %q != %q", ha.Method, hb.Method)
	case !bytes.Equal(ha.Authority, hb.Authority):
		return fmt.Errorf("authority %q != %q", ha.Authority, hb.Authority)
	case !bytes.Equal(ha.Path, hb.Path):
		return fmt.Errorf("path %q != %q", ha.Path, hb.Path)
	case ha.Status != hb.Status || !bytes.Equal(ha.Reason, hb.Reason):
		return fmt.Errorf("status %d %q != %d %q", ha.Status, ha.Reason, hb.Status, hb.Reason)
	case ha.Major != hb.Major || ha.Minor != hb.Minor:
		return fmt.Errorf("version %d.%d != %d.%d", ha.Major, ha.Minor, hb.Major, hb.Minor)
	case ha.Body != hb.Body || ha.ContentLength != hb.ContentLength:
		return fmt.Errorf("framing %v %d != %v %d", ha.Body, ha.ContentLength, hb.Body, hb.ContentLength)
	case ha.Close != hb.Close || ha.Expect100 != hb.Expect100 || ha.HasTrailers != hb.HasTrailers || !bytes.Equal(ha.Upgrade, hb.Upgrade):
		return fmt.Errorf("flags differ: %+v vs %+v", ha, hb)
	case !bytes.Equal(a.body, b.body):
		return fmt.Errorf("body %q != %q", a.body, b.body)
	}
	if err := sameFields(ha.Fields, hb.Fields); err != nil {
		return fmt.Errorf("fields: %w", err)
	}
	if err := sameFields(a.trailers, b.trailers); err != nil {
		return fmt.Errorf("trailers: %w", err)
	}
	return nil
}

func sameFields(a, b msg.Fields) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d fields != %d", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i].Name, b[i].Name) || !bytes.Equal(a[i].Value, b[i].Value) {
			return fmt.Errorf("field %d %q: %q != %q: %q", i, a[i].Name, a[i].Value, b[i].Name, b[i].Value)
		}
	}
	return nil
}

// countFraming counts the framing fields in a serialised head.
func countFraming(head []byte) int {
	n := 0
	for _, line := range bytes.Split(head, []byte("\r\n")) {
		name, _, ok := bytes.Cut(line, []byte(":"))
		if ok && isFramingField(name) {
			n++
		}
	}
	return n
}

// checkRoundTrip asserts that m, parsed from some input, re-serialises to
// a canonical message that parses back to the same message with exactly
// the framing fields its BodyKind calls for, and that serialising that
// again gives the same bytes.
func checkRoundTrip(t testing.TB, m *message, forMethod []byte) {
	t.Helper()
	out := canonical(m)
	resp := m.head.IsResponse()
	back, err := parseMessage(out, resp, forMethod, Limits{MaxHeadBytes: 1 << 30, MaxFields: 1 << 30, MaxURI: 1 << 30})
	if err != nil {
		t.Fatalf("canonical form %q does not parse: %v", out, err)
	}
	if back.n != len(out) {
		t.Fatalf("canonical form %q parses as %d of %d bytes", out, back.n, len(out))
	}
	if err := sameMessage(m, back); err != nil {
		t.Fatalf("canonical form %q parses differently: %v", out, err)
	}
	headLen := bytes.Index(out, []byte("\r\n\r\n")) + 4
	want := 0
	switch m.head.Body {
	case msg.BodyLength, msg.BodyChunked:
		want = 1
	case msg.BodyNone:
		if resp && m.head.ContentLength >= 0 {
			want = 1
		}
	}
	if got := countFraming(out[:headLen]); got != want {
		t.Fatalf("canonical head %q has %d framing fields, want %d", out[:headLen], got, want)
	}
	if again := canonical(back); !bytes.Equal(again, out) {
		t.Fatalf("canonical form not idempotent:\n%q\n%q", out, again)
	}
}

// statusOf returns the status of an *Error, or 0.
func statusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}
