package tlsstage

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"

	"github.com/strata-proxy/strata/layers"
)

// causeError is a short, greppable termination cause ("bad certificate",
// "closed during handshake") that keeps the errors it stands for reachable
// through errors.Is and errors.As.
type causeError struct {
	msg  string
	errs []error
}

func cause(msg string, errs ...error) error { return &causeError{msg: msg, errs: errs} }

func (e *causeError) Error() string   { return e.msg }
func (e *causeError) Unwrap() []error { return e.errs }

// noCertError is what a Server reports when its GetCertificate found no
// certificate for the SNI the client asked for.
type noCertError struct {
	name string
	err  error
}

func (e *noCertError) Error() string {
	if e.name == "" {
		return "no certificate for a hello without SNI"
	}
	return "no certificate for " + e.name
}

func (e *noCertError) Unwrap() error { return e.err }

// handshakeCause reduces a crypto/tls handshake error to the short cause of
// a termination state. peer is the side at the other end of the handshake:
// SideClient for a Server, SideServer for a Client.
func handshakeCause(err error, peer layers.Side) error {
	var (
		nce *noCertError
		rhe tls.RecordHeaderError
		cve *tls.CertificateVerificationError
		oe  *net.OpError
		ae  tls.AlertError
		ne  net.Error
	)
	switch {
	case errors.As(err, &nce):
		return nce
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return cause("timeout", layers.ErrTimeout, err)
	case errors.Is(err, context.Canceled):
		return cause("canceled", err)
	case errors.As(err, &rhe):
		return cause("not tls", layers.ErrNotTLS, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return cause("closed during handshake", err)
	case errors.As(err, &oe) && oe.Op == "remote error":
		return cause(alertCause(oe.Err), err)
	case errors.As(err, &ae):
		return cause(alertCause(ae), err)
	case errors.As(err, &cve):
		if peer == layers.SideClient {
			return cause("bad certificate: "+x509Reason(cve.Err), err)
		}
		switch r := x509Reason(cve.Err); r {
		case "unknown authority":
			return cause(r, err)
		case "expired":
			return cause("certificate expired", err)
		default:
			if strings.HasPrefix(r, "name mismatch") {
				return cause("certificate "+r, err)
			}
			return cause("bad certificate: "+r, err)
		}
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "didn't provide a certificate"):
		return cause("no client certificate", err)
	case strings.Contains(msg, "unsupported versions"), strings.Contains(msg, "protocol version"):
		return cause("protocol version", err)
	}
	return cause(strings.TrimPrefix(msg, "tls: "), err)
}

// alertCause is the text of a TLS alert the peer sent: "bad certificate",
// "unknown certificate authority", "protocol version".
func alertCause(alert error) string {
	s := strings.TrimPrefix(alert.Error(), "tls: ")
	if s == "protocol version not supported" {
		return "protocol version"
	}
	return s
}

// x509Reason is the short reason a certificate chain did not verify.
func x509Reason(err error) string {
	var (
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &ua):
		return "unknown authority"
	case errors.As(err, &he):
		if he.Certificate != nil {
			names := he.Certificate.DNSNames
			for _, ip := range he.Certificate.IPAddresses {
				names = append(names[:len(names):len(names)], ip.String())
			}
			if len(names) > 0 {
				return "name mismatch: want " + he.Host + ", have " + strings.Join(names, ",")
			}
		}
		return "name mismatch: want " + he.Host
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return "expired"
	}
	return strings.TrimPrefix(err.Error(), "x509: ")
}
