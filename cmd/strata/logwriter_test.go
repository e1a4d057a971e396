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

// slowWriter takes its time over each write, as a file on a busy disk or
// a pipe whose reader lags.
type slowWriter struct {
	lockedBuffer
	delay time.Duration
}

func (s *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(s.delay)
	return s.lockedBuffer.Write(p)
}

// TestBufferedLogWritersDoNotWaitForOutput: while the flusher is stuck in a
// slow write, lines are still taken at once.
func TestBufferedLogWritersDoNotWaitForOutput(t *testing.T) {
	out := &slowWriter{delay: 300 * time.Millisecond}
	b := newBufferedLog(out)
	line := []byte(strings.Repeat("y", 199) + "\n")
	for range logFlushSize / len(line) * 2 { // past logFlushSize: the flusher starts a slow write
		b.Write(line)
	}
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	for range 1000 {
		b.Write(line)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("1000 lines took %v while the output was slow; writers waited for it", d)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != logFlushSize/len(line)*2+1000 {
		t.Fatalf("%d lines written, want %d", n, logFlushSize/len(line)*2+1000)
	}
}
