package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"go.yaml.in/yaml/v4"
)

// maxPEMFile bounds what Parse reads of a certificate, key or CA file; a
// path to a device or a huge file must not hang validation.
const maxPEMFile = 1 << 20

// readPEMFile reads a certificate, key or CA file.
func readPEMFile(path string) ([]byte, error) {
	return readSmallFile(path, maxPEMFile)
}

// readSmallFile reads a regular file of at most limit bytes. It checks the
// type before opening, since opening a FIFO blocks until a writer appears.
func readSmallFile(path string, limit int64) ([]byte, error) {
	if st, err := os.Stat(path); err != nil {
		return nil, unwrapPathError(err)
	} else if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, unwrapPathError(err)
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, unwrapPathError(err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %s", formatSize(limit))
	}
	return data, nil
}

// unwrapPathError drops the path from an fs error: the message already
// names the file as the user wrote it.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkKeyPair loads a certificate chain and its key the way the runtime
// will, and records why it fails at n. what is the key that named the
// certificate ("certificate", "client_cert").
func (p *parser) checkKeyPair(n *yaml.Node, certPath, certName, keyPath, keyName, what string) bool {
	memo := "pair\x00" + certPath + "\x00" + keyPath
	problem, done := p.checked[memo]
	if !done {
		problem = keyPairProblem(certPath, keyPath, keyName)
		p.checked[memo] = problem
	}
	if problem != "" {
		p.errorf(n, "%s %s: %s", what, certName, problem)
		return false
	}
	return true
}

func keyPairProblem(certPath, keyPath, keyName string) string {
	certPEM, err := readPEMFile(certPath)
	if err != nil {
		return err.Error()
	}
	keyPEM, err := readPEMFile(keyPath)
	if err != nil {
		return "key " + keyName + ": " + err.Error()
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return strings.TrimPrefix(err.Error(), "tls: ")
	}
	if pair.Leaf == nil {
		if _, err := x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return err.Error()
		}
	}
	return ""
}

// checkCA records an error at n unless path holds at least one PEM
// certificate and every certificate in it parses.
func (p *parser) checkCA(n *yaml.Node, path, name string) {
	memo := "ca\x00" + path
	problem, done := p.checked[memo]
	if !done {
		problem = caProblem(path)
		p.checked[memo] = problem
	}
	if problem != "" {
		p.errorf(n, "ca %s: %s", name, problem)
	}
}

func caProblem(path string) string {
	data, err := readPEMFile(path)
	if err != nil {
		return err.Error()
	}
	count := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Sprintf("certificate %d: %v", count+1, err)
		}
		count++
	}
	if count == 0 {
		return "no PEM certificates found"
	}
	return ""
}

// checkErrorFile records an error at n unless path is a readable regular
// file of at most maxErrorFile bytes: an error body is sent whole, from
// memory, on a path that must not fail.
func (p *parser) checkErrorFile(n *yaml.Node, path, name string) bool {
	memo := "errorfile\x00" + path
	problem, done := p.checked[memo]
	if !done {
		if _, err := readSmallFile(path, maxErrorFile); err != nil {
			problem = err.Error()
		}
		p.checked[memo] = problem
	}
	if problem != "" {
		p.errorf(n, "error file %s: %s", name, problem)
		return false
	}
	return true
}
