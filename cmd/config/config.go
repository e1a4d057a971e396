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
}

// Timeouts are the time limits of a session. A zero Tunnel means "not set":
// Client and Server then apply for the whole session.
type Timeouts struct {
	Connect   time.Duration // connecting to a server
	Client    time.Duration // client idle: no bytes from the client
	Server    time.Duration // server idle: no bytes from the server
	Tunnel    time.Duration // idle once both sides are up in TCP mode; 0 = unset
	Queue     time.Duration // waiting for a server slot
	Handshake time.Duration // TLS handshake / PROXY header on the client side
	Check     time.Duration // one health check
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
}

// ListenAddr is one listening socket.
type ListenAddr struct {
	Network string // "tcp"
	// Host is "" (all addresses), an IP address (IPv6 without brackets) or a
	// host name.
	Host string
	Port int
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

// Route sends connections that match it to Backend. A route matches when
// every criterion it sets matches (SNI and DstPort each match any of their
// values).
type Route struct {
	Pos Pos
	// SNI holds lower-case host names or "*.suffix" wildcards.
	SNI []string
	// DstPort holds listener ports.
	DstPort []int
	Backend string
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
)

// Backend is a pool of servers and how to reach and check them.
type Backend struct {
	Name    string
	Pos     Pos
	Balance Balance
	Servers []Server
	// TLS is nil when servers are reached over plain TCP.
	TLS *BackendTLS
	// Health is nil when there are no active checks.
	Health *Health
	// Passive is nil when passive ejection is off.
	Passive  *Passive
	Retries  int
	Queue    Queue
	Timeouts Timeouts
}

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
}

// HealthType is the kind of active health check.
type HealthType string

// Health check types.
const (
	HealthTCP HealthType = "tcp"
	HealthTLS HealthType = "tls"
)

// Health is the active health check of a backend's servers.
type Health struct {
	Type     HealthType
	Interval time.Duration
	Timeout  time.Duration
	Rise     int // consecutive successes to mark a server up
	Fall     int // consecutive failures to mark a server down
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
