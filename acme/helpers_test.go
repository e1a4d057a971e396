package acme_test

import (
	"crypto/x509"
	"testing"
)

type x509Cert = x509.Certificate

func parseChain(t *testing.T, der [][]byte) []*x509.Certificate {
	t.Helper()
	out := make([]*x509.Certificate, len(der))
	for i, d := range der {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = c
	}
	return out
}
