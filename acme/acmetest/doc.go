// Package acmetest runs a real ACME CA in-process for tests: Pebble's
// packages (the same code as the pebble binary) behind an HTTPS listener on
// 127.0.0.1, with a DNS server that answers every name with 127.0.0.1, so
// that Pebble's validation authority validates HTTP-01 and TLS-ALPN-01
// against strata's own listeners. It is imported by tests only.
package acmetest
