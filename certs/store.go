package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoCertificate is wrapped by the error [Store.GetCertificate] returns
// when no certificate fits the ClientHello.
var ErrNoCertificate = errors.New("certs: no certificate")

// DefaultWatchInterval is how often [Store.Watch] polls when given no
// interval.
const DefaultWatchInterval = 5 * time.Second

// Pair names a certificate chain file and its private key file, as the
// configuration gives them.
type Pair struct {
	Cert string // PEM chain, leaf first
	Key  string // PEM private key
}

// Store serves certificates loaded from files and reloads them when the files
// change. GetCertificate reads the current [Index] through an atomic pointer
// and takes no lock; Reload and Watch may run concurrently with it. Make one
// with NewStore; the zero value is not usable.
type Store struct {
	logger *slog.Logger
	opts   IndexOptions
	index  atomic.Pointer[Index]

	mu      sync.Mutex // serialises Reload; guards entries
	entries []*entry
}

// entry is the live state of one Pair: the certificate being served and the
// file stamps it was loaded from.
type entry struct {
	pair     Pair
	cert     *tls.Certificate
	certStat os.FileInfo // stamps of the files cert was read from
	keyStat  os.FileInfo
	failCert os.FileInfo // stamps of the files that last failed to load
	failKey  os.FileInfo
	err      error // the last load failure, until a load succeeds
}

// NewStore loads every pair and returns a Store serving them; the first pair
// is the default certificate. It fails, naming every bad pair, when any pair
// does not load. opts, at most one, configures the index (strict SNI). A nil
// logger is silent.
func NewStore(pairs []Pair, logger *slog.Logger, opts ...IndexOptions) (*Store, error) {
	s := &Store{logger: orDiscard(logger)}
	if len(opts) > 0 {
		s.opts = opts[0]
	}
	var errs []error
	for _, p := range pairs {
		e := &entry{pair: p}
		if err := e.load(); err != nil {
			errs = append(errs, err)
			continue
		}
		s.logLoaded("certificate loaded", e)
		s.entries = append(s.entries, e)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s.rebuild()
	return s, nil
}

// GetCertificate returns the certificate for hello's server name; it has the
// signature of tls.Config.GetCertificate. With no server name it tries the
// local IP address the client connected to, then the default certificate.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	x := s.index.Load()
	name := hello.ServerName
	if name == "" && x.hasIP && hello.Conn != nil {
		if ip := localIP(hello.Conn); ip != "" {
			if c := x.Match(ip); c != nil {
				return c, nil
			}
		}
	}
	if c := x.Lookup(name); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("%w for %q", ErrNoCertificate, name)
}

// Index returns the index being served now.
func (s *Store) Index() *Index { return s.index.Load() }

// Reload re-reads the pairs whose certificate or key file changed (modification
// time, size, or file identity, so that a rename over the file counts) and
// swaps in a new index when a certificate changed. A pair that fails to load
// keeps serving its old certificate: the failure is logged once per change of
// its files and returned (joined with others) by every Reload until the pair
// loads again.
func (s *Store) Reload() (changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, e := range s.entries {
		c, err := s.reloadEntry(e)
		if err != nil {
			errs = append(errs, err)
		}
		changed = changed || c
	}
	if changed {
		s.rebuild()
	}
	return changed, errors.Join(errs...)
}

// reloadEntry reloads one entry when its files changed.
func (s *Store) reloadEntry(e *entry) (changed bool, err error) {
	cs, cerr := os.Stat(e.pair.Cert)
	ks, kerr := os.Stat(e.pair.Key)
	if err := errors.Join(cerr, kerr); err != nil {
		err = fmt.Errorf("certs: %w", err)
		if e.err == nil || e.err.Error() != err.Error() {
			s.logger.Error("certificate reload failed; still serving the old certificate",
				"file", e.pair.Cert, "error", err)
		}
		e.err = err
		return false, err
	}
	if sameFile(cs, e.certStat) && sameFile(ks, e.keyStat) {
		e.failCert, e.failKey, e.err = nil, nil, nil
		return false, nil
	}
	if sameFile(cs, e.failCert) && sameFile(ks, e.failKey) {
		return false, e.err // already logged
	}
	old := e.cert
	if err := e.load(); err != nil {
		e.failCert, e.failKey, e.err = cs, ks, err
		s.logger.Error("certificate reload failed; still serving the old certificate",
			"file", e.pair.Cert, "key", e.pair.Key, "error", err)
		return false, err
	}
	e.failCert, e.failKey, e.err = nil, nil, nil
	if slices.EqualFunc(old.Certificate, e.cert.Certificate, bytes.Equal) {
		// Touched or rewritten with the same content: keep the old value so
		// that nothing downstream sees a change.
		e.cert = old
		return false, nil
	}
	s.logLoaded("certificate reloaded", e)
	return true, nil
}

// Watch polls the files every interval (DefaultWatchInterval when every is
// not positive) and reloads the ones that changed, until ctx is done. Reload
// logs failures, so Watch only has to keep going.
func (s *Store) Watch(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultWatchInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = s.Reload()
		}
	}
}

// rebuild makes a new index from the entries and publishes it.
// The caller holds s.mu, or is NewStore.
func (s *Store) rebuild() {
	certs := make([]*tls.Certificate, len(s.entries))
	for i, e := range s.entries {
		certs[i] = e.cert
	}
	s.index.Store(NewIndex(certs, s.opts))
}

func (s *Store) logLoaded(msg string, e *entry) {
	leaf := e.cert.Leaf
	s.logger.Info(msg, "file", e.pair.Cert, "names", leafNames(leaf), "not_after", leaf.NotAfter)
	if time.Now().After(leaf.NotAfter) {
		s.logger.Warn("certificate has expired; replace it", "file", e.pair.Cert, "not_after", leaf.NotAfter)
	}
}

// load reads the pair's files into e, stamping them before reading so that a
// write racing with the read shows up as a change on the next Reload.
func (e *entry) load() error {
	cs, err := os.Stat(e.pair.Cert)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	ks, err := os.Stat(e.pair.Key)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	c, err := LoadPair(e.pair.Cert, e.pair.Key)
	if err != nil {
		return err
	}
	e.cert, e.certStat, e.keyStat = c, cs, ks
	return nil
}

// sameFile reports whether a and b are stamps of the same, unchanged file.
func sameFile(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) &&
		a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// localIP returns the IP address of the local end of c, or "".
func localIP(c net.Conn) string {
	switch a := c.LocalAddr().(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap().String()
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap().String()
	}
	return ""
}

// orDiscard returns l, or a logger that discards everything when l is nil.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
