package session

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// lbPicks acquires and releases n times for client and counts the servers.
func lbPicks(t testing.TB, b *Backend, client netip.Addr, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		s := lbAcquire(t, b, client)
		got[s.Name()]++
		s.Release()
	}
	return got
}

func TestRoundRobinWeights(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		picks   int
		want    map[string]int
	}{
		{"5 3 1", []int{5, 3, 1}, 900, map[string]int{"s0": 500, "s1": 300, "s2": 100}},
		{"equal", []int{1, 1, 1, 1}, 400, map[string]int{"s0": 100, "s1": 100, "s2": 100, "s3": 100}},
		{"drained", []int{2, 0, 1}, 300, map[string]int{"s0": 200, "s2": 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := lbBackend(t, BackendOptions{Balance: "roundrobin", Servers: lbServers(len(tt.weights), 0, tt.weights...)})
			got := lbPicks(t, b, lbClient, tt.picks)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("picks = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRoundRobinSmooth checks the interleaving: every window of Σweights
// consecutive picks holds each server exactly weight times, and the heavy
// server never runs more than twice in a row with weights 5,3,1.
func TestRoundRobinSmooth(t *testing.T) {
	b := lbBackend(t, BackendOptions{Balance: "roundrobin", Servers: lbServers(3, 0, 5, 3, 1)})
	var seq []string
	for range 90 {
		s := lbAcquire(t, b, lbClient)
		seq = append(seq, s.Name())
		s.Release()
	}
	run := 1
	for i := 1; i < len(seq); i++ {
		if seq[i] == seq[i-1] {
			run++
		} else {
			run = 1
		}
		if run > 2 {
			t.Fatalf("%s picked %d times in a row: %s", seq[i], run, strings.Join(seq[:9], " "))
		}
	}
	for i := 0; i+9 <= len(seq); i++ {
		c := map[string]int{}
		for _, n := range seq[i : i+9] {
			c[n]++
		}
		if c["s0"] != 5 || c["s1"] != 3 || c["s2"] != 1 {
			t.Fatalf("window at %d = %v; want 5,3,1 (sequence %s)", i, c, strings.Join(seq[:18], " "))
		}
	}
}

func TestLeastConn(t *testing.T) {
	t.Run("prefers idle", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Balance: "leastconn", Servers: lbServers(3, 0)})
		s := b.Servers()
		lbAcquire(t, b, lbClient) // ties go round-robin: s0, s1, s2
		lbAcquire(t, b, lbClient)
		for range 10 {
			got := lbAcquire(t, b, lbClient)
			if got != s[2] {
				t.Fatalf("picked %s; want idle s2", got.Name())
			}
			got.Release()
		}
	})
	t.Run("ties round-robin", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Balance: "leastconn", Servers: lbServers(3, 0)})
		if got := lbPicks(t, b, lbClient, 300); got["s0"] != 100 || got["s1"] != 100 || got["s2"] != 100 {
			t.Fatalf("picks = %v; want 100 each", got)
		}
	})
	t.Run("per weight", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Balance: "leastconn", Servers: lbServers(2, 0, 3, 1)})
		got := map[string]int{}
		for range 40 { // held, so load decides
			got[lbAcquire(t, b, lbClient).Name()]++
		}
		if got["s0"] != 30 || got["s1"] != 10 {
			t.Fatalf("held picks = %v; want 30/10 for weights 3/1", got)
		}
	})
}

func TestRandom(t *testing.T) {
	t.Run("spreads held load", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Balance: "random", Servers: lbServers(4, 0)})
		for range 400 {
			lbAcquire(t, b, lbClient)
		}
		for _, s := range b.Servers() {
			// Two choices keep the spread tight: far closer than 100 ± 3σ.
			if a := s.Active(); a < 90 || a > 110 {
				t.Fatalf("%s holds %d of 400; want about 100", s.Name(), a)
			}
		}
	})
	t.Run("honours weights", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Balance: "random", Servers: lbServers(2, 0, 3, 1)})
		got := lbPicks(t, b, lbClient, 8000)
		if r := float64(got["s0"]) / float64(got["s1"]); math.Abs(r-3) > 0.4 {
			t.Fatalf("picks = %v (ratio %.2f); want about 3:1", got, r)
		}
	})
}

func lbIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}) }

