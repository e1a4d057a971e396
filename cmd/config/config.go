package config

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// Config is one parsed, defaulted and validated configuration file. It is
// plain data: a reload parses a new Config and the runtime builds new live
// objects from it. Nothing in it may be mutated after Parse returns, so one
// Config can be read from any number of goroutines.
type Config struct {
	// File is the path the configuration was read from, as given to Parse.
	File string
	// Dir is the directory relative paths in the file were resolved against.
	Dir string

	Global   Global
	Defaults Defaults
	// Frontends are sorted by Name.
	Frontends []*Frontend
	// Backends are sorted by Name; Backend looks one up.
	Backends []*Backend

	backends map[string]*Backend
}

// Backend returns the backend called name, or nil.
func (c *Config) Backend(name string) *Backend {
	return c.backends[name]
}

// Pos is the 1-based position of a node in the configuration file, kept so
// the runtime can name the frontend, backend or listener in its log lines.
type Pos struct {
	Line int
	Col  int
}

// String returns "LINE:COL".
func (p Pos) String() string {
	return strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Col)
}

// Global holds the process-wide settings.
type Global struct {
	// MaxConnections caps client connections over all frontends; 0 = unlimited.
	MaxConnections int
	// DataDir is where state (ACME accounts, the internal CA) is kept.
	DataDir string
	// BufferSize is the size in bytes of each forwarding buffer.
	BufferSize int64
	// DrainTimeout is how long live sessions may run on after SIGTERM or a
	// reload before they are closed.
	DrainTimeout time.Duration
	Log          Log
	// ACME is the automatic-HTTPS configuration, with its defaults when the
	// file has no acme section.
	ACME ACME
}

// LogFormat is the encoding of log lines.
type LogFormat string

// Log formats.
const (
	LogJSON LogFormat = "json"
	LogText LogFormat = "text"
)

// Log says how and where the process logs.
type Log struct {
	Format LogFormat
	Level  slog.Level
	// Output is "stderr", "stdout" or a file path (resolved against
	// Config.Dir).
	Output string
}

// Defaults are the values every frontend and backend inherits unless it
// sets its own. The effective values are already copied into each frontend
// and backend; the runtime need not consult Defaults.
type Defaults struct {
	Timeouts Timeouts
	Retries  int
	MaxConn  int
	// HTTPLimits are inherited by frontends (mode http uses them).
	HTTPLimits HTTPLimits
}

// Timeouts are the time limits of a session. A zero Tunnel means "not set":
// Client and Server then apply for the whole session. In mode http each
// expiry is answered as HAProxy does: HTTPRequest with 408, Server with
// 504, Queue with 503; KeepAlive closes the idle connection without one.
type Timeouts struct {
	Connect   time.Duration // connecting to a server
	Client    time.Duration // client idle: no bytes from the client
	Server    time.Duration // server idle: no bytes from the server (mode http: 504)
	Tunnel    time.Duration // idle once both sides are up in mode tcp or after an HTTP Upgrade; 0 = unset
	Queue     time.Duration // waiting for a server slot (mode http: 503)
	Handshake time.Duration // TLS handshake / PROXY header on the client side
	Check     time.Duration // one health check
	// HTTPRequest bounds the time from the first byte of a request (or the
	// end of the handshake, for the first) to the end of its head: 408.
	HTTPRequest time.Duration
	// KeepAlive bounds the idle time between the end of a response and the
	// first byte of the next request on a client keep-alive connection.
	KeepAlive time.Duration
}

