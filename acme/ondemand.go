package acme

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// ErrNotAllowed is the cause of a handshake refused because the on-demand
// policy does not allow its name.
var ErrNotAllowed = errors.New("acme: on-demand: name not allowed")

// ErrRateLimited is the cause of a handshake refused because an on-demand
// rate limit is reached.
var ErrRateLimited = errors.New("acme: on-demand: rate limit reached")

// maxTrackedNames bounds the per-name attempt records, so that a flood of
// names cannot grow memory without bound; the oldest records go first.
const maxTrackedNames = 10000

// policy decides whether a name may get a certificate on demand. It is
// safe for concurrent use.
type policy struct {
	o      OnDemand
	client *http.Client

	mu      sync.Mutex
	global  window
	perName map[string]*window
}

func newPolicy(o OnDemand) *policy {
	p := &policy{o: o, client: o.AskClient, perName: make(map[string]*window)}
	if p.client == nil {
		p.client = &http.Client{Timeout: defaultAskTimeout}
	}
	return p
}

// decide is certmagic's DecisionFunc: nil allows name. The cheap checks
// come first; a name spends rate budget only once it is allowed.
func (p *policy) decide(ctx context.Context, name string) error {
	if !p.allowed(ctx, name) {
		return fmt.Errorf("%w: %s", ErrNotAllowed, name)
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.perName[name]
	if w == nil {
		if len(p.perName) >= maxTrackedNames {
			p.prune(now)
		}
		w = &window{}
		p.perName[name] = w
	}
	if !w.allows(p.o.PerName, now) {
		return fmt.Errorf("%w: %s: at most %d attempts per %s for one name", ErrRateLimited, name, p.o.PerName.N, p.o.PerName.Per)
	}
	if !p.global.allows(p.o.Rate, now) {
		return fmt.Errorf("%w: %s: at most %d certificates per %s", ErrRateLimited, name, p.o.Rate.N, p.o.Rate.Per)
	}
	w.add(p.o.PerName, now)
	p.global.add(p.o.Rate, now)
	return nil
}

// prune forgets the per-name records that no longer limit anything, and
// all of them when that is not enough.
func (p *policy) prune(now time.Time) {
	for name, w := range p.perName {
		if w.empty(p.o.PerName, now) {
			delete(p.perName, name)
		}
	}
	if len(p.perName) >= maxTrackedNames {
		clear(p.perName)
	}
}

// allowed reports whether name matches the allow list or the ask endpoint
// says yes.
func (p *policy) allowed(ctx context.Context, name string) bool {
	for _, pat := range p.o.Allow {
		if MatchName(pat, name) {
			return true
		}
	}
	if p.o.Ask == "" {
		return false
	}
	u, err := url.Parse(p.o.Ask)
	if err != nil {
		return false
	}
	q := u.Query()
	q.Set("domain", name)
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, defaultAskTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode == http.StatusOK
}

// MatchName reports whether the host name matches pattern: equal ignoring
// case, or pattern "*.example.com" and name one label under example.com.
func MatchName(pattern, name string) bool {
	pattern, name = strings.ToLower(pattern), strings.ToLower(strings.TrimSuffix(name, "."))
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		label, parent, found := strings.Cut(name, ".")
		return found && label != "" && parent == rest
	}
	return pattern == name
}

// window is a sliding-window counter: the times of the events within the
// limit's period, oldest first.
type window struct {
	times []time.Time
}

func (w *window) trim(l Limit, now time.Time) {
	i := 0
	for i < len(w.times) && now.Sub(w.times[i]) >= l.Per {
		i++
	}
	w.times = w.times[i:]
}

func (w *window) allows(l Limit, now time.Time) bool {
	if l.N <= 0 || l.Per <= 0 {
		return true
	}
	w.trim(l, now)
	return len(w.times) < l.N
}

func (w *window) add(l Limit, now time.Time) {
	if l.N > 0 && l.Per > 0 {
		w.times = append(w.times, now)
	}
}

func (w *window) empty(l Limit, now time.Time) bool {
	w.trim(l, now)
	return len(w.times) == 0
}
