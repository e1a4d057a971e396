package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink that is safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (*slog.Logger, *syncBuffer) {
	var buf syncBuffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

// storeFixture is a Store over two pairs in a temporary directory.
type storeFixture struct {
	ca     *CA
	dir    string
	a, b   Pair
	store  *Store
	logged *syncBuffer
}

func newStoreFixture(t *testing.T) *storeFixture {
	t.Helper()
	f := &storeFixture{ca: newTestCA(t), dir: t.TempDir()}
	f.a = writePair(t, f.dir, "a", issue(t, f.ca, IssueOptions{}, "a.test"))
	f.b = writePair(t, f.dir, "b", issue(t, f.ca, IssueOptions{}, "b.test", "*.b.test"))
	var logger *slog.Logger
	logger, f.logged = newLogger()
	var err error
	if f.store, err = NewStore([]Pair{f.a, f.b}, logger); err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	return f
}

// serve returns the serial the store serves for sni.
func (f *storeFixture) serve(t *testing.T, sni string) string {
	t.Helper()
	c, err := f.store.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
	if err != nil {
		t.Fatalf("GetCertificate(%q): %v", sni, err)
	}
	return serial(c)
}

func TestStoreServes(t *testing.T) {
	t.Parallel()
	f := newStoreFixture(t)
	a, _ := LoadPair(f.a.Cert, f.a.Key)
	b, _ := LoadPair(f.b.Cert, f.b.Key)
	tests := []struct{ sni, want string }{
		{"a.test", serial(a)},
		{"b.test", serial(b)},
		{"x.b.test", serial(b)},
		{"B.TEST.", serial(b)},
		{"other.test", serial(a)}, // default: the first pair
		{"", serial(a)},
	}
	for _, tt := range tests {
		if got := f.serve(t, tt.sni); got != tt.want {
			t.Errorf("GetCertificate(%q) = %s, want %s", tt.sni, got, tt.want)
		}
	}
	if !strings.Contains(f.logged.String(), "certificate loaded") {
		t.Errorf("no load logged: %s", f.logged)
	}
}

func TestStoreStrictNoCertificate(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	p := writePair(t, t.TempDir(), "a", issue(t, ca, IssueOptions{}, "a.test"))
	s, err := NewStore([]Pair{p}, nil, IndexOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.GetCertificate(&tls.ClientHelloInfo{ServerName: "other.test"})
	if !errors.Is(err, ErrNoCertificate) || err.Error() != `certs: no certificate for "other.test"` {
		t.Fatalf("GetCertificate = %v, want ErrNoCertificate for other.test", err)
	}
}

func TestStoreByLocalIP(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	def := writePair(t, dir, "def", issue(t, ca, IssueOptions{}, "def.test"))
	ipPair := writePair(t, dir, "ip", issue(t, ca, IssueOptions{}, "127.0.0.1"))
	s, err := NewStore([]Pair{def, ipPair}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := LoadPair(ipPair.Cert, ipPair.Key)
	conn := fakeConn{local: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443}}
	c, err := s.GetCertificate(&tls.ClientHelloInfo{Conn: conn})
	if err != nil || serial(c) != serial(want) {
		t.Fatalf("GetCertificate without SNI on 127.0.0.1 = %s, %v; want %s", serial(c), err, serial(want))
	}
}

type fakeConn struct {
	net.Conn
	local net.Addr
}

func (c fakeConn) LocalAddr() net.Addr { return c.local }

func TestNewStoreBadPair(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	good := writePair(t, dir, "good", issue(t, ca, IssueOptions{}, "good.test"))
	bad := Pair{Cert: good.Cert, Key: dir + "/missing.key"}
	if _, err := NewStore([]Pair{good, bad}, nil); err == nil || !strings.Contains(err.Error(), "missing.key") {
		t.Fatalf("NewStore with a missing key = %v, want an error naming missing.key", err)
	}
}

func TestStoreReload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		change      func(t *testing.T, f *storeFixture) // changes a's files
		wantChanged bool
		wantErr     string
		wantNew     bool // a.test is served by the new certificate
		wantLog     string
	}{
		{
			name:        "nothing changed",
			change:      func(*testing.T, *storeFixture) {},
			wantChanged: false,
		},
		{
			name: "new certificate",
			change: func(t *testing.T, f *storeFixture) {
				writePair(t, f.dir, "a", issue(t, f.ca, IssueOptions{}, "a.test"))
			},
			wantChanged: true, wantNew: true, wantLog: "certificate reloaded",
		},
		{
			name: "rewritten in place",
			change: func(t *testing.T, f *storeFixture) {
				c := issue(t, f.ca, IssueOptions{}, "a.test")
				key, _ := encodeKey(c.PrivateKey)
				overwrite(t, f.a.Key, key)
				overwrite(t, f.a.Cert, encodeChain(c.Certificate))
			},
			wantChanged: true, wantNew: true, wantLog: "certificate reloaded",
		},
		{
			name: "touched only",
			change: func(t *testing.T, f *storeFixture) {
				later := time.Now().Add(time.Minute)
				if err := os.Chtimes(f.a.Cert, later, later); err != nil {
					t.Fatal(err)
				}
			},
			wantChanged: false,
		},
		{
			name: "garbage",
			change: func(t *testing.T, f *storeFixture) {
				overwrite(t, f.a.Cert, []byte("garbage"))
			},
			wantErr: "no CERTIFICATE block", wantLog: "certificate reload failed",
		},
		{
			name: "key of another certificate",
			change: func(t *testing.T, f *storeFixture) {
				c := issue(t, f.ca, IssueOptions{}, "a.test")
				key, _ := encodeKey(c.PrivateKey)
				overwrite(t, f.a.Key, key)
			},
			wantErr: "does not match", wantLog: "certificate reload failed",
		},
		{
			name: "removed",
			change: func(t *testing.T, f *storeFixture) {
				if err := os.Remove(f.a.Cert); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "no such file", wantLog: "certificate reload failed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newStoreFixture(t)
			before := f.serve(t, "a.test")
			bSerial := f.serve(t, "b.test")
			tt.change(t, f)

			changed, err := f.store.Reload()
			if changed != tt.wantChanged {
				t.Errorf("Reload changed = %v, want %v", changed, tt.wantChanged)
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Reload error = %v, want %q", err, tt.wantErr)
			}
			if after := f.serve(t, "a.test"); (after != before) != tt.wantNew {
				t.Errorf("a.test served %s before and %s after; want new = %v", before, after, tt.wantNew)
			}
			if got := f.serve(t, "b.test"); got != bSerial {
				t.Errorf("b.test changed from %s to %s", bSerial, got)
			}
			if tt.wantLog != "" && !strings.Contains(f.logged.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, f.logged)
			}
			if tt.wantLog == "certificate reloaded" {
				for _, w := range []string{"file=" + f.a.Cert, "names=[a.test]", "not_after="} {
					if !strings.Contains(f.logged.String(), w) {
						t.Errorf("log lacks %q:\n%s", w, f.logged)
					}
				}
			}

			// A failure is returned again, but logged only once.
			if tt.wantErr != "" {
				n := strings.Count(f.logged.String(), "certificate reload failed")
				if _, err := f.store.Reload(); err == nil {
					t.Error("second Reload forgot the failure")
				}
				if m := strings.Count(f.logged.String(), "certificate reload failed"); m != n {
					t.Errorf("failure logged %d times after a second Reload, want %d", m, n)
				}
				// Repairing the files brings the pair back.
				writePair(t, f.dir, "a", issue(t, f.ca, IssueOptions{}, "a.test"))
				if changed, err := f.store.Reload(); !changed || err != nil {
					t.Errorf("Reload after repair = %v, %v; want true, nil", changed, err)
				}
				if f.serve(t, "a.test") == before {
					t.Error("repaired pair not served")
				}
			}
		})
	}
}

