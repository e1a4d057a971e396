package session

import "fmt"

// HTTPRoute is one entry of a frontend's ordered route list: the requests
// its Match selects go to Backend, or are answered with Redirect. Exactly
// one of the two is set. Routes are tried in order; the first match wins,
// so a redirect placed after a backend route only answers the requests
// that the earlier routes did not take.
type HTTPRoute struct {
	Match    HTTPMatch
	Backend  *Backend
	Redirect *HTTPRedirect
}

type httpRoute struct {
	m        matcher
	backend  *Backend
	redirect *redirect // nil for a backend route
}

func newHTTPRoutes(rs []HTTPRoute) ([]httpRoute, error) {
	out := make([]httpRoute, len(rs))
	for i, r := range rs {
		out[i] = httpRoute{m: newMatcher(r.Match), backend: r.Backend}
		switch {
		case r.Backend != nil && r.Redirect != nil:
			return nil, fmt.Errorf("route %d: has both a backend and a redirect; give one", i)
		case r.Backend == nil && r.Redirect == nil:
			return nil, fmt.Errorf("route %d: has neither a backend nor a redirect; give one", i)
		case r.Redirect != nil:
			rd, err := newRedirect(*r.Redirect, len(r.Match.PathPrefixes) > 0)
			if err != nil {
				return nil, fmt.Errorf("route %d: %w", i, err)
			}
			out[i].redirect = rd
		}
	}
	return out, nil
}

// analyseRoute runs the route list: the first matching route either
// chooses the backend or answers its redirect; with no match the default
// backend is chosen, else 503 ("proxy route: no route").
func analyseRoute(s *httpSession) result {
	routes := s.c.f.routes
	for i := range routes {
		r := &routes[i]
		if !r.m.match(s) {
			continue
		}
		if r.redirect != nil {
			return s.answerRedirect(r.redirect, &r.m)
		}
		s.backend = r.backend
		return cont
	}
	if s.c.f.o.DefaultBackend != nil {
		s.backend = s.c.f.o.DefaultBackend
		return cont
	}
	return abortWith(503, errNoRoute)
}
