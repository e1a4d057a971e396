package session

import (
	"fmt"

	"github.com/strata-proxy/strata/layers/msg"
)

// HeaderOp is what a HeaderRule does.
type HeaderOp uint8

// The header operations.
const (
	// HeaderSet replaces every field of the name with one (adds it when
	// absent).
	HeaderSet HeaderOp = iota + 1
	// HeaderAdd appends a field, keeping those already there.
	HeaderAdd
	// HeaderDel removes every field of the name.
	HeaderDel
)

// HeaderRule edits a request or response head. Rules run in order.
type HeaderRule struct {
	Op    HeaderOp
	Name  string
	Value string // for HeaderSet and HeaderAdd
}

type headerRule struct {
	op          HeaderOp
	name, value []byte
}

// newHeaderRules checks and prepares rules: a name must be a token and a
// value must hold no CR, LF or NUL, or the forwarded head would be
// malformed.
func newHeaderRules(rs []HeaderRule) ([]headerRule, error) {
	out := make([]headerRule, len(rs))
	for i, r := range rs {
		if r.Op < HeaderSet || r.Op > HeaderDel {
			return nil, fmt.Errorf("header rule %d (%s): unknown operation %d", i, r.Name, r.Op)
		}
		if !validToken(r.Name) {
			return nil, fmt.Errorf("header rule %d: %q is not a valid field name", i, r.Name)
		}
		for _, c := range []byte(r.Value) {
			if c == '\r' || c == '\n' || c == 0 {
				return nil, fmt.Errorf("header rule %d (%s): the value holds a CR, LF or NUL byte", i, r.Name)
			}
		}
		out[i] = headerRule{op: r.Op, name: []byte(r.Name), value: []byte(r.Value)}
	}
	return out, nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' ||
			c == '+' || c == '-' || c == '.' || c == '^' || c == '_' || c == '`' || c == '|' || c == '~':
		default:
			return false
		}
	}
	return true
}

func applyHeaderRules(h *msg.Head, rules []headerRule) {
	for i := range rules {
		r := &rules[i]
		switch r.op {
		case HeaderSet:
			h.Set(r.name, r.value)
		case HeaderAdd:
			h.Add(r.name, r.value)
		case HeaderDel:
			delField(&h.Fields, r.name)
		}
	}
}

// delField removes every field named name (ASCII case-insensitive).
func delField(fs *msg.Fields, name []byte) {
	s := *fs
	j := 0
	for i := range s {
		if equalFold(s[i].Name, name) {
			continue
		}
		s[j] = s[i]
		j++
	}
	clear(s[j:])
	*fs = s[:j]
}

func equalFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// analyseRequestHeaders applies the request header rules.
func analyseRequestHeaders(s *httpSession) result {
	applyHeaderRules(s.req, s.c.f.reqHeaders)
	return cont
}

// analyseResponseHeaders applies the response header rules.
func analyseResponseHeaders(s *httpSession) result {
	applyHeaderRules(s.resp, s.c.f.respHeaders)
	return cont
}