// HTTPLimits bound what a mode http frontend accepts in a request; past a
// limit the request is refused with the status named on its field.
// Frontends carry their effective limits whatever their mode.
type HTTPLimits struct {
	// MaxHeaderBytes bounds the request head (request line, header fields
	// and the empty line): 431. It is at most Global.BufferSize, because a
	// head must fit in one buffer.
	MaxHeaderBytes int
	// MaxHeaderCount bounds the number of header fields: 431.
	MaxHeaderCount int
	// MaxURIBytes bounds the request target: 414. It is at most
	// MaxHeaderBytes.
	MaxURIBytes int
	// MaxBodyBytes bounds the request body (a Content-Length or the sum of
	// the chunks): 413. 0 means unlimited.
	MaxBodyBytes int64
	// MaxConcurrentStreams bounds the HTTP/2 streams a client may have
	// open on one connection. 0 means 100.
	MaxConcurrentStreams int
}

// Mode is what a frontend speaks after TLS: raw TCP or HTTP.
type Mode string

// Frontend modes.
const (
	ModeTCP  Mode = "tcp"
	ModeHTTP Mode = "http"
)

// Frontend is a set of listeners and the rules that route their connections.
type Frontend struct {
	Name string
	Pos  Pos
	// Bind has one entry per listening socket, port ranges expanded, in the
	// order written.
	Bind           []ListenAddr
	Mode           Mode
	MaxConnections int // 0 = unlimited
	ProxyProtocol  bool
	// TLS is nil when the frontend does not terminate TLS.
	TLS *FrontendTLS
	// Passthrough peeks the ClientHello for SNI without terminating TLS.
	Passthrough bool
	L4          L4
	// Routes are tried in order; the first match wins.
	Routes         []Route
	DefaultBackend string // "" = none
	Timeouts       Timeouts
	HTTPLimits     HTTPLimits

	// The fields below are for mode http only; they hold their zero values
	// in mode tcp.

	// HTTP2 serves HTTP/2 to TLS clients that negotiate it by ALPN (on by
	// default in mode http); H2C serves cleartext HTTP/2 with prior
	// knowledge (off by default).
	HTTP2, H2C bool

	// HTTPRules are the L7 allow/deny rules, tried in order on each request
	// before routing; the first rule that matches decides, and a request no
	// rule matches is allowed.
	HTTPRules []HTTPRule
	// Headers are the header rewrites of requests and responses.
	Headers Headers
	// Forwarded says which forwarding headers are sent to servers and whose
	// are trusted.
	Forwarded Forwarded
	// RequestID names the request id header and whether it is generated.
	RequestID RequestID
	// HTTPSRedirect answers every request with a 308 redirect to https,
	// except ACME HTTP-01 validations (plain mode-http frontends only).
	HTTPSRedirect bool

	// ErrorFiles maps a status (400-599) to the file, resolved against
	// Config.Dir, whose contents are the body of the error responses strata
	// itself sends with that status. Parse checked that each is a readable
	// regular file of at most 64 KiB. nil when none are set.
	ErrorFiles map[int]string
}

// ListenAddr is one listening socket.
type ListenAddr struct {
	Network string // "tcp"
	// Host is "" (all addresses), an IP address (IPv6 without brackets) or a
	// host name.
	Host string
	Port int
	// QUIC also opens a UDP listener on the same address for HTTP/3
	// (`quic: true` on the bind entry; mode http with tls only).
	QUIC bool
	// Pos is the position of the bind entry that produced this address.
	Pos Pos
}

// String returns host:port, with an IPv6 host in brackets; it is the
// identity of the listener when a reload decides what to keep open.
func (a ListenAddr) String() string {
	if ip, err := netip.ParseAddr(a.Host); err == nil && ip.Is6() {
		return "[" + a.Host + "]:" + strconv.Itoa(a.Port)
	}
	return a.Host + ":" + strconv.Itoa(a.Port)
}

