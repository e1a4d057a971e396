package layers

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestConnLimit(t *testing.T) {
	tests := []struct {
		name    string
		limit   *ConnLimit
		take    int
		wantTry bool // TryAcquire after take slots
	}{
		{name: "nil is unlimited", limit: nil, take: 1000, wantTry: true},
		{name: "zero is unlimited", limit: NewConnLimit(0), take: 1000, wantTry: true},
		{name: "below cap", limit: NewConnLimit(3), take: 2, wantTry: true},
		{name: "at cap", limit: NewConnLimit(3), take: 3, wantTry: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := 0; i < tt.take; i++ {
				if err := tt.limit.Acquire(context.Background()); err != nil {
					t.Fatalf("Acquire %d: %v", i, err)
				}
			}
			if tt.limit != nil && tt.limit.InUse() != tt.take {
				t.Fatalf("InUse = %d, want %d", tt.limit.InUse(), tt.take)
			}
			got := tt.limit.TryAcquire()
			if got != tt.wantTry {
				t.Fatalf("TryAcquire = %v, want %v", got, tt.wantTry)
			}
			n := tt.take
			if got {
				n++
			}
			for i := 0; i < n; i++ {
				tt.limit.Release()
			}
			if tt.limit.InUse() != 0 {
				t.Fatalf("InUse after release = %d, want 0", tt.limit.InUse())
			}
		})
	}
}

func TestConnLimitAcquireBlocks(t *testing.T) {
	l := NewConnLimit(1)
	if !l.TryAcquire() {
		t.Fatal("TryAcquire on an empty limit failed")
	}
	got := make(chan error, 1)
	go func() { got <- l.Acquire(context.Background()) }()
	select {
	case err := <-got:
		t.Fatalf("Acquire returned %v while the limit was full", err)
	case <-time.After(50 * time.Millisecond):
	}
	l.Release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Acquire after Release: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Acquire still blocked after Release")
	}
	if l.InUse() != 1 {
		t.Fatalf("InUse = %d, want 1", l.InUse())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire on full limit with deadline = %v, want deadline exceeded", err)
	}
	if l.InUse() != 1 {
		t.Fatalf("InUse after a failed Acquire = %d, want 1", l.InUse())
	}
	l.Release()
}

func TestConnLimitReleaseWithoutAcquirePanics(t *testing.T) {
	for _, l := range []*ConnLimit{NewConnLimit(0), NewConnLimit(2)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Release without Acquire on max=%d did not panic", l.Max())
				}
			}()
			l.Release()
		}()
	}
}
