package layers

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func initiatorFrom(t testing.TB, src string) *Initiator {
	t.Helper()
	return &Initiator{
		Listener: "test",
		Source:   netip.MustParseAddrPort(src),
		Dest:     netip.MustParseAddrPort("127.0.0.1:443"),
	}
}

func prefixes(t testing.TB, ss ...string) []netip.Prefix {
	t.Helper()
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

// fakeClock is a settable clock for L4Rules.now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(r *L4Rules) *fakeClock {
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r.now = c.Now
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestL4AllowDeny(t *testing.T) {
	tests := []struct {
		name    string
		opts    L4Options
		src     string
		wantErr error
	}{
		{name: "no rules", src: "192.0.2.1:1000"},
		{name: "deny v4 cidr", opts: L4Options{Deny: prefixes(t, "192.0.2.0/24")}, src: "192.0.2.77:1000", wantErr: ErrDenied},
		{name: "deny v4 outside", opts: L4Options{Deny: prefixes(t, "192.0.2.0/24")}, src: "192.0.3.1:1000"},
		{name: "allow v4 inside", opts: L4Options{Allow: prefixes(t, "10.0.0.0/8")}, src: "10.1.2.3:1"},
		{name: "allow v4 outside", opts: L4Options{Allow: prefixes(t, "10.0.0.0/8")}, src: "11.1.2.3:1", wantErr: ErrDenied},
		{name: "deny wins over allow", opts: L4Options{Allow: prefixes(t, "10.0.0.0/8"), Deny: prefixes(t, "10.9.0.0/16")}, src: "10.9.1.1:1", wantErr: ErrDenied},
		{name: "allow v6 inside", opts: L4Options{Allow: prefixes(t, "2001:db8::/32")}, src: "[2001:db8::1]:443"},
		{name: "allow v6 outside", opts: L4Options{Allow: prefixes(t, "2001:db8::/32")}, src: "[2001:db9::1]:443", wantErr: ErrDenied},
		{name: "v4 prefix does not match v6", opts: L4Options{Deny: prefixes(t, "0.0.0.0/0")}, src: "[2001:db8::1]:443"},
		{name: "deny v6 host", opts: L4Options{Deny: prefixes(t, "2001:db8::1/128")}, src: "[2001:db8::1]:443", wantErr: ErrDenied},
		{name: "4-in-6 source matches v4 prefix", opts: L4Options{Deny: prefixes(t, "192.0.2.0/24")}, src: "[::ffff:192.0.2.5]:1", wantErr: ErrDenied},
		{name: "4-in-6 prefix matches v4 source", opts: L4Options{Deny: prefixes(t, "::ffff:192.0.2.0/120")}, src: "192.0.2.5:1", wantErr: ErrDenied},
		{name: "unmasked prefix", opts: L4Options{Allow: prefixes(t, "10.1.2.3/8")}, src: "10.200.0.1:1"},
		{name: "allow list refuses unknown source", opts: L4Options{Allow: prefixes(t, "10.0.0.0/8")}, src: "0.0.0.0:0", wantErr: ErrDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewL4Rules(tt.opts, nil)
			in := initiatorFrom(t, tt.src)
			if tt.src == "0.0.0.0:0" {
				in.Source = netip.AddrPort{}
			}
			err := r.Check(in)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Check(%s) = %v, want %v", tt.src, err, tt.wantErr)
			}
			if err == nil {
				return
			}
			var se *StageError
			if !errors.As(err, &se) || se.Side != SideClient || se.Stage != "l4" || se.Phase != PhaseL4 {
				t.Fatalf("Check error = %#v, want a client l4 *StageError", err)
			}
			if got, want := err.Error(), "client l4: denied by l4 rule"; got != want {
				t.Fatalf("error text = %q, want %q", got, want)
			}
			if s := r.Stats(); s.Denied != 1 || s.Admitted != 0 {
				t.Fatalf("Stats = %+v, want 1 denied", s)
			}
		})
	}
}

func TestL4NilAdmits(t *testing.T) {
	var r *L4Rules
	if err := r.Check(initiatorFrom(t, "192.0.2.1:1")); err != nil {
		t.Fatalf("nil rules refused: %v", err)
	}
	if r.Stats() != (L4Stats{}) {
		t.Fatalf("nil rules Stats = %+v", r.Stats())
	}
}