// FrontendTLS is TLS termination on a frontend.
type FrontendTLS struct {
	Pos Pos
	// Certificates are static certificates; SNI picks among them by SAN.
	Certificates []Certificate
	MinVersion   uint16 // tls.VersionTLS12 or tls.VersionTLS13
	ALPN         []string
	// ClientAuth is nil when client certificates are not requested.
	ClientAuth *ClientAuth
	// Auto gets certificates for Names from the ACME CA (global acme);
	// Internal issues them from the internal CA. At most one is set; either
	// may come with Certificates, which SNI prefers when they match.
	Auto     bool
	Internal bool
	// Names are the names managed by Auto or Internal: those listed, then
	// the exact host and sni names of the frontend's routes.
	Names []string
	// ZeroRTT accepts TLS 1.3 early data on the frontend's QUIC listeners
	// for safe methods (the backend sees "Early-Data: 1"); off by default.
	ZeroRTT bool
}

// Certificate is a certificate chain and its private key, as PEM file paths
// resolved against Config.Dir. Parse checked that they load and match.
type Certificate struct {
	Pos  Pos
	Cert string
	Key  string
}

// ClientAuth is mutual TLS on a frontend.
type ClientAuth struct {
	// CA is the PEM file of the CAs that sign client certificates.
	CA string
	// Mode is tls.RequireAndVerifyClientCert or tls.VerifyClientCertIfGiven.
	Mode tls.ClientAuthType
}

// L4 are the layer-4 rules run on each accepted connection before any
// session exists.
type L4 struct {
	// Allow, when not empty, admits only sources inside one of its prefixes.
	Allow []netip.Prefix
	// Deny refuses sources inside any of its prefixes; it wins over Allow.
	Deny []netip.Prefix
	// Rate is nil when new connections per source are not rate limited.
	Rate *Rate
	// MaxPerSource caps concurrent connections per source IP; 0 = unlimited.
	MaxPerSource int
}

// Rate admits at most Connections new connections per source in any Per.
type Rate struct {
	Connections int
	Per         time.Duration
}

// Route sends connections (mode tcp) or requests (mode http) that match it
// to Backend, or answers them with Redirect. A route matches when every
// criterion it sets matches; a list criterion matches when any of its
// values does. Host, PathPrefix, Header and Redirect are mode http only.
type Route struct {
	Pos Pos
	// SNI holds lower-case host names or "*.suffix" wildcards.
	SNI []string
	// DstPort holds listener ports.
	DstPort []int
	// Host holds lower-case host names, IP addresses (IPv6 without
	// brackets) or "*.suffix" wildcards of one label, as SNI, compared
	// with the request's host (the authority of the target, else the Host
	// field) without its port.
	Host []string
	// PathPrefix holds prefixes of the request path, each starting with
	// "/", compared byte for byte (case-sensitive, before any decoding).
	PathPrefix []string
	// Header is nil when the route does not match on a header field.
	Header *HeaderMatch
	// Exactly one of Backend and Redirect is set.
	Backend  string
	Redirect *Redirect
}

// HeaderMatch matches a request that has a header field named Name and,
// when HasValue, one whose whole value is exactly Value.
type HeaderMatch struct {
	// Name is a field-name token as written; names compare
	// case-insensitively.
	Name     string
	Value    string
	HasValue bool
}

// Redirect answers a request with a redirection to a URL made from the
// request's own by replacing the parts that are set. The query is kept.
// When Scheme changes the scheme and Host is not set, the request's host is
// kept without its port.
type Redirect struct {
	Pos Pos
	// Status is 301, 302, 303, 307 or 308.
	Status int
	// Scheme is "http" or "https"; "" keeps the request's.
	Scheme string
	// Host is a host, or host:port, with an IPv6 address in brackets; ""
	// keeps the request's.
	Host string
	// Path replaces the whole path; "" keeps it (or see Prefix).
	Path string
	// Prefix replaces the part of the path matched by the route's
	// PathPrefix, keeping the rest; "" = not set. Path and Prefix are never
	// both set, and Prefix only on a route with PathPrefix.
	Prefix string
}

// RuleAction is what an HTTPRule does with the requests it matches.
type RuleAction string

