package graph

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	"github.com/strata-proxy/strata/cmd/config"
	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/h1"
	"github.com/strata-proxy/strata/layers/h2"
	"github.com/strata-proxy/strata/layers/h3"
	"github.com/strata-proxy/strata/session"
)

// buildHTTPFrontend assembles a mode-http frontend: the front stages, then
// the HTTP/1 mux stage and the session's analysers configured from f.
func (g *Graph) buildHTTPFrontend(f *config.Frontend, stages []layers.Stage, l4 *layers.L4Rules, buffers *layers.BufferPool, logger, accessLog *slog.Logger) (*session.HTTPFrontend, error) {
	o := session.HTTPFrontendOptions{
		Name:      f.Name,
		Stages:    stages,
		L4:        l4,
		Limit:     layers.NewConnLimit(f.MaxConnections),
		Buffers:   buffers,
		AccessLog: accessLog,
		Logger:    logger.With("frontend", f.Name),
		Limits: h1.Limits{
			MaxHeadBytes: f.HTTPLimits.MaxHeaderBytes,
			MaxFields:    f.HTTPLimits.MaxHeaderCount,
			MaxURI:       f.HTTPLimits.MaxURIBytes,
			MaxBody:      f.HTTPLimits.MaxBodyBytes,
		},
		Timeouts: session.HTTPTimeouts{
			Handshake:   f.Timeouts.Handshake,
			HTTPRequest: f.Timeouts.HTTPRequest,
			KeepAlive:   f.Timeouts.KeepAlive,
			Client:      f.Timeouts.Client,
			Server:      f.Timeouts.Server,
			Connect:     f.Timeouts.Connect,
			Queue:       f.Timeouts.Queue,
			Tunnel:      f.Timeouts.Tunnel,
		},
		Forwarded: session.ForwardedOptions{
			XForwardedFor:   f.Forwarded.XForwarded,
			XForwardedProto: f.Forwarded.XForwarded,
			XForwardedHost:  f.Forwarded.XForwarded,
			Forwarded:       f.Forwarded.Forwarded,
			Trusted:         f.Forwarded.Trusted,
		},
		HTTP2:           f.HTTP2 && f.TLS != nil,
		H2C:             f.H2C,
		H2:              h2.Options{MaxConcurrentStreams: uint32(f.HTTPLimits.MaxConcurrentStreams)},
		AltSvc:          h3.AltSvc(quicPorts(f)),
		RequestID:       session.RequestIDOptions{Enabled: f.RequestID.Generate, Header: f.RequestID.Header},
		RequestHeaders:  headerRules(f.Headers.Request),
		ResponseHeaders: headerRules(f.Headers.Response),
	}
	if f.DefaultBackend != "" {
		o.DefaultBackend = g.backends[f.DefaultBackend]
	}
	// A plain HTTP frontend answers ACME HTTP-01 validations when some
	// frontend gets its certificates from ACME, and when it binds the ACME
	// HTTP port it redirects everything else to https (https_redirect).
	if f.TLS == nil && g.Config.UsesACME() && g.Config.Global.ACME.HTTP01 {
		p, err := g.svc.acmeProvider(g.Config)
		if err != nil {
			return nil, err
		}
		o.ACMEChallenge = p.HTTPChallenge
	}
	if f.HTTPSRedirect {
		o.Routes = append(o.Routes, session.HTTPRoute{
			Match:    session.HTTPMatch{PathPrefixes: []string{"/"}},
			Redirect: &session.HTTPRedirect{Status: 308, Scheme: "https"},
		})
	}
	for _, r := range f.HTTPRules {
		o.Rules = append(o.Rules, session.HTTPRule{
			Match:  httpMatch(r.Host, r.PathPrefix, r.Method, r.Header, nil, r.Src),
			Deny:   r.Action == config.RuleDeny,
			Status: r.Status,
		})
	}
	for _, r := range f.Routes {
		m := httpMatch(r.Host, r.PathPrefix, nil, r.Header, r.SNI, nil)
		for _, p := range r.DstPort {
			m.DstPorts = append(m.DstPorts, uint16(p))
		}
		rt := session.HTTPRoute{Match: m}
		if r.Redirect == nil {
			rt.Backend = g.backends[r.Backend]
		} else {
			rt.Redirect = &session.HTTPRedirect{
				Status: r.Redirect.Status, Scheme: r.Redirect.Scheme, Host: r.Redirect.Host,
				Path: r.Redirect.Path, Prefix: r.Redirect.Prefix,
			}
		}
		o.Routes = append(o.Routes, rt)
	}
	if len(f.ErrorFiles) > 0 {
		o.ErrorPages = make(map[int]string, len(f.ErrorFiles))
		for status, file := range f.ErrorFiles {
			b, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("errors[%d]: %w", status, err)
			}
			o.ErrorPages[status] = string(b)
		}
	}
	return session.NewHTTPFrontend(o)
}

func httpMatch(hosts, paths, methods []string, h *config.HeaderMatch, sni []string, src []netip.Prefix) session.HTTPMatch {
	m := session.HTTPMatch{Hosts: hosts, PathPrefixes: paths, Methods: methods, SNI: sni, Sources: src}
	if h != nil {
		m.Header = h.Name
		if h.HasValue {
			m.HeaderValues = []string{h.Value}
		}
	}
	return m
}

// headerRules turns the configuration's delete/set/add lists into the
// session's ordered rules: deletes first, then sets, then adds.
func headerRules(r config.HeaderRules) []session.HeaderRule {
	var out []session.HeaderRule
	for _, name := range r.Delete {
		out = append(out, session.HeaderRule{Op: session.HeaderDel, Name: name})
	}
	for _, f := range r.Set {
		out = append(out, session.HeaderRule{Op: session.HeaderSet, Name: f.Name, Value: f.Value})
	}
	for _, f := range r.Add {
		out = append(out, session.HeaderRule{Op: session.HeaderAdd, Name: f.Name, Value: f.Value})
	}
	return out
}
