package acme

import (
	"crypto/x509"
	"log/slog"
	"net/http"
	"time"
)

// LetsEncrypt is the production directory of Let's Encrypt, the default CA.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// LetsEncryptStaging is the staging directory of Let's Encrypt, for trying a
// configuration without touching the production rate limits.
const LetsEncryptStaging = "https://acme-staging-v02.api.letsencrypt.org/directory"

// Defaults used where Options leave a field zero.
const (
	DefaultRenewWindow   = 1.0 / 3
	DefaultCheckInterval = 10 * time.Minute
	DefaultRetryMin      = 30 * time.Second
	DefaultRetryMax      = 30 * time.Minute
	DefaultHTTPPort      = 80
	DefaultTLSPort       = 443
	defaultAskTimeout    = 5 * time.Second
)

// Options configure a Provider. They are what the user wrote: no live
// state.
type Options struct {
	// Storage is the directory certificates, keys, account data and locks
	// are kept in (data_dir/acme). Instances sharing it coordinate.
	Storage string
	// CA is the primary issuer; Directory defaults to LetsEncrypt.
	CA Issuer
	// Fallback, when set, is tried when CA fails to issue.
	Fallback *Issuer
	// KeyType of certificate keys: "p256" (default), "p384", "rsa2048",
	// "rsa4096" or "ed25519".
	KeyType string
	// RenewWindow is the fraction of a certificate's lifetime left when it
	// is renewed, in (0, 1); DefaultRenewWindow when zero. A CA's renewal
	// information (ARI) can ask for earlier.
	RenewWindow float64
	// CheckInterval is how often the cache looks for certificates due
	// for renewal; DefaultCheckInterval when zero.
	CheckInterval time.Duration
	// RetryMin and RetryMax bound the backoff between attempts to obtain a
	// certificate that failed: it starts at RetryMin and doubles up to
	// RetryMax. Defaults DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// HTTP01 and TLSALPN01 enable the challenge types. At least one must
	// be on for a CA to validate a name.
	HTTP01, TLSALPN01 bool
	// ListenHost, HTTPPort and TLSPort say where strata answers the CA's
	// validation requests (HTTPPort 80 and TLSPort 443 unless a test or a
	// port mapping says otherwise). certmagic, finding them taken by
	// strata, does not open listeners of its own.
	ListenHost        string
	HTTPPort, TLSPort int
	// OnDemand, when set, lets names not known at start get a certificate
	// at their first handshake, when the policy allows them.
	OnDemand *OnDemand
	// DisableARI turns off ACME renewal information, leaving the renewal
	// time to RenewWindow alone.
	DisableARI bool
	// Logger receives certificate events and certmagic's own lines (its
	// info lines at debug level). Nil is silent.
	Logger *slog.Logger
}

// Issuer is one ACME CA and the account used with it.
type Issuer struct {
	// Directory is the CA's directory URL.
	Directory string
	// Email is the account's contact; may be empty.
	Email string
	// EAB is the external account binding the CA requires, if any.
	EAB *EAB
	// Roots, when set, are the only roots trusted for the CA's own HTTPS
	// endpoint (a private CA); nil uses the system roots.
	Roots *x509.CertPool
}

// EAB is an external account binding: a key id and a base64url MAC key
// from the CA.
type EAB struct {
	KeyID  string
	MACKey string
}

// OnDemand is the policy for names not known at start. A name is allowed
// when it matches Allow or when Ask answers 200 for it; then the rate
// limits must let it through. All of this is decided before any request to
// the CA.
type OnDemand struct {
	// Ask is a URL asked "GET Ask?domain=NAME"; 200 allows the name,
	// anything else (or no answer within five seconds) refuses it.
	Ask string
	// AskClient makes the Ask requests; a client with a five-second
	// timeout when nil.
	AskClient *http.Client
	// Allow lists names allowed without asking: exact names, or
	// "*.example.com" for any one label under example.com.
	Allow []string
	// Rate bounds the certificates obtained on demand, over all names;
	// zero is unlimited.
	Rate Limit
	// PerName bounds the attempts for one name; zero is unlimited.
	PerName Limit
}

// Limit is at most N events in any window of Per.
type Limit struct {
	N   int
	Per time.Duration
}