// Rule actions.
const (
	RuleAllow RuleAction = "allow"
	RuleDeny  RuleAction = "deny"
)

// HTTPRule allows or denies the requests that match every criterion it
// sets; a list criterion matches when any of its values does, and a rule
// that sets none matches every request.
type HTTPRule struct {
	Pos    Pos
	Action RuleAction
	// Src holds prefixes of the client address: the peer's, or the one a
	// PROXY header gave; never a forwarding header's.
	Src []netip.Prefix
	// Method holds methods, compared case-sensitively.
	Method []string
	// Host and PathPrefix match as in Route.
	Host       []string
	PathPrefix []string
	// Header is nil when the rule does not match on a header field.
	Header *HeaderMatch
	// Status is the status a deny is answered with (400-599, default 403);
	// 0 for allow.
	Status int
}

// Headers are the header rewrites of a frontend.
type Headers struct {
	// Request is applied to each request after routing, before the
	// forwarding headers and the request id are added.
	Request HeaderRules
	// Response is applied to each response from a server, before it is
	// sent to the client.
	Response HeaderRules
}

// HeaderRules rewrite the header fields of a message, in this order:
// every field named in Delete is removed; each field of Set replaces all
// the fields of its name (or is appended when there are none); each field
// of Add is appended. Names compare case-insensitively. Framing and
// hop-by-hop fields (Content-Length, Transfer-Encoding, Connection, ...)
// cannot be set or added.
type HeaderRules struct {
	Delete []string
	// Set and Add are in file order.
	Set []HeaderField
	Add []HeaderField
}

// HeaderField is one header field to write: a token name and a value with
// no control characters other than HTAB and no surrounding whitespace.
type HeaderField struct {
	Name, Value string
}

// Forwarded says how a frontend tells servers who the client is. The
// fields it writes are appended to those received when the direct peer is
// inside Trusted, and replace them otherwise.
type Forwarded struct {
	// Trusted holds the prefixes of peers (other proxies) whose forwarding
	// fields are kept; empty means none are.
	Trusted []netip.Prefix
	// XForwarded sends X-Forwarded-For, X-Forwarded-Proto and
	// X-Forwarded-Host.
	XForwarded bool
	// Forwarded sends the RFC 7239 Forwarded field.
	Forwarded bool
}

// RequestID says which header field carries a request's id. A request that
// has one keeps it; it is passed to the server and logged.
type RequestID struct {
	// Header is the field name (a token), "X-Request-ID" by default.
	Header string
	// Generate adds a fresh id to requests that have none.
	Generate bool
}

// Balance is a load-balancing algorithm.
type Balance string

// Balancing algorithms.
const (
	BalanceRoundRobin Balance = "roundrobin"
	BalanceLeastConn  Balance = "leastconn"
	BalanceRandom     Balance = "random"
	BalanceSource     Balance = "source"
	BalanceFirst      Balance = "first"
	// BalanceURI hashes the request path, without the query, as HAProxy's
	// balance uri does (mode http).
	BalanceURI Balance = "uri"
	// BalanceHeader hashes the value of the field Backend.HashHeader
	// (mode http); written header(NAME).
	BalanceHeader Balance = "header"
)

// Backend is a pool of servers and how to reach and check them.
type Backend struct {
	Name    string
	Pos     Pos
	Balance Balance
	// HashHeader is the field name (a token, as written) hashed when
	// Balance is BalanceHeader; "" otherwise.
	HashHeader string
	// Cookie is nil when there is no cookie-based persistence. A backend
	// with BalanceURI, BalanceHeader or a Cookie is used only by mode http
	// frontends.
	Cookie  *Cookie
	Servers []Server
	// TLS is nil when servers are reached over plain TCP.
	TLS *BackendTLS
	// H3 sends HTTP requests to the servers over HTTP/3 (QUIC on the same
	// address, UDP), with the TLS settings of TLS; while a server cannot be
	// reached over QUIC, over TCP as without it. Mode http only.
	H3 bool
	// Health is nil when there are no active checks.
	Health *Health
	// Passive is nil when passive ejection is off.
	Passive  *Passive
	Retries  int
	Queue    Queue
	Timeouts Timeouts
	// Proto is the HTTP version spoken to the servers: ProtoH1 by
	// default; a backend with ProtoH2 is used only by mode http frontends.
	Proto Proto
}

