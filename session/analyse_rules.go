package session

import (
	"errors"

	"github.com/strata-proxy/strata/layers"
)

// HTTPRule is an L7 access rule: the first rule whose Match holds decides;
// a request no rule matches is allowed.
type HTTPRule struct {
	Match HTTPMatch
	// Deny refuses the request; false allows it (and stops the rules).
	Deny bool
	// Status answers a denied request; default 403.
	Status int
}

type rule struct {
	m      matcher
	deny   bool
	status int
}

func newRules(rs []HTTPRule) []rule {
	out := make([]rule, len(rs))
	for i, r := range rs {
		out[i] = rule{m: newMatcher(r.Match), deny: r.Deny, status: r.Status}
		if out[i].status == 0 {
			out[i].status = 403
		}
	}
	return out
}

// errDenied is the termination of a request refused by a rule.
var errDenied = &layers.StageError{Side: layers.SideProxy, Stage: "http rules", Err: errors.New("denied")}

// analyseRules applies the L7 rules.
func analyseRules(s *httpSession) result {
	rules := s.c.f.rules
	for i := range rules {
		r := &rules[i]
		if r.m.match(s) {
			if r.deny {
				return abortWith(r.status, errDenied)
			}
			return cont
		}
	}
	return cont
}
