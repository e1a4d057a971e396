package h1

import (
	"net"
	"strconv"

	"github.com/strata-proxy/strata/layers/msg"
)

// crlf is shared by every chunk AppendChunkBuffers frames. Read-only.
var crlf = []byte("\r\n")

// AppendRequestHead appends h as an HTTP/1 request head to dst and returns
// the extended slice.
//
// The output is canonical: the target in origin-form (authority-form for
// CONNECT, "*" for an asterisk-form OPTIONS), version HTTP/1.0 for a 1.0
// request and HTTP/1.1 otherwise, a Host field from h.Authority first when
// h.Fields has none (a head from HTTP/2), the fields in order except
// Content-Length and Transfer-Encoding, and then exactly one framing field
// from h.Body: "Content-Length: n" for msg.BodyLength, "Transfer-Encoding:
// chunked" for msg.BodyChunked (the caller must then frame the body with
// AppendChunk and AppendLastChunk, and must not use it for HTTP/1.0), none
// for msg.BodyNone.
//
// Fields are written as they are: a field an analyser set must be valid
// (a token name, no CR, LF or NUL in the value).
func AppendRequestHead(dst []byte, h *msg.Head) []byte {
	dst = append(dst, h.Method...)
	dst = append(dst, ' ')
	switch {
	case string(h.Method) == "CONNECT":
		dst = append(dst, h.Authority...)
	case len(h.Path) == 0:
		dst = append(dst, '/')
	default:
		dst = append(dst, h.Path...)
	}
	if h.Major == 1 && h.Minor == 0 {
		dst = append(dst, " HTTP/1.0\r\n"...)
	} else {
		dst = append(dst, " HTTP/1.1\r\n"...)
	}
	if len(h.Authority) > 0 && !h.Has(nameHost) {
		dst = append(dst, "Host: "...)
		dst = append(dst, h.Authority...)
		dst = append(dst, "\r\n"...)
	}
	dst = appendFields(dst, h.Fields, isFramingField)
	switch h.Body {
	case msg.BodyLength:
		dst = appendContentLength(dst, h.ContentLength)
	case msg.BodyChunked:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// AppendResponseHead appends h as an HTTP/1 response head to dst and
// returns the extended slice. Like AppendRequestHead it writes the fields
// in order without any framing field of theirs, then exactly one framing
// field from h.Body: none for 1xx and 204; for msg.BodyNone a
// "Content-Length" when h.ContentLength >= 0 (the length a response to
// HEAD or a 304 declares, or 0); "Content-Length: n" for msg.BodyLength;
// "Transfer-Encoding: chunked" for msg.BodyChunked; none for
// msg.BodyUntilClose, after which the caller closes the connection.
func AppendResponseHead(dst []byte, h *msg.Head) []byte {
	if h.Major == 1 && h.Minor == 0 {
		dst = append(dst, "HTTP/1.0 "...)
	} else {
		dst = append(dst, "HTTP/1.1 "...)
	}
	dst = strconv.AppendInt(dst, int64(h.Status), 10)
	dst = append(dst, ' ')
	dst = append(dst, h.Reason...)
	dst = append(dst, "\r\n"...)
	dst = appendFields(dst, h.Fields, isFramingField)
	if h.Status >= 200 && h.Status != 204 {
		switch h.Body {
		case msg.BodyNone:
			if h.ContentLength >= 0 {
				dst = appendContentLength(dst, h.ContentLength)
			}
		case msg.BodyLength:
			dst = appendContentLength(dst, h.ContentLength)
		case msg.BodyChunked:
			dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
		}
	}
	return append(dst, "\r\n"...)
}

func appendContentLength(dst []byte, n int64) []byte {
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, max(n, 0), 10)
	return append(dst, "\r\n"...)
}

func appendFields(dst []byte, fs msg.Fields, skip func([]byte) bool) []byte {
	for _, f := range fs {
		if skip(f.Name) {
			continue
		}
		dst = append(dst, f.Name...)
		dst = append(dst, ": "...)
		dst = append(dst, f.Value...)
		dst = append(dst, "\r\n"...)
	}
	return dst
}

// AppendChunk appends data as one chunk (size line, data, CRLF) to dst.
// Empty data appends nothing: an empty chunk would end the body.
func AppendChunk(dst, data []byte) []byte {
	if len(data) == 0 {
		return dst
	}
	dst = AppendChunkHeader(dst, len(data))
	dst = append(dst, data...)
	return append(dst, "\r\n"...)
}

// AppendChunkHeader appends the size line of a chunk of size bytes (> 0);
// the data and a CRLF must follow it.
func AppendChunkHeader(dst []byte, size int) []byte {
	dst = strconv.AppendUint(dst, uint64(size), 16)
	return append(dst, "\r\n"...)
}

// AppendChunkBuffers appends to bufs one chunk carrying data for a vectored
// write: its size line (appended to scratch), data itself (not copied) and
// the CRLF after it. It returns bufs and scratch extended; the size line
// stays valid when later appends to scratch grow it. Empty data appends
// nothing.
func AppendChunkBuffers(bufs net.Buffers, scratch, data []byte) (net.Buffers, []byte) {
	if len(data) == 0 {
		return bufs, scratch
	}
	start := len(scratch)
	scratch = AppendChunkHeader(scratch, len(data))
	return append(bufs, scratch[start:len(scratch):len(scratch)], data, crlf), scratch
}

// AppendLastChunk appends the end of a chunked body to dst: the last chunk
// ("0"), the trailers, and the final CRLF. Trailers that may not be sent
// as trailers (framing, routing and connection fields, see
// ChunkedDecoder) are left out.
func AppendLastChunk(dst []byte, trailers msg.Fields) []byte {
	dst = append(dst, "0\r\n"...)
	dst = appendFields(dst, trailers, forbiddenInTrailers)
	return append(dst, "\r\n"...)
}
