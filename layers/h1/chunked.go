package h1

import (
	"bytes"
	"io"

	"github.com/strata-proxy/strata/layers/msg"
)

// maxChunkLine bounds a chunk-size line with its extensions and CRLF;
// maxChunkDigits bounds the size itself (leading zeros included).
const (
	maxChunkLine   = 4096
	maxChunkDigits = 16
)

// chunkedState is where a ChunkedDecoder is in the body.
type chunkedState uint8

const (
	stSize     chunkedState = iota // expecting a chunk-size line
	stData                         // inside a chunk's data
	stDataCRLF                     // expecting the CRLF after a chunk's data
	stTrailers                     // expecting the trailer section
	stDone                         // the body ended
	stFailed                       // an error was returned
)

// ChunkedDecoder strips the chunked transfer coding (RFC 9112 §7.1) from a
// body incrementally, without copying or allocating: each Decode call takes
// the undecoded input and returns the next run of data as a sub-slice of
// it. One decoder serves one body at a time and is used by one goroutine;
// Reset it for the next body.
//
// It is strict: a chunk size is 1 to 16 hex digits (no sign, no "0x", no
// whitespace before the CRLF), a size line is at most 4 KiB with its
// extensions, extensions follow the token / quoted-string grammar, chunk
// data is followed by exactly CRLF, and trailers follow the header rules;
// a trailer that carries framing, routing or connection control (see
// AppendLastChunk) is refused, never merged.
type ChunkedDecoder struct {
	// Limits bounds the body (MaxBody: 413) and the trailer section
	// (MaxHeadBytes and MaxFields: 431); zero fields mean DefaultLimits.
	// Set it before the first Decode.
	Limits Limits
	// Trailers holds the trailer fields once Decode has returned io.EOF.
	// They point into the src of that last call.
	Trailers msg.Fields

	state chunkedState
	left  int64 // data bytes left in the current chunk
	total int64 // data bytes so far
	err   error
}

// Reset prepares d for a new body, keeping Limits and the Trailers
// capacity.
func (d *ChunkedDecoder) Reset() {
	*d = ChunkedDecoder{Limits: d.Limits, Trailers: d.Trailers[:0]}
}

// Total returns the number of data bytes decoded so far.
func (d *ChunkedDecoder) Total() int64 { return d.total }

// Done reports whether the whole body, trailers included, was decoded.
func (d *ChunkedDecoder) Done() bool { return d.state == stDone }

// Decode decodes from src, the input not consumed yet, and returns the next
// data run (a sub-slice of src, possibly empty) and how many bytes of src
// it consumed, data included; the caller drops src[:n] and passes the rest,
// with what it reads next appended, to the next call.
//
// err is nil when data or framing was consumed and more may follow;
// ErrIncomplete when Decode needs more input (n may still be > 0: some
// framing was consumed); io.EOF when the body ended, Trailers then holding
// the trailers (every later call returns io.EOF); an *Error otherwise,
// which every later call returns too.
func (d *ChunkedDecoder) Decode(src []byte) (data []byte, n int, err error) {
	for {
		rest := src[n:]
		switch d.state {
		case stSize:
			eol := bytes.IndexByte(rest, '\n')
			if eol < 0 {
				if len(rest) >= maxChunkLine {
					return nil, n, d.fail(errChunkLine)
				}
				return nil, n, ErrIncomplete
			}
			if eol+1 > maxChunkLine {
				return nil, n, d.fail(errChunkLine)
			}
			size, err := parseChunkLine(rest[:eol])
			if err != nil {
				return nil, n, d.fail(err)
			}
			if max := d.Limits.MaxBody; max > 0 && size > max-d.total {
				return nil, n, d.fail(errBodyTooLarge)
			}
			n += eol + 1
			if size == 0 {
				d.state = stTrailers
			} else {
				d.left, d.state = size, stData
			}
		case stData:
			if len(rest) == 0 {
				return nil, n, ErrIncomplete
			}
			k := int(min(d.left, int64(len(rest))))
			d.left -= int64(k)
			d.total += int64(k)
			if d.left == 0 {
				d.state = stDataCRLF
			}
			return rest[:k], n + k, nil
		case stDataCRLF:
			if len(rest) < 2 {
				if len(rest) == 1 && rest[0] != '\r' {
					return nil, n, d.fail(errChunkCRLF)
				}
				return nil, n, ErrIncomplete
			}
			if rest[0] != '\r' || rest[1] != '\n' {
				return nil, n, d.fail(errChunkCRLF)
			}
			n += 2
			d.state = stSize
		case stTrailers:
			lim := d.Limits.withDefaults()
			truncated := false
			if len(rest) > lim.MaxHeadBytes {
				rest, truncated = rest[:lim.MaxHeadBytes], true
			}
			d.Trailers = d.Trailers[:0]
			end, err := parseFields(rest, 0, &d.Trailers, lim.MaxFields)
			if err == ErrIncomplete {
				d.Trailers = d.Trailers[:0]
				if truncated {
					return nil, n, d.fail(errHeadTooLarge)
				}
				return nil, n, ErrIncomplete
			}
			if err != nil {
				return nil, n, d.fail(err)
			}
			for _, f := range d.Trailers {
				if forbiddenInTrailers(f.Name) {
					return nil, n, d.fail(errTrailerField)
				}
			}
			d.state = stDone
			return nil, n + end, io.EOF
		case stDone:
			return nil, n, io.EOF
		default:
			return nil, n, d.err
		}
	}
}

func (d *ChunkedDecoder) fail(err error) error {
	d.state, d.err = stFailed, err
	d.Trailers = d.Trailers[:0]
	return err
}

// parseChunkLine parses "chunk-size [ chunk-ext ] CR" (the LF cut off):
// chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ).
func parseChunkLine(line []byte) (int64, error) {
	if len(line) == 0 || line[len(line)-1] != '\r' {
		return 0, errBareLF
	}
	line = line[:len(line)-1]
	var size int64
	i := 0
	for ; i < len(line) && class[line[i]]&cHex != 0; i++ {
		if i == maxChunkDigits || size > (1<<63-1)>>4 {
			return 0, errChunkSize
		}
		c := line[i]
		var v byte
		switch {
		case c >= 'a':
			v = c - 'a' + 10
		case c >= 'A':
			v = c - 'A' + 10
		default:
			v = c - '0'
		}
		size = size<<4 | int64(v)
	}
	if i == 0 {
		return 0, errChunkSize
	}
	p := line[i:]
	for len(p) > 0 {
		p = skipOWS(p)
		if len(p) == 0 || p[0] != ';' {
			if i == len(line)-len(p) {
				return 0, errChunkSize // a non-hex byte right after the digits
			}
			return 0, errChunkExt
		}
		p = skipOWS(p[1:])
		k := 0
		for k < len(p) && isTchar(p[k]) {
			k++
		}
		if k == 0 {
			return 0, errChunkExt
		}
		p = p[k:]
		q := skipOWS(p)
		if len(q) > 0 && q[0] == '=' {
			q = skipOWS(q[1:])
			m := tokenOrQuoted(q)
			if m == 0 {
				return 0, errChunkExt
			}
			p = q[m:]
		}
	}
	return size, nil
}

func skipOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	return b
}
