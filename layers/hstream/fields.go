package hstream

import (
	"net/http"
	"strconv"

	"github.com/strata-proxy/strata/layers/msg"
	"golang.org/x/net/http2/hpack"
)

// Exported refusals, for mux stages that build heads with BuildHead and
// check the body themselves.
// errScheme refuses a request whose :scheme is not one a proxy in front
// of HTTP/1 servers serves.
var errScheme = &Error{400, `:scheme other than "http" or "https"`}

var (
	// ErrBodyLength is a body whose length differs from its content-length.
	ErrBodyLength error = errBodyLength
	// ErrBodyTooLarge is a body longer than Options.MaxBody.
	ErrBodyTooLarge error = errBodyTooLarge
)

// BuildHead fills h from a request's decoded header list, in wire order
// (pseudo-header fields first, as the HPACK layer checked), with the same
// rules as New applies to a net/http request: what RFC 9113 §8.2.2 and
// §8.3 forbid, and what could be read differently once the request is
// downgraded to HTTP/1, is refused with an *Error. endStream says the
// request has no body (its HEADERS ended the stream). The head's slices
// point into fields' strings.
//
// A malformed request that RFC 9113 says must be a stream error
// (PROTOCOL_ERROR) is reported as malformed = true; the caller resets the
// stream for it instead of answering.
func BuildHead(h *msg.Head, fields []hpack.HeaderField, endStream bool, o Options) (malformed bool, err error) {
	if o.MaxFields == 0 {
		o.MaxFields = 100
	}
	h.Reset()
	h.Major, h.Minor = 2, 0
	var method, path, authority string
	var sawMethod, sawPath, sawScheme, sawAuthority bool
	nfields := 0
	size := len(" HTTP/1.1\r\nHost: \r\n\r\n")
	cl := int64(-1)
	var host []string
	var small [4]string
	host = small[:0]
	for i := range fields {
		f := &fields[i]
		if len(f.Name) > 0 && f.Name[0] == ':' {
			switch f.Name {
			case ":method":
				method, sawMethod = f.Value, true
			case ":path":
				path, sawPath = f.Value, true
			case ":scheme":
				if f.Value != "http" && f.Value != "https" {
					return true, errScheme
				}
				sawScheme = true
			case ":authority":
				authority, sawAuthority = f.Value, true
			default:
				return true, errFieldName // :status, :protocol: not in a request here
			}
			size += len(f.Value)
			continue
		}
		if !validLowerName(f.Name) {
			return true, errFieldName // RFC 9113 §8.2.1: malformed
		}
		switch f.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return true, errConnHeader
		case "te":
			if f.Value != "trailers" {
				return true, errTE
			}
		}
		nfields++
		size += len(f.Name) + len(f.Value) + len(": \r\n")
	}
	if !sawMethod {
		return true, errNoPath
	}
	h.Method = bytesOf(method)
	if method == http.MethodConnect {
		if sawPath || sawScheme || !sawAuthority {
			return true, errConnect
		}
		return false, errConnect
	}
	if !sawScheme || !sawPath || path == "" {
		return true, errNoPath
	}
	if !validTarget(path, method) {
		return false, errTarget
	}
	h.Path = bytesOf(path)
	if nfields > o.MaxFields {
		return false, errTooManyField
	}
	if o.MaxHeadBytes > 0 && size > o.MaxHeadBytes {
		return false, errHeadTooLarge
	}
	if o.MaxURI > 0 && len(path) > o.MaxURI {
		return false, errURITooLong
	}
	for i := range fields {
		f := &fields[i]
		name, v := f.Name, f.Value
		if name[0] == ':' {
			continue
		}
		if !validName(name) {
			return false, errFieldName
		}
		if err := checkValue(v); err != nil {
			return false, err
		}
		switch name {
		case "host":
			host = append(host, v)
			continue
		case "content-length":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || v[0] < '0' || v[0] > '9' || (cl >= 0 && n != cl) {
				return false, errCL
			}
			cl = n
			continue // framing is Body
		case "expect":
			continue // the mux stage answers 100-continue itself
		case "trailer":
			h.HasTrailers = true
		}
		h.Fields = append(h.Fields, msg.Field{Name: bytesOf(name), Value: bytesOf(v)})
	}
	if !sawAuthority {
		if len(host) > 0 {
			authority = host[0]
		}
	}
	for _, v := range host {
		if !msg.EqualFold(bytesOf(v), authority) {
			return false, errHost
		}
	}
	if authority == "" {
		return false, errNoAuthority // HTTP/1.1 requires the Host it would become
	}
	if !validAuthority(authority) {
		return false, errAuthority
	}
	h.Authority = bytesOf(authority)
	switch {
	case endStream && cl > 0:
		return true, errBodyLength // the stream ended with its head
	case endStream:
		h.Body = msg.BodyNone
	case cl > 0:
		h.Body, h.ContentLength = msg.BodyLength, cl
	case cl == 0:
		switch method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			h.Body, h.ContentLength = msg.BodyLength, 0
		default:
			h.Body = msg.BodyNone
		}
	default:
		h.Body = msg.BodyChunked
	}
	if o.MaxBody > 0 && h.Body == msg.BodyLength && h.ContentLength > o.MaxBody {
		return false, errBodyTooLarge
	}
	return false, nil
}

// CheckTrailer reports whether a trailer field may be passed on.
func CheckTrailer(name, value string) bool {
	return validName(name) && checkValue(value) == nil
}

// validLowerName accepts a field name as HTTP/2 carries it: a token in
// lower case.
func validLowerName(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return validName(name)
}
