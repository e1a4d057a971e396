package config

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"

	"go.yaml.in/yaml/v4"
)

// The sections of a mode http frontend.
var (
	httpLimitsKeys  = []string{"max_header_bytes", "max_header_count", "max_uri_bytes", "max_body_bytes", "max_concurrent_streams"}
	httpRuleKeys    = []string{"action", "src", "method", "host", "path_prefix", "header", "status"}
	headerMatchKeys = []string{"name", "value"}
	headersKeys     = []string{"request", "response"}
	headerRulesKeys = []string{"delete", "set", "add"}
	forwardedKeys   = []string{"trusted", "x_forwarded", "forwarded"}
	requestIDKeys   = []string{"header", "generate"}
	redirectKeys    = []string{"status", "scheme", "host", "path", "prefix"}
)

// Built-in defaults and bounds of the HTTP sections. The limits are
// HAProxy's: a head fits the 16 KiB buffer, 101 fields (tune.http.maxhdr),
// an 8 KiB target, any body size.
const (
	defaultMaxHeaderBytes  = 16 << 10
	defaultMaxHeaderCount  = 101
	maxHeaderCount         = math.MaxInt16
	defaultMaxURIBytes     = 8 << 10
	minURIBytes            = 64
	defaultDenyStatus      = 403
	defaultRedirectStatus  = 302
	defaultRequestIDHeader = "X-Request-ID"
	maxErrorFile           = 64 << 10
)

// redirectStatuses are the statuses a redirect may use.
var redirectStatuses = []int{301, 302, 303, 307, 308}