func TestL4Rate(t *testing.T) {
	r := NewL4Rules(L4Options{Rate: 3, Per: time.Second}, nil)
	clock := newFakeClock(r)
	admit := func(src string) error {
		t.Helper()
		return r.Check(initiatorFrom(t, src))
	}
	steps := []struct {
		name    string
		advance time.Duration
		src     string
		want    error
	}{
		{name: "1st", src: "192.0.2.1:1"},
		{name: "2nd", src: "192.0.2.1:2"},
		{name: "3rd", src: "192.0.2.1:3"},
		{name: "4th in window", src: "192.0.2.1:4", want: ErrRateLimit},
		{name: "other source unaffected", src: "192.0.2.2:1"},
		{name: "other v6 source unaffected", src: "[2001:db8::2]:1"},
		{name: "still limited late in window", advance: 900 * time.Millisecond, src: "192.0.2.1:5", want: ErrRateLimit},
		// 1.0s: the previous window (3) fully overlaps the last second.
		{name: "next window, sliding estimate full", advance: 100 * time.Millisecond, src: "192.0.2.1:6", want: ErrRateLimit},
		// 1.5s: estimate = 0 + 3*0.5 = 1 → room for one.
		{name: "half a window later", advance: 500 * time.Millisecond, src: "192.0.2.1:7"},
		{name: "idle two windows", advance: 2 * time.Second, src: "192.0.2.1:8"},
		{name: "idle two windows 2", src: "192.0.2.1:9"},
		{name: "idle two windows 3", src: "192.0.2.1:10"},
		{name: "idle two windows 4", src: "192.0.2.1:11", want: ErrRateLimit},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		err := admit(s.src)
		if !errors.Is(err, s.want) || (err == nil) != (s.want == nil) {
			t.Fatalf("%s: Check(%s) = %v, want %v", s.name, s.src, err, s.want)
		}
	}
	if st := r.Stats(); st.RateLimited != 4 || st.Admitted != 9 {
		t.Fatalf("Stats = %+v, want 4 rate limited, 9 admitted", st)
	}
	if got, want := errL4RateLimit.Error(), "client l4: source connection rate exceeded"; got != want {
		t.Fatalf("rate error text = %q, want %q", got, want)
	}
}

func TestL4SourceCapReleased(t *testing.T) {
	r := NewL4Rules(L4Options{MaxPerSource: 2}, nil)
	a1, a2, a3 := initiatorFrom(t, "192.0.2.1:1"), initiatorFrom(t, "192.0.2.1:2"), initiatorFrom(t, "192.0.2.1:3")
	for _, in := range []*Initiator{a1, a2} {
		if err := r.Check(in); err != nil {
			t.Fatalf("Check %s: %v", in.Source, err)
		}
	}
	if err := r.Check(a3); !errors.Is(err, ErrSourceCap) {
		t.Fatalf("3rd connection: %v, want ErrSourceCap", err)
	}
	a3.Release() // a refused Initiator holds nothing
	if err := r.Check(initiatorFrom(t, "[::ffff:192.0.2.2]:1")); err != nil {
		t.Fatalf("other source: %v", err)
	}
	a1.Release()
	if err := r.Check(a3); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	a2.Release()
	a3.Release()
	if st := r.Stats(); st.SourceCapped != 1 || st.Admitted != 4 {
		t.Fatalf("Stats = %+v", st)
	}
	// 192.0.2.2 is still live; 192.0.2.1 left the table with its last connection.
	if n := r.Sources(); n != 1 {
		t.Fatalf("Sources = %d, want 1", n)
	}
}

func TestL4TableBounded(t *testing.T) {
	r := NewL4Rules(L4Options{Rate: 1000, Per: time.Second, MaxPerSource: 10}, nil)
	clock := newFakeClock(r)
	var live []*Initiator
	base := netip.MustParseAddr("2001:db8::").As16()
	for i := 0; i < MaxL4Sources+5000; i++ {
		a := base
		a[12], a[13], a[14], a[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		in := &Initiator{Source: netip.AddrPortFrom(netip.AddrFrom16(a), 1)}
		if err := r.Check(in); err != nil {
			t.Fatalf("source %d refused: %v (a full table must admit untracked)", i, err)
		}
		live = append(live, in)
	}
	if n := r.Sources(); n > MaxL4Sources {
		t.Fatalf("Sources = %d, above the bound %d", n, MaxL4Sources)
	}
	if st := r.Stats(); st.Untracked == 0 {
		t.Fatalf("Stats = %+v, want some untracked admissions", st)
	}
	for _, in := range live {
		in.Release()
	}
	clock.Advance(3 * time.Second)
	// New sources sweep their shard of expired entries.
	for i := 0; i < 10*l4Shards; i++ {
		r.Check(initiatorFrom(t, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), 1).String()))
	}
	if n := r.Sources(); n > 10*l4Shards {
		t.Fatalf("Sources after sweep = %d, want at most %d", n, 10*l4Shards)
	}
}

