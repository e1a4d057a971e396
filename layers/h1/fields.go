package h1

import (
	"bytes"

	"github.com/strata-proxy/strata/layers/msg"
)

// parseFields parses field lines from b[pos:] up to and including the empty
// line that ends them, appending each field to fs (names as received,
// values without surrounding OWS). It returns the offset just past the
// empty line, or ErrIncomplete when b ends first.
func parseFields(b []byte, pos int, fs *msg.Fields, maxFields int) (int, error) {
	n := 0
	for {
		if pos >= len(b) {
			return 0, ErrIncomplete
		}
		switch b[pos] {
		case '\r':
			if pos+1 >= len(b) {
				return 0, ErrIncomplete
			}
			if b[pos+1] != '\n' {
				return 0, errBareCR
			}
			return pos + 2, nil
		case '\n':
			return 0, errBareLF
		case ' ', '\t':
			// obs-fold, or whitespace between the start line and the first
			// field (RFC 9112 §2.2, §5.2): both refused.
			return 0, errObsFold
		}
		eol := bytes.IndexByte(b[pos:], '\n')
		if eol < 0 {
			if cr := bytes.IndexByte(b[pos:], '\r'); cr >= 0 && pos+cr < len(b)-1 {
				return 0, errBareCR // no LF follows it
			}
			return 0, ErrIncomplete
		}
		line := b[pos : pos+eol]
		if line[len(line)-1] != '\r' {
			return 0, errBareLF
		}
		line = line[:len(line)-1]
		i := 0
		for i < len(line) && isTchar(line[i]) {
			i++
		}
		if i == len(line) {
			return 0, errNoColon
		}
		if line[i] != ':' {
			switch line[i] {
			case ' ', '\t':
				return 0, errSpaceBeforeColon
			case '\r':
				return 0, errBareCR
			}
			return 0, errFieldName
		}
		if i == 0 {
			return 0, errEmptyName
		}
		value := trimOWS(line[i+1:])
		for _, c := range value {
			if class[c]&cValue == 0 {
				if c == '\r' {
					return 0, errBareCR
				}
				return 0, errFieldValue
			}
		}
		if n++; n > maxFields {
			return 0, errTooManyFields
		}
		*fs = append(*fs, msg.Field{Name: line[:i], Value: value})
		pos += eol + 1
	}
}

// Field names the codec interprets.
const (
	nameContentLength    = "content-length"
	nameTransferEncoding = "transfer-encoding"
	nameHost             = "host"
	nameConnection       = "connection"
	nameUpgrade          = "upgrade"
	nameExpect           = "expect"
	nameTrailer          = "trailer"
)

// isFramingField reports whether name is a framing field the codec owns:
// never kept in msg.Head.Fields, never copied to the output.
func isFramingField(name []byte) bool {
	switch len(name) {
	case len(nameContentLength):
		return msg.EqualFold(name, nameContentLength)
	case len(nameTransferEncoding):
		return msg.EqualFold(name, nameTransferEncoding)
	}
	return false
}

// forbiddenInTrailers reports whether a field may not be sent as a trailer:
// framing, routing, connection control and request modifiers that a
// recipient acts on before the body (RFC 9110 §6.5.1). A trailer named so is
// refused, so that no hop can merge it into the head with a new meaning.
func forbiddenInTrailers(name []byte) bool {
	if isFramingField(name) || lookalike(name, nameContentLength) || lookalike(name, nameTransferEncoding) {
		return true
	}
	for _, s := range [...]string{nameHost, nameConnection, nameUpgrade, nameExpect, nameTrailer,
		"te", "keep-alive", "proxy-connection", "content-type", "content-encoding", "content-range"} {
		if msg.EqualFold(name, s) {
			return true
		}
	}
	return false
}

// framing is what the fields of a head say about its body and connection.
type framing struct {
	clSeen      bool
	cl          int64
	teSeen      bool
	teChunked   int  // how many times "chunked" appears
	teLastChunk bool // the last coding is chunked
	teUnknown   bool // a coding other than chunked appears
	hosts       int
	host        int // index in Fields of the Host field
	connClose   bool
	connKeep    bool
	connUpgrade bool
	upgrade     []byte
	expect100   bool
	trailer     bool
}

// scanFields interprets the fields of a head, removing the framing fields
// from fs (keeping the order of the others).
func scanFields(fs *msg.Fields) (framing, error) {
	f := framing{host: -1}
	s := *fs
	j := 0
	for i := range s {
		name, value := s[i].Name, s[i].Value
		switch len(name) {
		case len(nameContentLength):
			if msg.EqualFold(name, nameContentLength) {
				if err := f.contentLength(value); err != nil {
					return f, err
				}
				continue
			}
			if lookalike(name, nameContentLength) {
				return f, errFramingLookalike
			}
		case len(nameTransferEncoding):
			if msg.EqualFold(name, nameTransferEncoding) {
				if err := f.transferEncoding(value); err != nil {
					return f, err
				}
				continue
			}
			if lookalike(name, nameTransferEncoding) {
				return f, errFramingLookalike
			}
		case len(nameHost):
			if msg.EqualFold(name, nameHost) {
				f.hosts++
				f.host = j
			}
		case len(nameConnection):
			if msg.EqualFold(name, nameConnection) {
				f.connection(value)
			}
		case len(nameUpgrade): // and len(nameTrailer)
			if msg.EqualFold(name, nameUpgrade) && f.upgrade == nil {
				f.upgrade = value
			} else if msg.EqualFold(name, nameTrailer) {
				f.trailer = true
			}
		case len(nameExpect):
			if msg.EqualFold(name, nameExpect) && msg.EqualFold(value, "100-continue") {
				f.expect100 = true
			}
		}
		s[j] = s[i]
		j++
	}
	clear(s[j:])
	*fs = s[:j]
	if f.clSeen && f.teSeen {
		return f, errCLTE
	}
	return f, nil
}

