package config

import (
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"
)

var (
	acmeKeys       = []string{"directory", "email", "eab", "key_type", "ca_root", "renew_window", "check_interval", "retry", "challenges", "on_demand", "fallback"}
	eabKeys        = []string{"key_id", "mac_key"}
	acmeRetryKeys  = []string{"min", "max"}
	challengeKeys  = []string{"http01", "tls_alpn01", "http_port", "tls_port"}
	onDemandKeys   = []string{"ask", "allow", "rate", "per_name"}
	onDemandRate   = []string{"certificates", "per"}
	onDemandName   = []string{"attempts", "per"}
	fallbackKeys   = []string{"directory", "email", "eab", "ca_root"}
	acmeKeyTypes   = []string{"p256", "p384", "rsa2048", "rsa4096", "ed25519"}
	acmeDirAliases = map[string]string{
		"letsencrypt":         "https://acme-v02.api.letsencrypt.org/directory",
		"letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
	}
)

// Built-in ACME defaults.
const (
	defaultACMEDirectory  = "https://acme-v02.api.letsencrypt.org/directory"
	defaultRenewWindow    = 1.0 / 3
	defaultCheckInterval  = 10 * time.Minute
	defaultACMERetryMin   = 30 * time.Second
	defaultACMERetryMax   = 30 * time.Minute
	defaultACMEHTTPPort   = 80
	defaultACMETLSPort    = 443
	defaultACMEKeyType    = "p256"
	internalCAKeyword     = "internal"
	defaultInternalLeaves = "localhost"
)

// ACME is the global automatic-HTTPS configuration, used by frontends
// with tls auto. It always holds the defaults when the file says nothing.
type ACME struct {
	Pos Pos
	// CA is the primary ACME CA.
	CA ACMEIssuer
	// Fallback is tried when CA cannot issue; nil = none.
	Fallback *ACMEIssuer
	// KeyType of certificate keys: p256, p384, rsa2048, rsa4096, ed25519.
	KeyType string
	// RenewWindow is the fraction of a certificate's lifetime left when
	// it is renewed, in (0, 1).
	RenewWindow float64
	// CheckInterval is how often certificates are checked for renewal.
	CheckInterval time.Duration
	// RetryMin and RetryMax bound the backoff of failed orders.
	RetryMin, RetryMax time.Duration
	// HTTP01 and TLSALPN01 enable the challenge types.
	HTTP01, TLSALPN01 bool
	// HTTPPort is where the CA's HTTP-01 validation arrives (80): plain
	// mode-http frontends binding it redirect to https by default.
	// TLSPort is where TLS-ALPN-01 validation arrives (443).
	HTTPPort, TLSPort int
	// OnDemand is nil when names unknown at start get no certificate.
	OnDemand *OnDemand
}

// ACMEIssuer is one ACME CA and the account used with it.
type ACMEIssuer struct {
	// Directory is the directory URL.
	Directory string
	// Email is the account contact; "" = none.
	Email string
	// EABKeyID and EABMACKey are the external account binding; both or
	// neither.
	EABKeyID, EABMACKey string
	// CARoot is a PEM file of the roots trusted for the CA's own HTTPS
	// endpoint (a private CA); "" = system roots.
	CARoot string
}

// OnDemand is the policy for names that get a certificate at their first
// handshake: allowed by Allow or by Ask answering 200, within the limits.
type OnDemand struct {
	Ask   string
	Allow []string
	// Rate caps certificates over all names: Certificates per RatePer;
	// 0 = unlimited.
	Certificates int
	RatePer      time.Duration
	// Attempts caps attempts for one name per AttemptsPer; 0 = unlimited.
	Attempts    int
	AttemptsPer time.Duration
}

func defaultACME() ACME {
	return ACME{
		CA:            ACMEIssuer{Directory: defaultACMEDirectory},
		KeyType:       defaultACMEKeyType,
		RenewWindow:   defaultRenewWindow,
		CheckInterval: defaultCheckInterval,
		RetryMin:      defaultACMERetryMin,
		RetryMax:      defaultACMERetryMax,
		HTTP01:        true,
		TLSALPN01:     true,
		HTTPPort:      defaultACMEHTTPPort,
		TLSPort:       defaultACMETLSPort,
	}
}

// UsesACME reports whether a frontend has tls auto.
func (c *Config) UsesACME() bool {
	for _, f := range c.Frontends {
		if f.TLS != nil && f.TLS.Auto {
			return true
		}
	}
	return false
}

// UsesInternalCA reports whether a frontend or a backend uses the internal
// CA.
func (c *Config) UsesInternalCA() bool {
	for _, f := range c.Frontends {
		if f.TLS != nil && f.TLS.Internal {
			return true
		}
	}
	for _, b := range c.Backends {
		if b.TLS != nil && (b.TLS.CAInternal || b.TLS.ClientInternal) {
			return true
		}
	}
	return false
}

