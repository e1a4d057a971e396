package acme

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestMatchName(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"a.example.com", "a.example.com", true},
		{"a.example.com", "A.Example.com.", true},
		{"a.example.com", "b.example.com", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "a.b.example.com", false},
		{"*.example.com", ".example.com", false},
	}
	for _, tc := range cases {
		if got := MatchName(tc.pattern, tc.name); got != tc.want {
			t.Errorf("MatchName(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func TestPolicyPerNameLimit(t *testing.T) {
	p := newPolicy(OnDemand{Allow: []string{"*.example.com"}, PerName: Limit{N: 2, Per: 150 * time.Millisecond}})
	ctx := context.Background()
	for i := range 2 {
		if err := p.decide(ctx, "a.example.com"); err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	if err := p.decide(ctx, "a.example.com"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("third attempt: %v, want ErrRateLimited", err)
	}
	if err := p.decide(ctx, "b.example.com"); err != nil {
		t.Fatalf("another name is limited too: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := p.decide(ctx, "a.example.com"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestPolicyRefusedNamesSpendNoBudget(t *testing.T) {
	p := newPolicy(OnDemand{Allow: []string{"ok.example.com"}, Rate: Limit{N: 1, Per: time.Hour}})
	ctx := context.Background()
	for range 5 {
		if err := p.decide(ctx, "bad.example.com"); !errors.Is(err, ErrNotAllowed) {
			t.Fatalf("err = %v", err)
		}
	}
	if err := p.decide(ctx, "ok.example.com"); err != nil {
		t.Fatalf("allowed name refused after refused ones: %v", err)
	}
}
