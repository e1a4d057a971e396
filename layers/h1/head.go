package h1

import (
	"bytes"

	"github.com/strata-proxy/strata/layers/msg"
)

// Static slices the parser stores in a Head when a value is not in the
// input as is. Read-only.
var (
	schemeHTTP  = []byte("http")
	schemeHTTPS = []byte("https")
	slash       = []byte("/")
	hostName    = []byte("Host")
)

// ParseRequestHead parses the request head at the start of b into h (after
// resetting it) and returns its length: the body, or the next pipelined
// request, starts at b[n:]. It returns ErrIncomplete when b holds a valid
// beginning of a head but not its end, and an *Error when the head is
// invalid or over lim (zero fields of lim mean DefaultLimits).
//
// h's slices point into b: they are valid while b's memory is, and b must
// not be modified while h is used. The parser allocates only when h.Fields
// has to grow.
//
// Empty lines (CRLF) before the request line are skipped (RFC 9112 §2.2).
// The framing fields are interpreted into h.Body and h.ContentLength and
// removed from h.Fields. For an absolute-form target (RFC 9112 §3.2.2) the
// authority comes from the target, and the Host field is replaced by it
// (added when an HTTP/1.0 request had none), so that no later hop can route
// by a different one; CONNECT's authority-form is handled the same way.
func ParseRequestHead(b []byte, h *msg.Head, lim Limits) (n int, err error) {
	h.Reset()
	lim = lim.withDefaults()
	truncated := false
	if len(b) > lim.MaxHeadBytes {
		b, truncated = b[:lim.MaxHeadBytes], true
	}
	pos := 0
	for len(b)-pos >= 2 && b[pos] == '\r' && b[pos+1] == '\n' {
		pos += 2
	}
	end, err := parseRequestLine(b, pos, h, lim)
	if err == nil {
		end, err = parseFields(b, end, &h.Fields, lim.MaxFields)
	}
	if err == ErrIncomplete && truncated {
		err = errHeadTooLarge
	}
	if err != nil {
		h.Reset()
		return 0, err
	}
	if err := finishRequest(h, lim); err != nil {
		h.Reset()
		return 0, err
	}
	return end, nil
}

// parseRequestLine parses "method SP request-target SP HTTP-version CRLF"
// at b[pos:], with exactly one SP between the parts.
func parseRequestLine(b []byte, pos int, h *msg.Head, lim Limits) (int, error) {
	rest := b[pos:]
	eol := bytes.IndexByte(rest, '\n')
	if eol < 0 {
		// Refuse a target too long before the line ends: the client may
		// never send the rest.
		if sp := bytes.IndexByte(rest, ' '); sp >= 0 {
			t := rest[sp+1:]
			if sp2 := bytes.IndexByte(t, ' '); sp2 >= 0 {
				t = t[:sp2]
			}
			if len(t) > lim.MaxURI {
				return 0, errURITooLong
			}
		}
		if cr := bytes.IndexByte(rest, '\r'); cr >= 0 && cr < len(rest)-1 {
			return 0, errBareCR // no LF follows it
		}
		return 0, ErrIncomplete
	}
	line := rest[:eol]
	if len(line) == 0 || line[len(line)-1] != '\r' {
		return 0, errBareLF
	}
	line = line[:len(line)-1]

	i := 0
	for i < len(line) && isTchar(line[i]) {
		i++
	}
	if i == 0 || i == len(line) || line[i] != ' ' {
		if i < len(line) && line[i] == '\r' {
			return 0, errBareCR
		}
		return 0, errMethod
	}
	h.Method = line[:i]
	line = line[i+1:]

	i = 0
	for i < len(line) && class[line[i]]&cTarget != 0 {
		i++
	}
	if i > lim.MaxURI {
		return 0, errURITooLong
	}
	if i == len(line) {
		return 0, errRequestLine // no version: HTTP/0.9 or a target with no SP after it
	}
	if line[i] != ' ' {
		if line[i] == '\r' {
			return 0, errBareCR
		}
		return 0, errTarget
	}
	if i == 0 {
		return 0, errRequestLine // two SPs
	}
	target := line[:i]
	major, minor, err := parseVersion(line[i+1:])
	if err != nil {
		return 0, err
	}
	h.Major, h.Minor = major, minor
	if err := setTarget(h, target); err != nil {
		return 0, err
	}
	return pos + eol + 1, nil
}

