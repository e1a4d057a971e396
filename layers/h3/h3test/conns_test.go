package h3test

import (
	"net"
	"testing"
	"time"
)

// pair returns two connected loopback UDP sockets: a (to wrap) and b.
func pair(t *testing.T) (a, b net.PacketConn) {
	t.Helper()
	var err error
	if a, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if b, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// arrives reports whether one datagram reaches pc within a short wait.
func arrives(pc net.PacketConn) bool {
	pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, _, err := pc.ReadFrom(make([]byte, 64))
	return err == nil
}

func TestLossyConn(t *testing.T) {
	a, b := pair(t)
	all := &LossyConn{PacketConn: a, Loss: 1}
	all.WriteTo([]byte("x"), b.LocalAddr())
	if arrives(b) || all.Dropped.Load() != 1 {
		t.Errorf("Loss 1: a datagram arrived or was not counted (%d dropped)", all.Dropped.Load())
	}
	none := &LossyConn{PacketConn: a, Loss: 0}
	none.WriteTo([]byte("x"), b.LocalAddr())
	if !arrives(b) || none.Dropped.Load() != 0 {
		t.Error("Loss 0: a datagram was dropped")
	}
}

func TestHoldHandshake(t *testing.T) {
	a, b := pair(t)
	h := &HoldHandshake{PacketConn: a, Hold: time.Minute}
	initial := []byte{0xc0, 1, 2, 3}
	h.WriteTo(initial, b.LocalAddr())
	if !arrives(b) {
		t.Fatal("an Initial packet before the server answered was held")
	}
	b.WriteTo([]byte("answer"), a.LocalAddr())
	a.SetReadDeadline(time.Now().Add(time.Second))
	if _, _, err := h.ReadFrom(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]byte{initial, {0xe0, 1}} { // Initial, Handshake
		h.WriteTo(p, b.LocalAddr())
		if arrives(b) {
			t.Errorf("packet %#x went out while holding", p[0])
		}
	}
	h.WriteTo([]byte{0x40, 1}, b.LocalAddr()) // a short header (1-RTT)
	if !arrives(b) {
		t.Error("a 1-RTT packet was held")
	}
}
