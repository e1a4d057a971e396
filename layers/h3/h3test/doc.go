// Package h3test holds what the HTTP/3 tests of several packages share:
// client sockets that make loopback behave like a network (packets lost at
// random, the handshake held back so that 0-RTT data arrives before it
// completes) and a Dial for http3.Transport that puts them under quic-go.
// It is for tests only.
package h3test
