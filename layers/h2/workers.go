package h2

import "time"

// The streams of the mux run on goroutines that are kept for the next
// stream once theirs is done: a new goroutine's stack grows (and is
// copied) on nearly every stream, which costs more under load than
// handing the stream to one parked with its stack already grown. A parked
// worker ends after workerIdle without a stream, or at Shutdown.

const (
	workerIdle    = 2 * time.Second
	maxIdleWorker = 256
)

// worker is a parked goroutine's mailbox.
type worker chan *ServerStream

// dispatch runs st's handler on a parked worker, or a new one.
func (s *Server) dispatch(st *ServerStream) {
	s.wmu.Lock()
	if n := len(s.idleWorkers); n > 0 && !s.down {
		w := s.idleWorkers[n-1]
		s.idleWorkers[n-1] = nil
		s.idleWorkers = s.idleWorkers[:n-1]
		s.wmu.Unlock()
		w <- st // buffered: never blocks
		return
	}
	s.wmu.Unlock()
	go s.work(st)
}

// work runs streams until it has been idle for workerIdle.
func (s *Server) work(st *ServerStream) {
	var w worker
	var timer *time.Timer
	for {
		st.sc.runStream(st)
		if w == nil {
			w = make(worker, 1)
			timer = time.NewTimer(workerIdle)
		} else {
			timer.Reset(workerIdle)
		}
		if !s.park(w) {
			return
		}
		select {
		case st = <-w:
			continue
		case <-s.quit:
		case <-timer.C:
		}
		if !s.unpark(w) {
			st = <-w // dispatch took it and is sending a stream
			continue
		}
		return
	}
}

// park lists w as idle; false when the worker should end instead.
func (s *Server) park(w worker) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.down || len(s.idleWorkers) >= maxIdleWorker {
		return false
	}
	s.idleWorkers = append(s.idleWorkers, w)
	return true
}

// unpark removes w from the idle list; false when dispatch took it.
func (s *Server) unpark(w worker) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for i, x := range s.idleWorkers {
		if x == w {
			s.idleWorkers = append(s.idleWorkers[:i], s.idleWorkers[i+1:]...)
			s.idleWorkers = s.idleWorkers[:len(s.idleWorkers):len(s.idleWorkers)]
			return true
		}
	}
	return false
}