// parseVersion accepts exactly "HTTP/1.1" and "HTTP/1.0"; another
// well-formed HTTP/DIGIT.DIGIT is 505, anything else 400.
func parseVersion(v []byte) (major, minor uint8, err error) {
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' ||
		v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		for _, c := range v {
			if c == '\r' {
				return 0, 0, errBareCR
			}
		}
		return 0, 0, errVersion
	}
	major, minor = v[5]-'0', v[7]-'0'
	if major != 1 || minor > 1 {
		return 0, 0, errVersionUnsupp
	}
	return major, minor, nil
}

// setTarget sorts the request target into its form (RFC 9112 §3.2).
func setTarget(h *msg.Head, t []byte) error {
	connect := string(h.Method) == "CONNECT"
	switch {
	case connect:
		// authority-form, and only it; a port is required.
		if !validAuthority(t, true) {
			return errTargetForm
		}
		h.Authority = t
	case t[0] == '/':
		h.Path = t
	case len(t) == 1 && t[0] == '*':
		if string(h.Method) != "OPTIONS" {
			return errTargetForm
		}
		h.Path = t
	default:
		return setAbsoluteForm(h, t)
	}
	return nil
}

// setAbsoluteForm parses "http://authority/path?query" (or https). User
// info, other schemes and an empty host are refused.
func setAbsoluteForm(h *msg.Head, t []byte) error {
	i := bytes.Index(t, []byte("://"))
	if i < 0 {
		return errTargetForm
	}
	switch {
	case msg.EqualFold(t[:i], "http"):
		h.Scheme = schemeHTTP
	case msg.EqualFold(t[:i], "https"):
		h.Scheme = schemeHTTPS
	default:
		return errAbsoluteForm
	}
	rest := t[i+3:]
	j := 0
	for j < len(rest) && rest[j] != '/' && rest[j] != '?' {
		j++
	}
	auth := rest[:j]
	if !validAuthority(auth, false) || len(auth) == 0 {
		return errAbsoluteForm
	}
	h.Authority = auth
	switch {
	case j == len(rest):
		h.Path = slash
	case rest[j] == '/':
		h.Path = rest[j:]
	default:
		return errAbsoluteForm // a query with no path: no origin-form to forward without copying
	}
	return nil
}

// validAuthority checks host [":" port] (RFC 3986 §3.2 without userinfo):
// a reg-name or IPv4 of unreserved, pct-encoded and sub-delims characters,
// or a bracketed IP literal; a port of digits, required when needPort.
// An empty authority is valid unless a port is needed.
// ValidAuthority reports whether a is a host[:port] the HTTP/1 stage
// accepts in a Host field (empty: the request names none). The stages that
// translate other versions into HTTP/1 check theirs with it.
func ValidAuthority(a []byte) bool { return validAuthority(a, false) }

