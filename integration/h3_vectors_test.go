package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/quic-go/qpack"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/strata-proxy/strata/certs"
)

// rawH3 is a bare HTTP/3 client connection that sends whatever header
// fields, DATA and trailers it is given, valid or not: quic-go's own client
// would refuse to send most downgrade vectors.
type rawH3 struct {
	conn *quic.Conn
}

func dialRawH3(t *testing.T, addr string, cfg *tls.Config) *rawH3 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h3"}
	conn, err := quic.DialAddr(ctx, addr, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := conn.OpenUniStream()
	if err != nil {
		t.Fatal(err)
	}
	// The control stream: its type (0x00), then an empty SETTINGS frame.
	if _, err := ctrl.Write([]byte{0x00, 0x04, 0x00}); err != nil {
		t.Fatal(err)
	}
	return &rawH3{conn: conn}
}

// appendFrame appends an HTTP/3 frame of type typ.
func appendFrame(b []byte, typ uint64, payload []byte) []byte {
	b = quicvarint.Append(b, typ)
	b = quicvarint.Append(b, uint64(len(payload)))
	return append(b, payload...)
}

// fieldBlock QPACK-encodes fields as they are (static table only).
func fieldBlock(fields []hfield) []byte {
	var block bytes.Buffer
	enc := qpack.NewEncoder(&block)
	for _, f := range fields {
		enc.WriteField(qpack.HeaderField{Name: f.name, Value: f.value})
	}
	return block.Bytes()
}

// exchange sends v on a new request stream — HEADERS, a DATA frame per
// body element, HEADERS with the trailers — ends it, and waits for the
// response's HEADERS (its :status), a stream reset or the connection's
// end.
func (c *rawH3) exchange(v streamVector, within time.Duration) streamOutcome {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	str, err := c.conn.OpenStreamSync(ctx)
	if err != nil {
		return streamOutcome{detail: err.Error()}
	}
	str.SetDeadline(time.Now().Add(within))
	out := appendFrame(nil, 0x01, fieldBlock(v.fields)) // HEADERS
	for _, d := range v.body {
		out = appendFrame(out, 0x00, []byte(d)) // DATA
	}
	if len(v.trailers) > 0 {
		out = appendFrame(out, 0x01, fieldBlock(v.trailers))
	}
	if _, err := str.Write(out); err == nil {
		str.Close()
	}
	r := quicvarint.NewReader(str)
	for {
		typ, err := quicvarint.Read(r)
		if err != nil {
			return h3Failure(c.conn, err)
		}
		n, err := quicvarint.Read(r)
		if err != nil {
			return h3Failure(c.conn, err)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return h3Failure(c.conn, err)
		}
		if typ != 0x01 {
			continue // not HEADERS
		}
		dec := qpack.NewDecoder().Decode(payload)
		for {
			f, err := dec()
			if err != nil {
				return streamOutcome{detail: fmt.Sprintf("response HEADERS without :status (%v)", err)}
			}
			if f.Name == ":status" {
				status, _ := strconv.Atoi(f.Value)
				if status < 200 {
					break // an interim response: the final one follows
				}
				str.CancelRead(0x10c) // H3_REQUEST_CANCELLED: the body is not needed
				return streamOutcome{status: status}
			}
		}
	}
}

// h3Failure classifies the error that ended a stream before a response.
func h3Failure(conn *quic.Conn, err error) streamOutcome {
	var se *quic.StreamError
	if errors.As(err, &se) {
		return streamOutcome{reset: true, detail: fmt.Sprintf("stream error %#x", uint64(se.ErrorCode))}
	}
	if conn.Context().Err() != nil {
		return streamOutcome{closed: true, detail: err.Error()}
	}
	return streamOutcome{detail: err.Error()}
}

// h3Driver sends each vector on a new QUIC connection.
func h3Driver(addr string, cfg *tls.Config) streamDriver {
	return func(t *testing.T, v streamVector) streamOutcome {
		c := dialRawH3(t, addr, cfg)
		defer c.conn.CloseWithError(0x100, "")
		return c.exchange(v, 10*time.Second)
	}
}

// h3Gaps are the vectors strata cannot refuse over HTTP/3, with why: each
// must then reach the backend as exactly one canonical request.
var h3Gaps = map[string]string{
	"missing :scheme":           "quic-go's HTTP/3 server accepts a request without :scheme and does not pass :scheme on",
	":scheme not http or https": "quic-go's HTTP/3 server accepts any :scheme and does not pass it on",
}

// TestH3Vectors runs the downgrade vectors (streamvectors_test.go) over
// HTTP/3 against a QUIC frontend in front of a recording HTTP/1 backend.
func TestH3Vectors(t *testing.T) {
	p := newPKI(t)
	cert, key := p.issue(t, "front", certs.IssueOptions{}, "localhost")
	rec := newRecorder(t)
	addr := freeAddr(t)
	startStrata(t, h3Config(addr, cert, key, rec.addr, "", ""))
	runStreamVectorsWithGaps(t, h3Driver(addr, &tls.Config{RootCAs: p.pool(), ServerName: "localhost"}), rec, h3Gaps)
}