func (p *parser) acme(e entry) ACME {
	a := defaultACME()
	a.Pos = pos(e.key)
	f := p.mapping(e.val, "acme", acmeKeys)
	if f == nil {
		return a
	}
	p.acmeIssuer(f, &a.CA, "acme")
	if v, ok := f["key_type"]; ok {
		if s, ok := p.enum(v.val, "acme.key_type", acmeKeyTypes...); ok {
			a.KeyType = s
		}
	}
	if v, ok := f["renew_window"]; ok {
		if r, ok := p.fraction(v.val, "acme.renew_window"); ok {
			a.RenewWindow = r
		}
	}
	if v, ok := f["check_interval"]; ok {
		if d, ok := p.duration(v.val, "acme.check_interval", false); ok {
			a.CheckInterval = d
		}
	}
	if v, ok := f["retry"]; ok {
		r := p.mapping(v.val, "acme.retry", acmeRetryKeys)
		if v, ok := r["min"]; ok {
			if d, ok := p.duration(v.val, "acme.retry.min", false); ok {
				a.RetryMin = d
			}
		}
		if v, ok := r["max"]; ok {
			if d, ok := p.duration(v.val, "acme.retry.max", false); ok {
				a.RetryMax = d
			}
		}
		if a.RetryMax < a.RetryMin {
			p.errorf(v.key, "acme.retry: max %s is less than min %s", a.RetryMax, a.RetryMin)
		}
	}
	if v, ok := f["challenges"]; ok {
		c := p.mapping(v.val, "acme.challenges", challengeKeys)
		if v, ok := c["http01"]; ok {
			if b, ok := p.boolean(v.val, "acme.challenges.http01"); ok {
				a.HTTP01 = b
			}
		}
		if v, ok := c["tls_alpn01"]; ok {
			if b, ok := p.boolean(v.val, "acme.challenges.tls_alpn01"); ok {
				a.TLSALPN01 = b
			}
		}
		if v, ok := c["http_port"]; ok {
			if i, ok := p.integer(v.val, "acme.challenges.http_port", 1, 65535); ok {
				a.HTTPPort = i
			}
		}
		if v, ok := c["tls_port"]; ok {
			if i, ok := p.integer(v.val, "acme.challenges.tls_port", 1, 65535); ok {
				a.TLSPort = i
			}
		}
		if !a.HTTP01 && !a.TLSALPN01 {
			p.errorf(v.key, "acme.challenges: http01 and tls_alpn01 are both off; the CA could validate nothing")
		}
	}
	if v, ok := f["on_demand"]; ok {
		a.OnDemand = p.onDemand(v)
	}
	if v, ok := f["fallback"]; ok {
		fb := &ACMEIssuer{}
		ff := p.mapping(v.val, "acme.fallback", fallbackKeys)
		if ff != nil {
			if !ff.has("directory") {
				p.errorf(v.key, "acme.fallback: directory is required")
			}
			p.acmeIssuer(ff, fb, "acme.fallback")
		}
		a.Fallback = fb
	}
	return a
}

// acmeIssuer reads directory, email, eab and ca_root into iss.
func (p *parser) acmeIssuer(f fields, iss *ACMEIssuer, what string) {
	if v, ok := f["directory"]; ok {
		if s, ok := p.str(v.val, what+".directory"); ok {
			if alias, ok := acmeDirAliases[s]; ok {
				s = alias
			}
			if u, err := url.Parse(s); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				p.errorf(deref(v.val), "%s.directory: %q is not an http(s) URL; write the CA's directory URL, or letsencrypt or letsencrypt-staging", what, s)
			} else {
				iss.Directory = s
			}
		}
	}
	if v, ok := f["email"]; ok {
		if s, ok := p.str(v.val, what+".email"); ok {
			if at := strings.IndexByte(s, '@'); at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n<>") {
				p.errorf(deref(v.val), "%s.email: %q is not an email address", what, s)
			} else {
				iss.Email = s
			}
		}
	}
	if v, ok := f["eab"]; ok {
		ef := p.mapping(v.val, what+".eab", eabKeys)
		kv, mv := ef.val("key_id"), ef.val("mac_key")
		if ef != nil && (kv == nil || mv == nil) {
			p.errorf(v.key, "%s.eab: needs both key_id and mac_key, as the CA gave them", what)
		}
		if kv != nil {
			iss.EABKeyID, _ = p.str(kv, what+".eab.key_id")
		}
		if mv != nil {
			if s, ok := p.str(mv, what+".eab.mac_key"); ok {
				if strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=") != "" {
					p.errorf(deref(mv), "%s.eab.mac_key: not base64url", what)
				} else {
					iss.EABMACKey = s
				}
			}
		}
	}
	if v, ok := f["ca_root"]; ok {
		if path, name, ok := p.path(v.val, what+".ca_root"); ok {
			p.checkCA(deref(v.val), path, name)
			iss.CARoot = path
		}
	}
}

