package main

import (
	"io"
	"sync"
	"time"
)

// logFlushInterval bounds how long a log line may wait in the buffer.
const logFlushInterval = 100 * time.Millisecond

// Buffer sizes: the flusher is woken when the lines collected reach
// logFlushSize; a writer only waits for the output (writing itself) when
// they reach logMaxBuffer, that is when the output cannot keep up.
const (
	logFlushSize = 64 << 10
	logMaxBuffer = 4 << 20
)

// bufferedLog batches log lines into few writes: one access-log line per
// request would otherwise cost a write(2) per request. A Write only appends
// to the buffer under a short lock; the flusher goroutine swaps the buffer
// out and writes it with no lock held that writers wait on, so a request
// never waits for the log's output (a write of hundreds of KiB to a file
// or a pipe) — it did, and that showed in the tail latency. Lines are
// flushed every logFlushInterval, when logFlushSize is reached, and by
// Close. slog handlers write each record with one Write, so lines never
// interleave.
type bufferedLog struct {
	mu  sync.Mutex // guards buf
	buf []byte

	out   sync.Mutex // serializes writes to w, and guards spare
	w     io.Writer
	spare []byte

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newBufferedLog(w io.Writer) *bufferedLog {
	b := &bufferedLog{
		w:     w,
		buf:   make([]byte, 0, logFlushSize*2),
		spare: make([]byte, 0, logFlushSize*2),
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go b.flusher()
	return b
}

func (b *bufferedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf = append(b.buf, p...)
	n := len(b.buf)
	b.mu.Unlock()
	switch {
	case n >= logMaxBuffer:
		return len(p), b.flush() // the output is behind: wait for it
	case n >= logFlushSize:
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// flush writes out the lines collected so far.
func (b *bufferedLog) flush() error {
	b.out.Lock()
	defer b.out.Unlock()
	b.mu.Lock()
	full := b.buf
	b.buf = b.spare[:0]
	b.mu.Unlock()
	var err error
	if len(full) > 0 {
		_, err = b.w.Write(full)
	}
	if cap(full) > logMaxBuffer*2 {
		full = nil // do not keep a buffer a burst grew
	}
	b.spare = full[:0]
	return err
}

func (b *bufferedLog) flusher() {
	defer close(b.done)
	t := time.NewTicker(logFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-b.kick:
		case <-b.stop:
			return
		}
		b.flush()
	}
}

// Close stops the flusher and writes out what is buffered.
func (b *bufferedLog) Close() error {
	close(b.stop)
	<-b.done
	return b.flush()
}