func validAuthority(a []byte, needPort bool) bool {
	if len(a) == 0 {
		return !needPort
	}
	host, port := a, []byte(nil)
	if a[0] == '[' {
		k := bytes.IndexByte(a, ']')
		if k < 0 {
			return false
		}
		for _, c := range a[1:k] {
			if !(class[c]&cHex != 0 || c == ':' || c == '.') {
				return false
			}
		}
		host, port = a[:k+1], a[k+1:]
		if len(port) > 0 {
			if port[0] != ':' {
				return false
			}
			port = port[1:]
		} else {
			port = nil
		}
	} else {
		if k := bytes.LastIndexByte(a, ':'); k >= 0 {
			host, port = a[:k], a[k+1:]
		}
		for _, c := range host {
			if class[c]&cAuth == 0 || c == ':' || c == '[' || c == ']' {
				return false
			}
		}
	}
	if len(host) == 0 {
		return false
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	if needPort && len(port) == 0 {
		return false
	}
	return true
}

// finishRequest applies the field rules of a request head.
func finishRequest(h *msg.Head, lim Limits) error {
	f, err := scanFields(&h.Fields)
	if err != nil {
		return err
	}
	if f.hosts > 1 {
		return errManyHosts
	}
	if f.hosts == 0 && h.Major == 1 && h.Minor == 1 {
		return errNoHost
	}
	if f.hosts == 1 && !validAuthority(h.Fields[f.host].Value, false) {
		return errHost
	}
	switch {
	case h.Authority != nil: // absolute-form or CONNECT: the target wins
		if f.hosts == 1 {
			h.Fields[f.host].Value = h.Authority
		} else {
			h.Fields = append(h.Fields, msg.Field{Name: hostName, Value: h.Authority})
		}
	case f.hosts == 1:
		h.Authority = h.Fields[f.host].Value
	}
	if err := f.bodyOfRequest(h, lim); err != nil {
		return err
	}
	h.Close = f.connClose || (h.Minor == 0 && !f.connKeep)
	if f.connUpgrade && f.upgrade != nil && h.Minor == 1 {
		h.Upgrade = f.upgrade
	}
	h.Expect100 = f.expect100 && h.Minor == 1
	h.HasTrailers = f.trailer
	return nil
}

func (f *framing) bodyOfRequest(h *msg.Head, lim Limits) error {
	switch {
	case f.teSeen:
		if h.Minor == 0 {
			return errTE10
		}
		if !f.teLastChunk {
			return errTENotChunked
		}
		if f.teUnknown {
			return errUnknownCoding
		}
		h.Body = msg.BodyChunked
	case f.clSeen:
		if lim.MaxBody > 0 && f.cl > lim.MaxBody {
			return errBodyTooLarge
		}
		h.Body, h.ContentLength = msg.BodyLength, f.cl
	}
	return nil
}

// ParseResponseHead parses the response head at the start of b into h (after
// resetting it), as ParseRequestHead does for a request. forMethod is the
// method of the request it answers: a response to HEAD has no body, nor has
// a 2xx to CONNECT (the connection becomes a tunnel).
//
// Body rules (RFC 9112 §6.3): 1xx, 204 and 304 have no body; chunked wins,
// then Content-Length; a response with neither is delimited by close
// (msg.BodyUntilClose, Close set). A 1xx is returned like any head: the
// caller forwards it and parses the next one until the final status. The
// only transfer coding understood is chunked: any other is 501, since the
// proxy could not re-frame it. A length declared in a response to HEAD or
// in a 304 is kept in h.ContentLength for forwarding.
func ParseResponseHead(b []byte, h *msg.Head, forMethod []byte, lim Limits) (n int, err error) {
	h.Reset()
	lim = lim.withDefaults()
	truncated := false
	if len(b) > lim.MaxHeadBytes {
		b, truncated = b[:lim.MaxHeadBytes], true
	}
	end, err := parseStatusLine(b, h)
	if err == nil {
		end, err = parseFields(b, end, &h.Fields, lim.MaxFields)
	}
	if err == ErrIncomplete && truncated {
		err = errHeadTooLarge
	}
	if err == nil {
		err = finishResponse(h, forMethod, lim)
	}
	if err != nil {
		h.Reset()
		return 0, err
	}
	return end, nil
}

// parseStatusLine parses "HTTP-version SP 3DIGIT SP reason CRLF"; the SP
// and reason may be missing, as many servers send "HTTP/1.1 200\r\n".
func parseStatusLine(b []byte, h *msg.Head) (int, error) {
	eol := bytes.IndexByte(b, '\n')
	if eol < 0 {
		return 0, ErrIncomplete
	}
	line := b[:eol]
	if len(line) == 0 || line[len(line)-1] != '\r' {
		return 0, errBareLF
	}
	line = line[:len(line)-1]
	if len(line) < 12 || line[8] != ' ' {
		return 0, errStatusLine
	}
	major, minor, err := parseVersion(line[:8])
	if err != nil {
		return 0, err
	}
	s := line[9:12]
	if s[0] < '1' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' {
		return 0, errStatusLine
	}
	h.Major, h.Minor = major, minor
	h.Status = int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
	if len(line) > 12 {
		if line[12] != ' ' {
			return 0, errStatusLine
		}
		for _, c := range line[13:] {
			if class[c]&cValue == 0 {
				if c == '\r' {
					return 0, errBareCR
				}
				return 0, errStatusLine
			}
		}
		h.Reason = line[13:]
	}
	return eol + 1, nil
}

func finishResponse(h *msg.Head, forMethod []byte, lim Limits) error {
	f, err := scanFields(&h.Fields)
	if err != nil {
		return err
	}
	if f.teSeen {
		if h.Minor == 0 {
			return errTE10
		}
		if f.teUnknown {
			return errUnknownCoding
		}
	}
	h.Close = f.connClose || (h.Minor == 0 && !f.connKeep)
	if f.connUpgrade && f.upgrade != nil && h.Status == 101 {
		h.Upgrade = f.upgrade
	}
	h.HasTrailers = f.trailer
	switch {
	case h.Status < 200 || h.Status == 204:
		return nil // no body; a length here means nothing and is dropped
	case string(forMethod) == "CONNECT" && h.Status < 300:
		return nil // a tunnel follows
	case string(forMethod) == "HEAD" || h.Status == 304:
		if f.clSeen {
			h.ContentLength = f.cl
		}
		return nil
	case f.teSeen:
		h.Body = msg.BodyChunked
	case f.clSeen:
		if lim.MaxBody > 0 && f.cl > lim.MaxBody {
			return errBodyTooLarge
		}
		h.Body, h.ContentLength = msg.BodyLength, f.cl
	default:
		h.Body, h.Close = msg.BodyUntilClose, true
	}
	return nil
}
