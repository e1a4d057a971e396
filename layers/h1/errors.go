package h1

import (
	"errors"
	"strconv"
)

// ErrIncomplete is returned by the parsers when the input is a valid
// beginning of a message part but does not contain all of it yet: read
// more, append it, and call again with the whole input.
var ErrIncomplete = errors.New("h1: incomplete message")

// Error is a protocol violation in the input, with the status a server
// answers it with. The caller must not forward the message and should
// close the connection after answering. For a response parsed from a
// backend the session answers 502 instead, whatever Status says.
//
// The parsers return shared *Error values: do not modify them.
type Error struct {
	Status int    // 400, 413, 414, 431, 501 or 505
	Reason string // short and fixed, fit for a log line
}

func (e *Error) Error() string { return "h1: " + strconv.Itoa(e.Status) + " " + e.Reason }

func bad(reason string) *Error { return &Error{Status: 400, Reason: reason} }

// The errors the codec returns, one per rule, so that a log line says which
// rule refused a message.
var (
	errBareLF           = bad("bare LF line terminator")
	errBareCR           = bad("bare CR")
	errObsFold          = bad("obs-fold or leading whitespace in field line")
	errSpaceBeforeColon = bad("whitespace between field name and colon")
	errFieldName        = bad("invalid character in field name")
	errEmptyName        = bad("empty field name")
	errNoColon          = bad("field line without colon")
	errFieldValue       = bad("control character in field value")
	errMethod           = bad("invalid method")
	errRequestLine      = bad("malformed request line")
	errTarget           = bad("invalid character in request target")
	errTargetForm       = bad("request target form not allowed for method")
	errAbsoluteForm     = bad("malformed absolute-form target")
	errVersion          = bad("malformed HTTP version")
	errStatusLine       = bad("malformed status line")
	errHost             = bad("invalid Host")
	errNoHost           = bad("missing Host in HTTP/1.1 request")
	errManyHosts        = bad("several Host fields")
	errCL               = bad("invalid Content-Length")
	errCLDiffer         = bad("differing Content-Length values")
	errCLTE             = bad("both Content-Length and Transfer-Encoding")
	errTE               = bad("malformed Transfer-Encoding")
	errTENotChunked     = bad("Transfer-Encoding in request does not end with chunked")
	errTEChunkedTwice   = bad("chunked applied more than once")
	errTE10             = bad("Transfer-Encoding in HTTP/1.0 message")
	errFramingLookalike = bad("framing field name spelt with '_'")
	errChunkSize        = bad("invalid chunk size")
	errChunkExt         = bad("invalid chunk extension")
	errChunkLine        = bad("chunk-size line too long")
	errChunkCRLF        = bad("missing CRLF after chunk data")
	errTrailerField     = bad("framing or routing field in trailers")

	errUnknownCoding = &Error{Status: 501, Reason: "unsupported transfer coding"}
	errVersionUnsupp = &Error{Status: 505, Reason: "unsupported HTTP version"}
	errHeadTooLarge  = &Error{Status: 431, Reason: "header section too large"}
	errTooManyFields = &Error{Status: 431, Reason: "too many header fields"}
	errURITooLong    = &Error{Status: 414, Reason: "request target too long"}
	errBodyTooLarge  = &Error{Status: 413, Reason: "body too large"}
)

// Limits bounds what a parser accepts. The zero value of a field means its
// default (DefaultLimits); configuration structs copy it by value.
type Limits struct {
	// MaxHeadBytes bounds the head (start line, fields and the empty line,
	// and any CRLFs before a request line), and separately a trailer
	// section: 431 past it. It should not exceed the stage's buffer.
	MaxHeadBytes int
	// MaxFields bounds the number of header (or trailer) fields: 431.
	MaxFields int
	// MaxURI bounds the request target's length: 414.
	MaxURI int
	// MaxBody bounds the body's length (a Content-Length, or the sum of
	// the chunks): 413. 0 means unlimited.
	MaxBody int64
}

// DefaultLimits are HAProxy's: a head fits the 16 KiB buffer, 101 fields
// (tune.http.maxhdr), an 8 KiB target, any body size.
var DefaultLimits = Limits{
	MaxHeadBytes: 16 << 10,
	MaxFields:    101,
	MaxURI:       8 << 10,
	MaxBody:      0,
}

// WithDefaults is l with each zero field set to its default.
func (l Limits) WithDefaults() Limits { return l.withDefaults() }

func (l Limits) withDefaults() Limits {
	if l.MaxHeadBytes <= 0 {
		l.MaxHeadBytes = DefaultLimits.MaxHeadBytes
	}
	if l.MaxFields <= 0 {
		l.MaxFields = DefaultLimits.MaxFields
	}
	if l.MaxURI <= 0 {
		l.MaxURI = DefaultLimits.MaxURI
	}
	if l.MaxBody < 0 {
		l.MaxBody = 0
	}
	return l
}