// Proto is the HTTP version spoken to a backend's servers.
type Proto string

// The protocols spoken to servers.
const (
	// ProtoH1 is HTTP/1.1.
	ProtoH1 Proto = "h1"
	// ProtoH2 is HTTP/2: over TLS with ALPN "h2" when the backend has tls,
	// else cleartext with prior knowledge (h2c); requests are streams
	// multiplexed on shared connections.
	ProtoH2 Proto = "h2"
)

// Server is one destination of a backend.
type Server struct {
	Pos Pos
	// Name is unique within the backend; it defaults to Address.
	Name string
	// Address is host:port as written; Host and Port are its parts.
	Address string
	Host    string
	Port    int
	// Weight is 0..256; 0 means drained (never picked).
	Weight    int
	MaxConn   int // 0 = unlimited
	Backup    bool
	SendProxy bool
	// ServerName is the SNI sent to this server when the backend has TLS:
	// BackendTLS.SNI, or else Host when it is a name. "" = send none.
	ServerName string
}

// BackendTLS is TLS from the proxy to the servers of a backend.
type BackendTLS struct {
	Pos Pos
	// SNI is the name sent to every server; "" = each server's own host
	// name (see Server.ServerName).
	SNI string
	// CA is the PEM file to verify servers against; "" = system roots.
	CA string
	// Verify false turns off verification of the server certificate.
	Verify bool
	// ClientCert and ClientKey are both set or both empty.
	ClientCert string
	ClientKey  string
	ALPN       []string
	// CAInternal verifies servers against the internal CA (ca: internal);
	// CA is then empty.
	CAInternal bool
	// ClientInternal presents a client certificate issued and renewed by
	// the internal CA (client_certificate: internal).
	ClientInternal bool
}

// Cookie is cookie-based persistence, HAProxy's "cookie NAME insert": a
// request whose cookie Name holds the name of a usable server goes to that
// server; other requests are balanced.
type Cookie struct {
	// Name is the cookie name (a token).
	Name string
	// Insert makes strata add a Set-Cookie naming the chosen server to the
	// response when the request's cookie did not already name it. When
	// false, strata only reads the cookie, which the servers set.
	Insert bool
}

// HealthType is the kind of active health check.
type HealthType string

// Health check types.
const (
	HealthTCP HealthType = "tcp"
	HealthTLS HealthType = "tls"
	// HealthHTTP sends an HTTP/1.1 request, over TLS when the backend has
	// TLS, and checks the response status.
	HealthHTTP HealthType = "http"
)

// Health is the active health check of a backend's servers.
type Health struct {
	Type     HealthType
	Interval time.Duration
	Timeout  time.Duration
	Rise     int // consecutive successes to mark a server up
	Fall     int // consecutive failures to mark a server down

	// The fields below are set for HealthHTTP only.

	// Method is the request method (a token), GET by default.
	Method string
	// Path is the request target, starting with "/"; "/" by default.
	Path string
	// ExpectStatus holds the statuses of a healthy response; [200] by
	// default.
	ExpectStatus []int
	// Host is the Host field sent (host or host:port); "" sends the
	// server's address.
	Host string
}

// Passive ejects a server after consecutive connect failures.
type Passive struct {
	Failures int
	Eject    time.Duration
}

// Queue bounds the wait for a server slot when servers are at MaxConn.
type Queue struct {
	Max     int // 0 = unlimited
	Timeout time.Duration
}

// Load reads the file at path and parses it with Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}
