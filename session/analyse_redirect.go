package session

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// HTTPRedirect is a route's answer: a redirect to the request's own URL
// with Scheme, Host and the path replaced where given. The query is always
// kept. When Scheme changes the request's scheme and Host is empty, the
// request's host is kept without its port (the old port belongs to the old
// scheme).
type HTTPRedirect struct {
	// Status is 301, 302 (default), 303, 307 or 308.
	Status int
	// Scheme is "https" or "http"; empty keeps the request's.
	Scheme string
	// Host replaces the request's authority (host[:port]); empty keeps it.
	Host string
	// Path replaces the whole path; empty keeps it (or see Prefix).
	Path string
	// Prefix replaces the part of the path that the route's path prefix
	// matched (the first of HTTPMatch.PathPrefixes that matches), keeping
	// the rest: prefix "/news/" on a route matching "/blog/" sends
	// "/blog/2024/a?x" to "/news/2024/a?x". When Prefix ends with "/" and
	// the rest starts with one, the two become one, so "/" strips the
	// matched prefix. Only on a route with PathPrefixes; never with Path.
	Prefix string
}

// redirect is an HTTPRedirect prepared for answering: read-only, shared by
// every session of a frontend.
type redirect struct {
	status                     int
	scheme, host, path, prefix []byte
}

var redirectStatuses = [...]int{301, 302, 303, 307, 308}

// newRedirect checks and prepares r; pathPrefix says whether its route
// matches on path prefixes, which Prefix needs.
func newRedirect(r HTTPRedirect, pathPrefix bool) (*redirect, error) {
	out := &redirect{status: r.Status}
	if out.status == 0 {
		out.status = 302
	}
	switch {
	case !slices.Contains(redirectStatuses[:], out.status):
		return nil, fmt.Errorf("redirect status %d: use 301, 302, 303, 307 or 308", r.Status)
	case r.Scheme != "" && r.Scheme != "http" && r.Scheme != "https":
		return nil, fmt.Errorf("redirect scheme %q: use http or https", r.Scheme)
	case r.Path != "" && r.Prefix != "":
		return nil, errors.New("redirect: path and prefix are mutually exclusive")
	case r.Prefix != "" && !pathPrefix:
		return nil, errors.New("redirect: prefix replaces the matched path prefix, and the route has none")
	}
	for _, v := range [...]struct{ what, s string }{{"host", r.Host}, {"path", r.Path}, {"prefix", r.Prefix}} {
		if strings.ContainsFunc(v.s, func(c rune) bool { return c <= ' ' || c == 0x7f }) {
			return nil, fmt.Errorf("redirect %s %q: holds a space or a control character", v.what, v.s)
		}
	}
	if r.Scheme != "" {
		out.scheme = []byte(r.Scheme)
	}
	if r.Host != "" {
		out.host = []byte(r.Host)
	}
	if r.Path != "" {
		out.path = []byte(r.Path)
	}
	if r.Prefix != "" {
		out.prefix = []byte(r.Prefix)
	}
	return out, nil
}

var nameLocation = []byte("Location")

// answerRedirect prepares the redirect r for the request that m, its
// route's matcher, selected, and answers it.
func (s *httpSession) answerRedirect(r *redirect, m *matcher) result {
	h := s.req
	scheme := s.scheme()
	host := h.Authority
	if r.scheme != nil {
		if !bytes.Equal(r.scheme, scheme) {
			host = hostOf(host)
		}
		scheme = r.scheme
	}
	if r.host != nil {
		host = r.host
	}
	path, query := h.Path, []byte(nil)
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i:]
	}
	var rest []byte
	switch {
	case r.path != nil:
		path = r.path
	case r.prefix != nil:
		rest = path[min(max(m.prefixLen(h.Path), 0), len(path)):]
		path = r.prefix
		if path[len(path)-1] == '/' && len(rest) > 0 && rest[0] == '/' {
			rest = rest[1:]
		}
	}
	start := len(s.arena)
	s.arena = append(s.arena, scheme...)
	s.arena = append(s.arena, "://"...)
	s.arena = append(s.arena, host...)
	s.arena = append(s.arena, path...)
	s.arena = append(s.arena, rest...)
	s.arena = append(s.arena, query...)
	loc := s.arena[start:len(s.arena):len(s.arena)]
	s.localResponse(r.status, nil)
	s.local.Add(nameLocation, loc)
	return answer
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