// overwrite rewrites path in place (same inode) and moves its modification
// time forward, so that the change shows even on coarse-grained clocks.
func overwrite(t *testing.T, path string, data []byte) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
	later := fi.ModTime().Add(time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
}

func TestStoreWatch(t *testing.T) {
	t.Parallel()
	f := newStoreFixture(t)
	before := f.serve(t, "a.test")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.store.Watch(ctx, 10*time.Millisecond)
	}()
	writePair(t, f.dir, "a", issue(t, f.ca, IssueOptions{}, "a.test"))
	waitFor(t, 5*time.Second, "the watcher to reload a.test", func() bool { return f.serve(t, "a.test") != before })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}

func TestStoreHandshake(t *testing.T) {
	t.Parallel()
	f := newStoreFixture(t)
	roots := f.ca.RootPool()
	for _, sni := range []string{"a.test", "b.test", "www.b.test"} {
		t.Run(sni, func(t *testing.T) {
			want := f.serve(t, sni)
			state := handshake(t,
				&tls.Config{GetCertificate: f.store.GetCertificate},
				&tls.Config{ServerName: sni, RootCAs: roots})
			if got := state.PeerCertificates[0].SerialNumber.Text(16); got != want {
				t.Errorf("client saw serial %s, want %s", got, want)
			}
			if err := state.PeerCertificates[0].VerifyHostname(sni); err != nil {
				t.Errorf("wrong certificate for %s: %v", sni, err)
			}
		})
	}
}

// handshake runs a TLS handshake over net.Pipe and returns the client's view.
// The server's state is checked too when checkServer is given.
func handshake(t *testing.T, server, client *tls.Config, checkServer ...func(tls.ConnectionState)) tls.ConnectionState {
	t.Helper()
	cc, sc := net.Pipe()
	t.Cleanup(func() { cc.Close(); sc.Close() })
	srv := tls.Server(sc, server)
	serr := make(chan error, 1)
	go func() {
		err := srv.Handshake()
		if err != nil {
			sc.Close() // unblock the client
		}
		serr <- err
	}()
	cli := tls.Client(cc, client)
	cerr := cli.Handshake()
	if cerr != nil {
		cc.Close() // unblock the server
	}
	if err := <-serr; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if cerr != nil {
		t.Fatalf("client handshake: %v", cerr)
	}
	for _, check := range checkServer {
		check(srv.ConnectionState())
	}
	return cli.ConnectionState()
}
