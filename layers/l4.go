package layers

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// L4Options is the configuration of an L4Rules: decisions on a
// connection's source address only. It holds no live state.
type L4Options struct {
	// Allow and Deny are source prefixes. Deny wins; when Allow is not
	// empty, only sources inside one of its prefixes pass. 4-in-6 prefixes
	// (::ffff:10.0.0.0/104) are matched as the IPv4 prefix they stand for.
	Allow, Deny []netip.Prefix
	// Rate and Per cap each source IP at Rate new connections per Per
	// (sliding window). Rate 0 turns the check off.
	Rate int
	Per  time.Duration
	// MaxPerSource caps the live connections of each source IP (0 = off).
	MaxPerSource int
}

// L4Stats are the counters of an L4Rules since it was made.
type L4Stats struct {
	Admitted     uint64
	Denied       uint64 // refused by Allow/Deny
	RateLimited  uint64 // refused by Rate/Per
	SourceCapped uint64 // refused by MaxPerSource
	// Untracked counts sources admitted without rate or cap tracking
	// because the source table was full (see L4Rules).
	Untracked uint64
}

// MaxL4Sources bounds the per-source table of an L4Rules.
const MaxL4Sources = 100_000

const l4Shards = 64

// L4Rules applies L4Options to Initiators before any session or buffer
// exists. A refusal costs a prefix scan, one shard lock and no allocation.
//
// Per-source state (rate windows, live counts) lives in a sharded table of
// at most MaxL4Sources entries; entries expire once their source has no
// live connection and its rate window is over. When the table is full, a
// new source is admitted untracked (counted in L4Stats.Untracked) rather
// than refused: refusing would let anyone holding many addresses (an IPv6
// /64) lock every new client out, while the global and frontend ConnLimits
// still bound what untracked sources can take.
//
// A nil *L4Rules admits everything. Safe for concurrent use; a reload
// builds a new one.
type L4Rules struct {
	allow, deny  []netip.Prefix
	rate         int
	per          time.Duration
	maxPerSource int
	logger       *slog.Logger
	now          func() time.Time // time.Now; tests replace it

	admitted, denied, rateLimited, sourceCapped, untracked atomic.Uint64

	logDenied, logRate, logCap logThrottle

	shards [l4Shards]l4Shard
}

type l4Shard struct {
	mu        sync.Mutex
	sources   map[netip.Addr]*l4Source
	lastSweep time.Time
	_         [24]byte // keep hot shard locks on separate cache lines
}

// l4Source is what the table knows of one source IP; its shard's mutex
// guards it.
type l4Source struct {
	windowStart time.Time // start of the current rate window
	cur, prev   int       // admissions in the current and the previous window
	live        int       // live connections (MaxPerSource)
}

// The refusals are shared values so that refusing allocates nothing;
// callers must not modify them.
var (
	errL4Denied    = &StageError{Side: SideClient, Stage: "l4", Phase: PhaseL4, Err: ErrDenied}
	errL4RateLimit = &StageError{Side: SideClient, Stage: "l4", Phase: PhaseL4, Err: ErrRateLimit}
	errL4SourceCap = &StageError{Side: SideClient, Stage: "l4", Phase: PhaseL4, Err: ErrSourceCap}
)

// NewL4Rules builds the rules for o. Refusals are logged on logger at most
// once a second per kind of rule, with the count of those left out (nil
// logger: silent).
func NewL4Rules(o L4Options, logger *slog.Logger) *L4Rules {
	r := &L4Rules{
		allow:        normalizePrefixes(o.Allow),
		deny:         normalizePrefixes(o.Deny),
		rate:         o.Rate,
		per:          o.Per,
		maxPerSource: o.MaxPerSource,
		logger:       logger,
		now:          time.Now,
	}
	if r.rate > 0 && r.per <= 0 {
		r.per = time.Second
	}
	if r.rate <= 0 {
		r.rate = 0
	}
	for i := range r.shards {
		r.shards[i].sources = make(map[netip.Addr]*l4Source)
	}
	return r
}

func normalizePrefixes(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		a := p.Addr().WithZone("")
		if a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		} else {
			p = netip.PrefixFrom(a, p.Bits())
		}
		out = append(out, p.Masked())
	}
	return out
}