// unwritableFields are the fields header rules may not set or add: the
// framing fields, which strata writes itself from the message's framing,
// and the hop-by-hop fields, which it removes; a rule writing them would
// desynchronise strata and the server on where a message ends.
var unwritableFields = []string{"Connection", "Content-Length", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade"}

// standardMethods are compared with a method written in lower case, which
// is almost certainly a mistake: methods are case-sensitive.
var standardMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

// defaultHTTPLimits are the built-in limits, kept within one buffer.
func defaultHTTPLimits(g *Global) HTTPLimits {
	head := min(defaultMaxHeaderBytes, int(g.BufferSize))
	return HTTPLimits{
		MaxHeaderBytes: head,
		MaxHeaderCount: defaultMaxHeaderCount,
		MaxURIBytes:    min(defaultMaxURIBytes, head),
	}
}

// needHTTP records an error at key when fe is not in mode http.
func (p *parser) needHTTP(key *yaml.Node, fe *Frontend, what string) {
	if fe.Mode != ModeHTTP {
		p.errorf(key, "frontend %s: %s needs mode: http (mode is %s)", fe.Name, what, fe.Mode)
	}
}

// httpLimits overrides the keys set in n on a copy of base.
func (p *parser) httpLimits(n *yaml.Node, base HTTPLimits, g *Global) HTTPLimits {
	l := base
	f := p.mapping(n, "http_limits", httpLimitsKeys)
	if v, ok := f["max_header_bytes"]; ok {
		if s, ok := p.size(v.val, "http_limits.max_header_bytes", 1<<10, 1<<20); ok {
			if s > g.BufferSize {
				p.errorf(deref(v.val), "http_limits.max_header_bytes: %s is more than global.buffer_size (%s): a request head must fit in one buffer",
					formatSize(s), formatSize(g.BufferSize))
			} else {
				l.MaxHeaderBytes = int(s)
			}
		}
	}
	if v, ok := f["max_header_count"]; ok {
		if i, ok := p.integer(v.val, "http_limits.max_header_count", 1, maxHeaderCount); ok {
			l.MaxHeaderCount = i
		}
	}
	if v, ok := f["max_uri_bytes"]; ok {
		if s, ok := p.size(v.val, "http_limits.max_uri_bytes", minURIBytes, 1<<20); ok {
			l.MaxURIBytes = int(s)
		}
	}
	if v, ok := f["max_concurrent_streams"]; ok {
		if i, ok := p.integer(v.val, "http_limits.max_concurrent_streams", 1, 1<<16); ok {
			l.MaxConcurrentStreams = i
		}
	}
	if v, ok := f["max_body_bytes"]; ok {
		if s, ok := p.size(v.val, "http_limits.max_body_bytes", 0, math.MaxInt64); ok {
			l.MaxBodyBytes = s
		}
	}
	if l.MaxURIBytes > l.MaxHeaderBytes {
		// base is consistent, so one of the two was written here.
		uri, head := formatSize(int64(l.MaxURIBytes)), formatSize(int64(l.MaxHeaderBytes))
		if v, ok := f["max_uri_bytes"]; ok {
			p.errorf(deref(v.val), "http_limits: max_uri_bytes (%s) is more than max_header_bytes (%s): the request line is part of the head", uri, head)
		} else {
			p.errorf(deref(f.val("max_header_bytes")), "http_limits.max_header_bytes: %s is less than max_uri_bytes (%s, inherited or the default); lower max_uri_bytes too", head, uri)
		}
		l.MaxURIBytes = l.MaxHeaderBytes
	}
	return l
}

// httpRules reads the list of L7 allow/deny rules.
func (p *parser) httpRules(n *yaml.Node) []HTTPRule {
	var out []HTTPRule
	for i, item := range p.seq(n, "http_rules", false) {
		what := fmt.Sprintf("http_rules[%d]", i)
		r := HTTPRule{Pos: pos(deref(item))}
		f := p.mapping(item, what, httpRuleKeys)
		if f == nil {
			continue
		}
		if v, ok := f["action"]; ok {
			if s, ok := p.enum(v.val, what+".action", "allow", "deny"); ok {
				r.Action = RuleAction(s)
			}
		} else {
			p.errorf(deref(item), "%s: action is required (allow or deny)", what)
		}
		r.Src = p.prefixes(f.val("src"), what+".src")
		r.Method = p.methods(p.seq(f.val("method"), what+".method", true), what+".method")
		r.Host = p.hostPatterns(p.seq(f.val("host"), what+".host", true), what+".host")
		r.PathPrefix = p.pathPrefixes(p.seq(f.val("path_prefix"), what+".path_prefix", true), what+".path_prefix")
		if v, ok := f["header"]; ok {
			r.Header = p.headerMatch(v.val, what+".header")
		}
		if v, ok := f["status"]; ok {
			if r.Action == RuleAllow {
				p.errorf(v.key, "%s: status applies to deny only", what)
			} else if s, ok := p.integer(v.val, what+".status", 400, 599); ok {
				r.Status = s
			}
		} else if r.Action == RuleDeny {
			r.Status = defaultDenyStatus
		}
		out = append(out, r)
	}
	return out
}

// prefixes reads a CIDR or a list of them; a bare IP is a /32 or /128.
func (p *parser) prefixes(n *yaml.Node, what string) []netip.Prefix {
	var out []netip.Prefix
	for _, item := range p.seq(n, what, true) {
		s, ok := p.str(item, what)
		if !ok {
			continue
		}
		pfx, err := parsePrefix(s)
		if err != nil {
			p.errorf(deref(item), "%s: %v", what, err)
			continue
		}
		out = append(out, pfx)
	}
	return out
}

// methods reads request methods: tokens, case-sensitive.
func (p *parser) methods(items []*yaml.Node, what string) []string {
	var out []string
	for _, item := range items {
		s, ok := p.str(item, what)
		if !ok {
			continue
		}
		if !validToken(s) {
			p.errorf(deref(item), "%s: %q is not a valid method", what, s)
			continue
		}
		if up := strings.ToUpper(s); up != s && slices.Contains(standardMethods, up) {
			p.errorf(deref(item), "%s: methods are case-sensitive; write %s, not %s", what, up, s)
			continue
		}
		out = append(out, s)
	}
	return out
}

// hostPatterns reads request host patterns (see Route.Host).
func (p *parser) hostPatterns(items []*yaml.Node, what string) []string {
	var out []string
	for _, item := range items {
		s, ok := p.str(item, what)
		if !ok {
			continue
		}
		h, err := parseHostPattern(s)
		if err != nil {
			p.errorf(deref(item), "%s: %v", what, err)
			continue
		}
		out = append(out, h)
	}
	return out
}

// pathPrefixes reads path prefixes (see Route.PathPrefix).
func (p *parser) pathPrefixes(items []*yaml.Node, what string) []string {
	var out []string
	for _, item := range items {
		s, ok := p.str(item, what)
		if !ok {
			continue
		}
		if problem := pathProblem(s, false); problem != "" {
			p.errorf(deref(item), "%s: %q %s", what, s, problem)
			continue
		}
		out = append(out, s)
	}
	return out
}

// headerMatch reads {name, value}; value is optional.
func (p *parser) headerMatch(n *yaml.Node, what string) *HeaderMatch {
	f := p.mapping(n, what, headerMatchKeys)
	if f == nil {
		return nil
	}
	h := &HeaderMatch{}
	if v, ok := f["name"]; ok {
		h.Name, _ = p.headerName(v.val, what+".name")
	} else {
		p.errorf(deref(n), "%s: name is required, as in {name: X-Canary, value: \"1\"}", what)
	}
	if v, ok := f["value"]; ok {
		h.Value, h.HasValue = p.headerValue(v.val, what+".value")
	}
	return h
}

// headerName reads a header field name: a token.
func (p *parser) headerName(n *yaml.Node, what string) (string, bool) {
	s, ok := p.str(n, what)
	if !ok {
		return "", false
	}
	if !validToken(s) {
		p.errorf(deref(n), "%s: %q is not a valid header field name; use letters, digits and !#$%%&'*+-.^_`|~", what, s)
		return "", false
	}
	return s, true
}

// headerValue reads a header field value that is safe to send.
func (p *parser) headerValue(n *yaml.Node, what string) (string, bool) {
	s, ok := p.str(n, what)
	if !ok {
		return "", false
	}
	if problem := fieldValueProblem(s); problem != "" {
		p.errorf(deref(n), "%s: value %q %s", what, s, problem)
		return "", false
	}
	return s, true
}

// writable records an error at n unless header rules may write the field
// name.
func (p *parser) writable(n *yaml.Node, name, what string) bool {
	if i := slices.IndexFunc(unwritableFields, func(u string) bool { return strings.EqualFold(u, name) }); i >= 0 {
		p.errorf(n, "%s: %s cannot be written: strata writes the framing and hop-by-hop fields itself", what, unwritableFields[i])
		return false
	}
	return true
}

func (p *parser) headers(n *yaml.Node) Headers {
	f := p.mapping(n, "headers", headersKeys)
	return Headers{
		Request:  p.headerRules(f.val("request"), "headers.request", true),
		Response: p.headerRules(f.val("response"), "headers.response", false),
	}
}

// headerRules reads {delete: [NAME…], set: {NAME: VALUE}, add: {NAME: VALUE}}.
func (p *parser) headerRules(n *yaml.Node, what string, request bool) HeaderRules {
	var r HeaderRules
	f := p.mapping(n, what, headerRulesKeys)
	deleted := map[string]bool{} // lower-case names
	for _, item := range p.seq(f.val("delete"), what+".delete", true) {
		name, ok := p.headerName(item, what+".delete")
		if !ok {
			continue
		}
		if request && strings.EqualFold(name, "Host") {
			p.errorf(deref(item), "%s.delete: Host cannot be deleted: an HTTP/1.1 request must have one; set it instead", what)
			continue
		}
		deleted[strings.ToLower(name)] = true
		r.Delete = append(r.Delete, name)
	}
	r.Set = p.headerFields(f.val("set"), what+".set", request, deleted)
	r.Add = p.headerFields(f.val("add"), what+".add", request, nil)
	return r
}

// headerFields reads a mapping of field names to values, in file order.
// deleted is nil for add; for set it holds the names deleted alongside,
// and each name may be set once.
func (p *parser) headerFields(n *yaml.Node, what string, request bool, deleted map[string]bool) []HeaderField {
	m := p.mapping(n, what, nil)
	es := make([]entry, 0, len(m))
	for _, e := range m {
		es = append(es, e)
	}
	sortEntries(es)
	set := deleted != nil
	seen := map[string]*yaml.Node{}
	var out []HeaderField
	for _, e := range es {
		name := e.key.Value
		if !validToken(name) {
			p.errorf(e.key, "%s: %q is not a valid header field name; use letters, digits and !#$%%&'*+-.^_`|~", what, name)
			continue
		}
		if !p.writable(e.key, name, what) {
			continue
		}
		lower := strings.ToLower(name)
		switch {
		case set && seen[lower] != nil:
			first := seen[lower]
			p.errorf(e.key, "%s: %s is set twice (first at %d:%d)", what, name, first.Line, first.Column)
			continue
		case set && deleted[lower]:
			p.errorf(e.key, "%s: %s is also deleted; set alone replaces it", what, name)
			continue
		case !set && request && lower == "host":
			p.errorf(e.key, "%s: a request has one Host; set it instead", what)
			continue
		}
		seen[lower] = e.key
		if v, ok := p.headerValue(e.val, what+"."+name); ok {
			out = append(out, HeaderField{Name: name, Value: v})
		}
	}
	return out
}

func (p *parser) forwarded(n *yaml.Node) Forwarded {
	fw := Forwarded{XForwarded: true}
	f := p.mapping(n, "forwarded", forwardedKeys)
	fw.Trusted = p.prefixes(f.val("trusted"), "forwarded.trusted")
	if v, ok := f["x_forwarded"]; ok {
		if b, ok := p.boolean(v.val, "forwarded.x_forwarded"); ok {
			fw.XForwarded = b
		}
	}
	if v, ok := f["forwarded"]; ok {
		fw.Forwarded, _ = p.boolean(v.val, "forwarded.forwarded")
	}
	return fw
}

func (p *parser) requestID(n *yaml.Node) RequestID {
	r := RequestID{Header: defaultRequestIDHeader, Generate: true}
	f := p.mapping(n, "request_id", requestIDKeys)
	if v, ok := f["header"]; ok {
		if s, ok := p.headerName(v.val, "request_id.header"); ok && p.writable(deref(v.val), s, "request_id.header") {
			r.Header = s
		}
	}
	if v, ok := f["generate"]; ok {
		if b, ok := p.boolean(v.val, "request_id.generate"); ok {
			r.Generate = b
		}
	}
	return r
}

// errorFiles reads the mapping of statuses to error body files.
func (p *parser) errorFiles(n *yaml.Node) map[int]string {
	m := p.mapping(n, "errors", nil)
	es := make([]entry, 0, len(m))
	for _, e := range m {
		es = append(es, e)
	}
	sortEntries(es)
	out := map[int]string{}
	seen := map[int]*yaml.Node{}
	for _, e := range es {
		status, ok := p.integer(e.key, "errors status", 400, 599)
		if !ok {
			continue
		}
		if first := seen[status]; first != nil {
			p.errorf(e.key, "errors: status %d is given twice (first at %d:%d)", status, first.Line, first.Column)
			continue
		}
		seen[status] = e.key
		path, name, ok := p.path(e.val, fmt.Sprintf("errors.%d", status))
		if !ok {
			continue
		}
		if p.checkErrorFile(deref(e.val), path, name) {
			out[status] = path
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// redirect reads a route's redirect. pathPrefix says whether the route
// matches on path_prefix, which prefix replaces.
func (p *parser) redirect(e entry, what string, pathPrefix bool) *Redirect {
	r := &Redirect{Pos: pos(e.key), Status: defaultRedirectStatus}
	f := p.mapping(e.val, what, redirectKeys)
	if f == nil {
		return r
	}
	if v, ok := f["status"]; ok {
		if s, ok := p.integer(v.val, what+".status", 300, 399); ok {
			if slices.Contains(redirectStatuses, s) {
				r.Status = s
			} else {
				p.errorf(deref(v.val), "%s.status: %d is not a redirect status; valid values: 301, 302, 303, 307, 308", what, s)
			}
		}
	}
	if v, ok := f["scheme"]; ok {
		r.Scheme, _ = p.enum(v.val, what+".scheme", "http", "https")
	}
	if v, ok := f["host"]; ok {
		if s, ok := p.str(v.val, what+".host"); ok {
			if _, err := parseAuthority(s); err != nil {
				p.errorf(deref(v.val), "%s.host: %v", what, err)
			} else {
				r.Host = s
			}
		}
	}
	for _, key := range []string{"path", "prefix"} {
		v, ok := f[key]
		if !ok {
			continue
		}
		s, ok := p.str(v.val, what+"."+key)
		if !ok {
			continue
		}
		if problem := pathProblem(s, false); problem != "" {
			p.errorf(deref(v.val), "%s.%s: %q %s", what, key, s, problem)
			continue
		}
		if key == "path" {
			r.Path = s
		} else {
			r.Prefix = s
		}
	}
	if v, ok := f["prefix"]; ok {
		switch {
		case f.has("path"):
			p.errorf(v.key, "%s: path and prefix are mutually exclusive: path replaces the whole path, prefix the matched path_prefix", what)
		case !pathPrefix:
			p.errorf(v.key, "%s: prefix replaces the matched path_prefix, and this route has none", what)
		}
	}
	if !f.has("scheme") && !f.has("host") && !f.has("path") && !f.has("prefix") {
		p.errorf(e.key, "%s: changes nothing; give at least one of scheme, host, path or prefix", what)
	}
	return r
}