func (p *parser) onDemand(e entry) *OnDemand {
	o := &OnDemand{}
	f := p.mapping(e.val, "acme.on_demand", onDemandKeys)
	if f == nil {
		return o
	}
	if v, ok := f["ask"]; ok {
		if s, ok := p.str(v.val, "acme.on_demand.ask"); ok {
			if u, err := url.Parse(s); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				p.errorf(deref(v.val), "acme.on_demand.ask: %q is not an http(s) URL", s)
			} else {
				o.Ask = s
			}
		}
	}
	if v, ok := f["allow"]; ok {
		for _, item := range p.seq(v.val, "acme.on_demand.allow", true) {
			s, ok := p.str(item, "acme.on_demand.allow")
			if !ok {
				continue
			}
			name, err := parseSNI(s)
			if err != nil {
				p.errorf(deref(item), "acme.on_demand.allow: %v", err)
				continue
			}
			o.Allow = append(o.Allow, name)
		}
	}
	if o.Ask == "" && len(o.Allow) == 0 && !p.hasErrorAt(f.val("ask")) && !p.hasErrorAt(f.val("allow")) {
		p.errorf(e.key, "acme.on_demand: give ask (a URL that answers 200 for allowed names) or allow (name patterns); without them any name could make strata order certificates")
	}
	if v, ok := f["rate"]; ok {
		o.Certificates, o.RatePer = p.limit(v, "acme.on_demand.rate", onDemandRate)
	}
	if v, ok := f["per_name"]; ok {
		o.Attempts, o.AttemptsPer = p.limit(v, "acme.on_demand.per_name", onDemandName)
	}
	return o
}

// limit reads {COUNT: n, per: duration}; keys[0] names the count.
func (p *parser) limit(e entry, what string, keys []string) (int, time.Duration) {
	f := p.mapping(e.val, what, keys)
	cv, pv := f.val(keys[0]), f.val("per")
	if f != nil && (cv == nil || pv == nil) {
		p.errorf(e.key, "%s: needs both %s and per, e.g. {%s: 10, per: 1m}", what, keys[0], keys[0])
	}
	var n int
	var d time.Duration
	if cv != nil {
		n, _ = p.integer(cv, what+"."+keys[0], 1, maxInt)
	}
	if pv != nil {
		d, _ = p.duration(pv, what+".per", false)
	}
	return n, d
}

// fraction reads a number strictly between 0 and 1.
func (p *parser) fraction(n *yaml.Node, what string) (float64, bool) {
	s, ok := p.scalar(n, what, "a fraction such as 0.33")
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(s.Value, 64)
	if err != nil || !(f > 0 && f < 1) {
		p.errorf(s, "%s: expected a fraction between 0 and 1 (exclusive) such as 0.33, got %s", what, describe(s))
		return 0, false
	}
	return f, true
}

// acmeNames checks the frontend's tls auto names (listed, then taken
// from its routes) and returns them: a public CA only issues for public
// DNS names, so an IP address or an internal name is an error with a
// hint to use tls internal. Wildcards from routes are left out (HTTP-01
// and TLS-ALPN-01 cannot validate them).
func (p *parser) tlsNames(fe *Frontend, listed []*yaml.Node) []string {
	t := fe.TLS
	var out []string
	add := func(n *yaml.Node, name string, fromRoute bool) {
		name = strings.ToLower(strings.TrimSuffix(name, "."))
		if slices.Contains(out, name) {
			return
		}
		if t.Auto {
			if strings.HasPrefix(name, "*.") {
				if !fromRoute {
					p.errorf(n, "tls.auto: %q is a wildcard; ACME's HTTP-01 and TLS-ALPN-01 challenges cannot validate wildcards: list the names", name)
				}
				return
			}
			if internalName(name) {
				p.errorf(n, "tls.auto: %q cannot get a certificate from a public CA; use tls: internal for internal names, localhost and IP addresses", name)
				return
			}
		}
		out = append(out, name)
	}
	for _, item := range listed {
		s, ok := p.str(item, "tls names")
		if !ok {
			continue
		}
		if _, err := netip.ParseAddr(s); err == nil && t.Internal {
			add(deref(item), s, false)
			continue
		}
		name, err := parseSNI(s)
		if err != nil {
			if t.Auto && isIP(s) {
				p.errorf(deref(item), "tls.auto: %q cannot get a certificate from a public CA; use tls: internal for internal names, localhost and IP addresses", s)
				continue
			}
			p.errorf(deref(item), "tls: %v", err)
			continue
		}
		add(deref(item), name, false)
	}
	for _, r := range fe.Routes {
		at := &yaml.Node{Line: r.Pos.Line, Column: r.Pos.Col}
		for _, h := range append(slices.Clone(r.Host), r.SNI...) {
			if isIP(h) && t.Auto {
				continue
			}
			add(at, h, true)
		}
	}
	return out
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(strings.Trim(s, "[]"))
	return err == nil
}

// internalName reports whether name can only be served by an internal CA:
// localhost, the .localhost, .local, .internal and .home.arpa domains, and
// names with no dot.
func internalName(name string) bool {
	if isIP(name) || !strings.Contains(name, ".") {
		return true
	}
	for _, suffix := range []string{".localhost", ".local", ".internal", ".home.arpa"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}
