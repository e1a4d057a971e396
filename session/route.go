package session

import (
	"strings"

	"github.com/strata-proxy/strata/layers"
)

// Route sends the sessions that match it to Backend. A session matches
// when its SNI matches one of SNI (if any are given) and its destination
// port is one of DstPorts (if any are given); a Route with neither matches
// every session.
type Route struct {
	// SNI lists server names, exact ("api.example.com") or with one
	// wildcard label ("*.example.com" matches "a.example.com", not
	// "example.com" nor "a.b.example.com"). Compared case-insensitively.
	SNI []string
	// DstPorts lists destination ports (in.Dest: the socket's, or what a
	// PROXY header said).
	DstPorts []uint16
	Backend  *Backend
}

// Router picks a session's Backend from an ordered list of Routes. It is
// built once per configuration and is read-only afterwards, so it is safe
// for concurrent use.
type Router struct {
	routes []route
	def    *Backend
}

// route is a Route with its names prepared for matching.
type route struct {
	exact    []string // lower case
	suffixes []string // lower case, from "*.example.com": ".example.com"
	ports    []uint16
	backend  *Backend
}

// NewRouter returns a Router trying routes in order, falling back to def
// (which may be nil: no route).
func NewRouter(routes []Route, def *Backend) *Router {
	r := &Router{def: def, routes: make([]route, 0, len(routes))}
	for _, rt := range routes {
		p := route{ports: rt.DstPorts, backend: rt.Backend}
		for _, name := range rt.SNI {
			name = strings.TrimSuffix(strings.ToLower(name), ".")
			if rest, ok := strings.CutPrefix(name, "*"); ok {
				p.suffixes = append(p.suffixes, rest)
			} else {
				p.exact = append(p.exact, name)
			}
		}
		r.routes = append(r.routes, p)
	}
	return r
}

// Pick returns the Backend of the first Route that in matches, the
// default Backend when none does, or nil when there is no route.
func (r *Router) Pick(in *layers.Initiator) *Backend {
	if r == nil {
		return nil
	}
	sni := strings.TrimSuffix(in.SNI, ".")
	port := in.Dest.Port()
	for i := range r.routes {
		rt := &r.routes[i]
		if rt.matchSNI(sni) && rt.matchPort(port) {
			return rt.backend
		}
	}
	return r.def
}

func (rt *route) matchSNI(sni string) bool {
	if len(rt.exact) == 0 && len(rt.suffixes) == 0 {
		return true
	}
	if sni == "" {
		return false
	}
	for _, name := range rt.exact {
		if strings.EqualFold(sni, name) {
			return true
		}
	}
	for _, suf := range rt.suffixes {
		// One label before the suffix, and only one.
		n := len(sni) - len(suf)
		if n > 0 && strings.EqualFold(sni[n:], suf) && strings.IndexByte(sni[:n], '.') < 0 {
			return true
		}
	}
	return false
}

func (rt *route) matchPort(port uint16) bool {
	if len(rt.ports) == 0 {
		return true
	}
	for _, p := range rt.ports {
		if p == port {
			return true
		}
	}
	return false
}