// contentLength folds one Content-Length field into f. A list ("5, 5") and
// repeated fields are accepted when every element is the same number, as
// HAProxy does (RFC 9110 §8.6 allows it); differing values, empty
// elements, signs, non-digits and values past 2^63-1 are refused.
func (f *framing) contentLength(v []byte) error {
	for {
		var elem []byte
		i := bytes.IndexByte(v, ',')
		if i < 0 {
			elem, v = v, nil
		} else {
			elem, v = v[:i], v[i+1:]
		}
		elem = trimOWS(elem)
		if len(elem) == 0 || len(elem) > 19 {
			return errCL
		}
		var n int64
		for _, c := range elem {
			if c < '0' || c > '9' {
				return errCL
			}
			d := int64(c - '0')
			if n > (1<<63-1-d)/10 {
				return errCL
			}
			n = n*10 + d
		}
		if f.clSeen && n != f.cl {
			return errCLDiffer
		}
		f.clSeen, f.cl = true, n
		if i < 0 {
			return nil
		}
	}
}

// transferEncoding folds one Transfer-Encoding field's codings into f
// (several fields are one list, in order). Each element is a token with
// optional parameters; empty elements are refused.
func (f *framing) transferEncoding(v []byte) error {
	f.teSeen = true
	for {
		var elem []byte
		i := bytes.IndexByte(v, ',')
		if i < 0 {
			elem, v = v, nil
		} else {
			elem, v = v[:i], v[i+1:]
		}
		elem = trimOWS(elem)
		coding, params := elem, []byte(nil)
		if k := bytes.IndexByte(elem, ';'); k >= 0 {
			coding, params = trimOWS(elem[:k]), elem[k:]
		}
		if !isToken(coding) {
			return errTE
		}
		if msg.EqualFold(coding, "chunked") {
			if params != nil {
				return errTE // chunked takes no parameters
			}
			if f.teChunked++; f.teChunked > 1 {
				return errTEChunkedTwice
			}
			f.teLastChunk = true
		} else {
			if params != nil && !validParams(params) {
				return errTE
			}
			f.teUnknown = true
			f.teLastChunk = false
		}
		if i < 0 {
			return nil
		}
	}
}

// validParams checks *( OWS ";" OWS token "=" ( token / quoted-string ) ).
func validParams(p []byte) bool {
	for len(p) > 0 {
		p = trimOWS(p)
		if len(p) == 0 || p[0] != ';' {
			return false
		}
		p = trimOWS(p[1:])
		k := 0
		for k < len(p) && isTchar(p[k]) {
			k++
		}
		if k == 0 || k == len(p) || p[k] != '=' {
			return false
		}
		p = p[k+1:]
		m := tokenOrQuoted(p)
		if m <= 0 {
			return false
		}
		p = p[m:]
	}
	return true
}

// tokenOrQuoted returns the length of the token or quoted-string at the
// start of p, or 0 when there is none.
func tokenOrQuoted(p []byte) int {
	if len(p) == 0 {
		return 0
	}
	if p[0] != '"' {
		k := 0
		for k < len(p) && isTchar(p[k]) {
			k++
		}
		return k
	}
	for k := 1; k < len(p); k++ {
		switch c := p[k]; {
		case c == '"':
			return k + 1
		case c == '\\':
			if k+1 >= len(p) || class[p[k+1]]&cValue == 0 {
				return 0
			}
			k++
		case class[c]&cQdtext == 0:
			return 0
		}
	}
	return 0
}

// connection reads the Connection field's options.
func (f *framing) connection(v []byte) {
	for len(v) > 0 {
		var elem []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			elem, v = v[:i], v[i+1:]
		} else {
			elem, v = v, nil
		}
		elem = trimOWS(elem)
		switch {
		case msg.EqualFold(elem, "close"):
			f.connClose = true
		case msg.EqualFold(elem, "keep-alive"):
			f.connKeep = true
		case msg.EqualFold(elem, "upgrade"):
			f.connUpgrade = true
		}
	}
}

// lookalike reports whether name spells the framing field s with '_' for
// '-' ("Transfer_Encoding"): servers that map '_' to '-' (CGI, some
// frameworks) would frame by it, so it is refused rather than forwarded.
func lookalike(name []byte, s string) bool {
	if len(name) != len(s) {
		return false
	}
	for i := range name {
		c := name[i]
		if c == '_' {
			c = '-'
		}
		if c|0x20 != s[i]|0x20 && !(c == '-' && s[i] == '-') {
			return false
		}
	}
	return true
}
