package session

// HTTPRoute sends the requests its Match selects to Backend. Routes are
// tried in order; the first match wins.
type HTTPRoute struct {
	Match   HTTPMatch
	Backend *Backend
}

type httpRoute struct {
	m       matcher
	backend *Backend
}

func newHTTPRoutes(rs []HTTPRoute) []httpRoute {
	out := make([]httpRoute, len(rs))
	for i, r := range rs {
		out[i] = httpRoute{m: newMatcher(r.Match), backend: r.Backend}
	}
	return out
}

// analyseRoute chooses the backend: the first matching route, else the
// default backend, else 503 ("proxy route: no route").
func analyseRoute(s *httpSession) result {
	routes := s.c.f.routes
	for i := range routes {
		if routes[i].m.match(s) {
			s.backend = routes[i].backend
			return cont
		}
	}
	if s.c.f.o.DefaultBackend != nil {
		s.backend = s.c.f.o.DefaultBackend
		return cont
	}
	return abortWith(503, errNoRoute)
}