// Check decides whether in may proceed. It returns nil when admitted, or a
// *StageError (client l4: …) whose cause is ErrDenied, ErrRateLimit or
// ErrSourceCap. When MaxPerSource is set, an admitted connection holds its
// source's slot until in.Release.
func (r *L4Rules) Check(in *Initiator) error {
	if r == nil {
		return nil
	}
	src := in.Source.Addr().Unmap().WithZone("")
	now := r.now()

	if r.isDenied(src) {
		r.denied.Add(1)
		r.logRefusal(&r.logDenied, now, "deny", in, src)
		return errL4Denied
	}
	if (r.rate == 0 && r.maxPerSource == 0) || !src.IsValid() {
		r.admitted.Add(1)
		return nil
	}

	sh := &r.shards[shardOf(src)]
	sh.mu.Lock()
	s := sh.sources[src]
	if s == nil {
		if now.Sub(sh.lastSweep) >= r.sweepEvery() || len(sh.sources) >= MaxL4Sources/l4Shards {
			r.sweep(sh, now)
		}
		if len(sh.sources) >= MaxL4Sources/l4Shards {
			sh.mu.Unlock()
			r.untracked.Add(1)
			r.admitted.Add(1)
			return nil
		}
		s = &l4Source{windowStart: now}
		sh.sources[src] = s
	}
	if r.maxPerSource > 0 && s.live >= r.maxPerSource {
		sh.mu.Unlock()
		r.sourceCapped.Add(1)
		r.logRefusal(&r.logCap, now, "max_per_source", in, src)
		return errL4SourceCap
	}
	if r.rate > 0 && !s.admitRate(now, r.rate, r.per) {
		sh.mu.Unlock()
		r.rateLimited.Add(1)
		r.logRefusal(&r.logRate, now, "rate", in, src)
		return errL4RateLimit
	}
	if r.maxPerSource > 0 {
		s.live++
	}
	sh.mu.Unlock()

	if r.maxPerSource > 0 {
		in.OnRelease(func() { r.release(src) })
	}
	r.admitted.Add(1)
	return nil
}

func (r *L4Rules) isDenied(src netip.Addr) bool {
	for _, p := range r.deny {
		if p.Contains(src) {
			return true
		}
	}
	if len(r.allow) == 0 {
		return false
	}
	for _, p := range r.allow {
		if p.Contains(src) {
			return false
		}
	}
	return true
}

// admitRate counts one admission if the sliding-window estimate (HAProxy's
// freq_ctr: this window's count plus the previous one's, weighted by how
// much of it still overlaps the last Per) stays under rate.
func (s *l4Source) admitRate(now time.Time, rate int, per time.Duration) bool {
	elapsed := now.Sub(s.windowStart)
	if elapsed >= per {
		if elapsed < 2*per {
			s.prev = s.cur
			s.windowStart = s.windowStart.Add(per)
		} else {
			s.prev = 0
			s.windowStart = now
		}
		s.cur = 0
		elapsed = now.Sub(s.windowStart)
	}
	estimate := s.cur
	if s.prev > 0 {
		estimate += int(int64(s.prev) * int64(per-elapsed) / int64(per))
	}
	if estimate >= rate {
		return false
	}
	s.cur++
	return true
}

func (r *L4Rules) release(src netip.Addr) {
	sh := &r.shards[shardOf(src)]
	sh.mu.Lock()
	if s := sh.sources[src]; s != nil {
		s.live--
		if s.live <= 0 && r.rate == 0 {
			delete(sh.sources, src)
		}
	}
	sh.mu.Unlock()
}

func (r *L4Rules) sweepEvery() time.Duration {
	if r.rate > 0 {
		return 2 * r.per
	}
	return time.Minute
}

// sweep drops the entries of sh that carry no live connection and whose
// rate windows are over. sh.mu must be held.
func (r *L4Rules) sweep(sh *l4Shard, now time.Time) {
	sh.lastSweep = now
	for a, s := range sh.sources {
		if s.live <= 0 && (r.rate == 0 || now.Sub(s.windowStart) >= 2*r.per) {
			delete(sh.sources, a)
		}
	}
}

// Sources is the number of source IPs the table tracks now.
func (r *L4Rules) Sources() int {
	if r == nil {
		return 0
	}
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		n += len(sh.sources)
		sh.mu.Unlock()
	}
	return n
}

// Stats returns the counters.
func (r *L4Rules) Stats() L4Stats {
	if r == nil {
		return L4Stats{}
	}
	return L4Stats{
		Admitted:     r.admitted.Load(),
		Denied:       r.denied.Load(),
		RateLimited:  r.rateLimited.Load(),
		SourceCapped: r.sourceCapped.Load(),
		Untracked:    r.untracked.Load(),
	}
}

func shardOf(a netip.Addr) uint32 {
	// FNV-1a over the 16-byte form: cheap and spreads both families.
	b := a.As16()
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h % l4Shards
}

func (r *L4Rules) logRefusal(t *logThrottle, now time.Time, rule string, in *Initiator, src netip.Addr) {
	if r.logger == nil {
		return
	}
	suppressed, ok := t.allow(now)
	if !ok {
		return
	}
	r.logger.LogAttrs(context.Background(), slog.LevelInfo, "l4 rule refused connection",
		slog.String("rule", rule),
		slog.String("source", src.String()),
		slog.String("listener", in.Listener),
		slog.Uint64("suppressed", suppressed))
}

// logThrottle lets one log line through per second and counts the ones it
// holds back, so that a flood of refusals or accept errors costs an atomic
// add each rather than a log line each.
type logThrottle struct {
	last       atomic.Int64 // unix nanoseconds of the last line let through
	suppressed atomic.Uint64
}

// allow reports whether a line may be written at now and, if so, how many
// were held back since the previous one.
func (t *logThrottle) allow(now time.Time) (suppressed uint64, ok bool) {
	n := now.UnixNano()
	last := t.last.Load()
	if last != 0 && n-last < int64(time.Second) || !t.last.CompareAndSwap(last, n) {
		t.suppressed.Add(1)
		return 0, false
	}
	return t.suppressed.Swap(0), true
}
