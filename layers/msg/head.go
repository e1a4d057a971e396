package msg

// BodyKind says how a message's body is delimited, independent of the
// protocol that carries it.
type BodyKind uint8

// The body framings.
const (
	// BodyNone: the message has no body (a GET without content, a
	// response to HEAD, 1xx, 204, 304, a 2xx to CONNECT).
	BodyNone BodyKind = iota
	// BodyLength: the body is exactly Head.ContentLength bytes (possibly 0).
	BodyLength
	// BodyChunked: the body's length is not known in advance; it is
	// streamed in pieces and may be followed by trailers (chunked in
	// HTTP/1, DATA frames in HTTP/2 and HTTP/3).
	BodyChunked
	// BodyUntilClose: a response body that ends when the server closes
	// the connection (HTTP/1 only produces it; requests never have it).
	BodyUntilClose
)

func (k BodyKind) String() string {
	switch k {
	case BodyNone:
		return "none"
	case BodyLength:
		return "length"
	case BodyChunked:
		return "chunked"
	case BodyUntilClose:
		return "until-close"
	}
	return "unknown"
}

// Head is the head of one HTTP request or response.
//
// A request has Method (and Path, or Authority for CONNECT) and Status 0; a
// response has Status and no Method. The byte slices point into the
// parser's buffer (see the package comment for their lifetime) or into
// memory the caller provided; they are read-only.
//
// A Head is owned by one goroutine, the session's or the stage's, at a time.
type Head struct {
	// Method is the request method, case-sensitive as received ("GET").
	Method []byte
	// Scheme is "http" or "https" when the request named it (HTTP/1
	// absolute-form, HTTP/2 :scheme); empty for HTTP/1 origin-form, where
	// the connection decides.
	Scheme []byte
	// Authority is the request's host[:port]: the absolute-form or
	// authority-form target, else the Host field (HTTP/2 :authority).
	Authority []byte
	// Path is the request's path and query ("/a?b"), or "*" for an
	// asterisk-form OPTIONS; empty for CONNECT.
	Path []byte

	// Status is the response status code; 0 in a request.
	Status int
	// Reason is the response's reason phrase (HTTP/1 only; may be empty).
	Reason []byte

	// Major and Minor are the protocol version the message came in (1.1,
	// 1.0, 2.0, 3.0).
	Major, Minor uint8

	// Fields are the header fields in the order received, names in their
	// original case. Framing fields (Content-Length, Transfer-Encoding) are
	// not here: framing is Body.
	Fields Fields

	// Body is how the body is delimited.
	Body BodyKind
	// ContentLength is the body length for BodyLength. For a BodyNone
	// response to HEAD or a 304 it is the length the Content-Length field
	// declared (metadata to forward), and -1 when none was; -1 for every
	// other framing.
	ContentLength int64

	// Close is true when the sender asked to close the connection after
	// this message (HTTP/1 "Connection: close", an HTTP/1.0 message without
	// keep-alive, a response delimited by close).
	Close bool
	// Expect100 is true for a request carrying "Expect: 100-continue".
	Expect100 bool
	// HasTrailers is true when the message announces trailers (an HTTP/1
	// Trailer field); the trailers themselves arrive after the body.
	HasTrailers bool
	// Upgrade is the Upgrade field's value when the message asks for (or,
	// in a 101, accepts) a protocol switch; nil otherwise.
	Upgrade []byte
}

// IsResponse reports whether h is a response head.
func (h *Head) IsResponse() bool { return h.Status != 0 }

// Reset empties h for reuse, keeping the capacity of Fields so that parsing
// the next message into it allocates nothing. ContentLength becomes -1.
func (h *Head) Reset() {
	f := h.Fields[:0]
	*h = Head{Fields: f, ContentLength: -1}
}

// Get returns the value of the first field named name (ASCII
// case-insensitive), or nil when there is none.
func (h *Head) Get(name string) []byte { return h.Fields.Get(name) }

// Has reports whether a field named name is present.
func (h *Head) Has(name string) bool { return h.Fields.Index(name) >= 0 }

// Values appends the values of every field named name to dst, in order, and
// returns it; pass a reused dst[:0] to avoid allocating.
func (h *Head) Values(dst [][]byte, name string) [][]byte { return h.Fields.Values(dst, name) }

// Del removes every field named name, keeping the order of the others, and
// returns how many it removed.
func (h *Head) Del(name string) int { return h.Fields.Del(name) }

// Set replaces the first field named name with value and removes the
// others; it adds the field at the end when there is none. name and value
// are stored, not copied: the caller keeps them unchanged while h is used,
// and they must be valid field syntax (a token; no CR, LF or NUL).
func (h *Head) Set(name, value []byte) { h.Fields.Set(name, value) }

// Add appends a field; name and value are stored as for Set.
func (h *Head) Add(name, value []byte) { h.Fields.Add(name, value) }
