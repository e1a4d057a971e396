package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestBufferedLog: lines reach the output within the flush interval, whole,
// and everything buffered is written by Close.
func TestBufferedLog(t *testing.T) {
	var out lockedBuffer
	b := newBufferedLog(&out)
	b.Write([]byte("first line\n"))
	if out.String() != "" {
		t.Fatal("written through at once; want it buffered")
	}
	deadline := time.Now().Add(10 * logFlushInterval)
	for out.String() != "first line\n" {
		if time.Now().After(deadline) {
			t.Fatalf("not flushed after %v: %q", 10*logFlushInterval, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 500; j++ {
				b.Write([]byte(strings.Repeat("x", 99) + "\n"))
			}
		}()
	}
	wg.Wait()
	b.Write([]byte("last line\n"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1+8*500+1 || lines[len(lines)-1] != "last line" {
		t.Fatalf("got %d lines, last %q", len(lines), lines[len(lines)-1])
	}
	for _, l := range lines[1 : len(lines)-1] {
		if len(l) != 99 {
			t.Fatalf("a line was torn: %q", l)
		}
	}
}
