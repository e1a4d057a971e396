package session

import (
	"bytes"
	"strconv"
)

// HTTPRedirect answers the requests its Match selects with a redirect to
// the same URL with Scheme, Host and Path replaced where given (the query
// is kept).
type HTTPRedirect struct {
	Match HTTPMatch
	// Status is 301, 302 (default), 303, 307 or 308.
	Status int
	// Scheme is "https" or "http"; empty keeps the request's.
	Scheme string
	// Host replaces the request's authority (host[:port]); empty keeps it.
	Host string
	// Path replaces the request's path (the query is kept); empty keeps it.
	Path string
}

type redirect struct {
	m                  matcher
	status             int
	scheme, host, path []byte
}

func newRedirects(rs []HTTPRedirect) []redirect {
	out := make([]redirect, len(rs))
	for i, r := range rs {
		out[i] = redirect{m: newMatcher(r.Match), status: r.Status}
		if out[i].status == 0 {
			out[i].status = 302
		}
		if r.Scheme != "" {
			out[i].scheme = []byte(r.Scheme)
		}
		if r.Host != "" {
			out[i].host = []byte(r.Host)
		}
		if r.Path != "" {
			out[i].path = []byte(r.Path)
		}
	}
	return out
}

var nameLocation = []byte("Location")

// analyseRedirect answers the first matching redirect.
func analyseRedirect(s *httpSession) result {
	rs := s.c.f.redirects
	for i := range rs {
		r := &rs[i]
		if !r.m.match(s) {
			continue
		}
		h := s.req
		scheme := r.scheme
		if scheme == nil {
			scheme = s.scheme()
		}
		host := r.host
		if host == nil {
			host = h.Authority
		}
		path, query := h.Path, []byte(nil)
		if i := bytes.IndexByte(path, '?'); i >= 0 {
			path, query = path[:i], path[i:]
		}
		if r.path != nil {
			path = r.path
		}
		start := len(s.arena)
		s.arena = append(s.arena, scheme...)
		s.arena = append(s.arena, "://"...)
		s.arena = append(s.arena, host...)
		s.arena = append(s.arena, path...)
		s.arena = append(s.arena, query...)
		loc := s.arena[start:len(s.arena):len(s.arena)]
		s.localResponse(r.status, nil)
		s.local.Add(nameLocation, loc)
		return answer
	}
	return cont
}

// statusText returns the reason phrase of the statuses strata answers
// itself.
func statusText(code int) string {
	switch code {
	case 100:
		return "Continue"
	case 200:
		return "OK"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Found"
	case 303:
		return "See Other"
	case 307:
		return "Temporary Redirect"
	case 308:
		return "Permanent Redirect"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 413:
		return "Content Too Large"
	case 414:
		return "URI Too Long"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Status " + strconv.Itoa(code)
}