func TestSource(t *testing.T) {
	const clients = 2000
	mapping := func(b *Backend) []string {
		out := make([]string, clients)
		for i := range out {
			s := lbAcquire(t, b, lbIP(i))
			out[i] = s.Name()
			s.Release()
		}
		return out
	}
	t.Run("sticky", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Balance: "source", Servers: lbServers(4, 0)})
		for i := range 5 {
			if got := lbPicks(t, b, lbIP(i), 1000); len(got) != 1 {
				t.Fatalf("client %v went to %v; want one server", lbIP(i), got)
			}
		}
		v6 := netip.MustParseAddr("2001:db8::1")
		if got := lbPicks(t, b, v6, 100); len(got) != 1 {
			t.Fatalf("client %v went to %v", v6, got)
		}
		mapped := netip.AddrFrom16(lbIP(7).As16())
		if a, c := lbAcquire(t, b, lbIP(7)), lbAcquire(t, b, mapped); a != c {
			t.Fatalf("%v and %v went to %s and %s", lbIP(7), mapped, a.Name(), c.Name())
		}
	})
	t.Run("spreads by weight", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Balance: "source", Servers: lbServers(4, 0, 1, 1, 1, 2)})
		got := map[string]int{}
		for _, n := range mapping(b) {
			got[n]++
		}
		want := map[string]float64{"s0": 0.2, "s1": 0.2, "s2": 0.2, "s3": 0.4}
		for name, share := range want {
			if f := float64(got[name]) / clients; math.Abs(f-share) > 0.07 {
				t.Fatalf("shares %v; want about %v", got, want)
			}
		}
	})
	removals := []struct {
		name   string
		remove func(t *testing.T) (before, after []string)
	}{
		{"server down", func(t *testing.T) (before, after []string) {
			b := lbBackend(t, BackendOptions{Balance: "source", Servers: lbServers(5, 0)})
			before = mapping(b)
			b.Servers()[2].healthy.Store(false)
			after = mapping(b)
			b.Servers()[2].healthy.Store(true)
			if back := mapping(b); fmt.Sprint(back) != fmt.Sprint(before) {
				t.Fatal("clients did not return when s2 came back")
			}
			return before, after
		}},
		{"server removed from the configuration", func(t *testing.T) (before, after []string) {
			servers := lbServers(5, 0)
			before = mapping(lbBackend(t, BackendOptions{Balance: "source", Servers: servers}))
			after = mapping(lbBackend(t, BackendOptions{Balance: "source", Servers: append(servers[:2:2], servers[3:]...)}))
			return before, after
		}},
	}
	for _, tt := range removals {
		t.Run(tt.name, func(t *testing.T) {
			before, after := tt.remove(t)
			moved := 0
			for i := range before {
				switch {
				case before[i] == "s2":
					moved++
					if after[i] == "s2" {
						t.Fatalf("client %d still on s2", i)
					}
				case after[i] != before[i]:
					t.Fatalf("client %d moved from %s to %s; only s2's clients should move", i, before[i], after[i])
				}
			}
			if f := float64(moved) / clients; f < 0.12 || f > 0.28 {
				t.Fatalf("%d of %d clients moved; want about 1/5", moved, clients)
			}
		})
	}
	t.Run("full server queues its clients", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Balance: "source", Servers: lbServers(3, 1), QueueTimeout: 5 * time.Second})
		held := lbAcquire(t, b, lbClient)
		ch := lbAcquireAsync(t, context.Background(), b, lbClient)
		// Another client takes a free server while the first one waits.
		for i := 1; ; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
			s, _, err := b.Acquire(ctx, lbIP(i), nil)
			cancel()
			if err != nil {
				continue // pinned to the held server too
			}
			if s == held {
				t.Fatal("two slots on a maxconn 1 server")
			}
			break
		}
		held.Release()
		if r := <-ch; r.err != nil || r.s != held {
			t.Fatalf("queued client got %v, %v; want its own server %s", r.s, r.err, held.Name())
		}
	})
}

func TestFirst(t *testing.T) {
	b := lbBackend(t, BackendOptions{Balance: "first", Servers: lbServers(3, 2)})
	s := b.Servers()
	var got []string
	for range 5 {
		got = append(got, lbAcquire(t, b, lbClient).Name())
	}
	if want := "[s0 s0 s1 s1 s2]"; fmt.Sprint(got) != want {
		t.Fatalf("fill order %v; want %s", got, want)
	}
	s[0].Release()
	if n := lbAcquire(t, b, lbClient); n != s[0] {
		t.Fatalf("after a release on s0 picked %s; want s0", n.Name())
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	for _, alg := range lbAlgorithms {
		b.Run(alg, func(b *testing.B) {
			be := lbBackend(b, BackendOptions{Balance: alg, Servers: lbServers(8, 0, 1, 2, 3, 1, 2, 3, 1, 2)})
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s, _, err := be.Acquire(ctx, lbIP(i&1023), nil)
				if err != nil {
					b.Fatal(err)
				}
				s.Release()
				i++
			}
		})
	}
}

func BenchmarkAcquireReleaseParallel(b *testing.B) {
	for _, alg := range lbAlgorithms {
		b.Run(alg, func(b *testing.B) {
			be := lbBackend(b, BackendOptions{Balance: alg, Servers: lbServers(8, 0)})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				i := 0
				for pb.Next() {
					s, _, err := be.Acquire(ctx, lbIP(i&1023), nil)
					if err != nil {
						b.Error(err)
						return
					}
					s.Release()
					i++
				}
			})
		})
	}
}
