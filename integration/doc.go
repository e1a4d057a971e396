// Package integration holds strata's end-to-end tests: the built pieces
// wired together as cmd assembles them, and the real binary driven over
// loopback sockets with real clients and certificates from the internal CA.
// It has no non-test code beyond the helpers the tests share.
package integration