// countHandler is a slog.Handler that keeps the records it is given.
type countHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

func (h *countHandler) records() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]slog.Record(nil), h.recs...)
}

func attr(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

func TestL4LogsBounded(t *testing.T) {
	h := &countHandler{}
	r := NewL4Rules(L4Options{Deny: prefixes(t, "192.0.2.0/24"), MaxPerSource: 1}, slog.New(h))
	clock := newFakeClock(r)

	for i := 0; i < 1000; i++ {
		r.Check(initiatorFrom(t, "192.0.2.1:1"))
	}
	held := initiatorFrom(t, "198.51.100.1:1")
	if err := r.Check(held); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		r.Check(initiatorFrom(t, "198.51.100.1:2"))
	}
	recs := h.records()
	if len(recs) != 2 {
		t.Fatalf("%d log lines for 1010 refusals of 2 kinds, want 2", len(recs))
	}
	if got := attr(recs[0], "rule"); got != "deny" {
		t.Fatalf("first line rule = %q", got)
	}
	if got := attr(recs[1], "rule"); got != "max_per_source" {
		t.Fatalf("second line rule = %q", got)
	}

	clock.Advance(time.Second)
	r.Check(initiatorFrom(t, "192.0.2.9:1"))
	recs = h.records()
	if len(recs) != 3 {
		t.Fatalf("%d log lines after a second, want 3", len(recs))
	}
	if got := attr(recs[2], "suppressed"); got != "999" {
		t.Fatalf("suppressed = %s, want 999", got)
	}
	if got := attr(recs[2], "source"); got != "192.0.2.9" {
		t.Fatalf("source = %s", got)
	}
	held.Release()
}

func TestL4Concurrent(t *testing.T) {
	r := NewL4Rules(L4Options{MaxPerSource: 4, Rate: 1 << 20, Per: time.Second}, nil)
	var over atomic.Int32
	var live [8]atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				k := (g + i) % len(live)
				in := initiatorFrom(t, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(k)}), 1).String())
				if r.Check(in) != nil {
					continue
				}
				if live[k].Add(1) > 4 {
					over.Add(1)
				}
				live[k].Add(-1)
				in.Release()
			}
		}()
	}
	wg.Wait()
	if over.Load() != 0 {
		t.Fatalf("MaxPerSource exceeded %d times", over.Load())
	}
	if n := r.Sources(); n != len(live) {
		t.Fatalf("Sources = %d, want %d (rate windows keep entries)", n, len(live))
	}
}

func TestL4CheckAllocs(t *testing.T) {
	tests := []struct {
		name string
		opts L4Options
		src  string
	}{
		{name: "denied", opts: L4Options{Deny: prefixes(t, "192.0.2.0/24")}, src: "192.0.2.1:1"},
		{name: "admitted by allow", opts: L4Options{Allow: prefixes(t, "192.0.2.0/24")}, src: "192.0.2.1:1"},
		{name: "rate limited", opts: L4Options{Rate: 1, Per: time.Hour}, src: "192.0.2.1:1"},
		{name: "source capped", opts: L4Options{MaxPerSource: 1}, src: "192.0.2.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewL4Rules(tt.opts, nil)
			r.Check(initiatorFrom(t, tt.src)) // fill the window or the cap
			in := initiatorFrom(t, tt.src)
			if n := testing.AllocsPerRun(100, func() { r.Check(in) }); n != 0 {
				t.Fatalf("Check allocates %.1f times, want 0", n)
			}
		})
	}
}

func BenchmarkL4Check(b *testing.B) {
	r := NewL4Rules(L4Options{Deny: prefixes(b, "192.0.2.0/24"), Rate: 1 << 30, Per: time.Second}, nil)
	in := initiatorFrom(b, "198.51.100.7:1")
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Check(in); err != nil {
			b.Fatal(err)
		}
	}
}
