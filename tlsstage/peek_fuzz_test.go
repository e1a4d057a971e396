package tlsstage

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-proxy/strata/layers"
)

var update = flag.Bool("update", false, "rewrite the FuzzParseClientHello seed corpus in testdata/fuzz from crypto/tls's real ClientHellos")

// TestWriteSeeds writes the seed corpus of FuzzParseClientHello, with
// -update: the ClientHellos crypto/tls writes for helloConfigs, in one
// record and split across records. The files are data, not keys.
func TestWriteSeeds(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParseClientHello")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		t.Helper()
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range helloConfigs {
		rec := captureHello(t, tc.cfg)
		write("real-"+tc.name, rec)
		write("real-"+tc.name+"-split", resplit(rec, 128))
	}
	write("synthetic-no-extensions", hello())
	write("synthetic-sni-alpn", hello(sniExt("a.example"), ext(extALPN, []byte{0, 3, 2, 'h', '2'})))
	write("http", []byte("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"))
}

func FuzzParseClientHello(f *testing.F) {
	f.Add(hello(sniExt("seed.example")))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := ParseClientHello(b)
		if err != nil {
			if info.SNI != "" || info.ALPN != nil || info.Len != 0 {
				t.Fatalf("error %v with info %+v", err, info)
			}
			if !errors.Is(err, ErrIncomplete) && !errors.Is(err, ErrMalformed) &&
				!errors.Is(err, layers.ErrNotTLS) && !errors.Is(err, layers.ErrTooLarge) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if info.SNI != "" {
			if h, ok := hostName([]byte(info.SNI)); !ok || h != info.SNI || strings.ToLower(info.SNI) != info.SNI {
				t.Fatalf("SNI %q is not a lowercase host name", info.SNI)
			}
		}
		for _, p := range info.ALPN {
			if p == "" {
				t.Fatal("empty ALPN protocol")
			}
		}
		if info.Len <= 0 || info.Len > len(b) {
			t.Fatalf("Len %d of %d bytes", info.Len, len(b))
		}
		// The hello's own bytes parse the same; every proper prefix is
		// incomplete, never a different answer.
		again, err := ParseClientHello(b[:info.Len])
		if err != nil || !reflect.DeepEqual(again, info) {
			t.Fatalf("reparse of %d bytes: %+v, %v; want %+v", info.Len, again, err, info)
		}
		step := 1
		if info.Len > 512 {
			step = info.Len / 97
		}
		for i := 0; i < info.Len; i += step {
			if _, err := ParseClientHello(b[:i]); !errors.Is(err, ErrIncomplete) {
				t.Fatalf("prefix of %d bytes: %v, want ErrIncomplete", i, err)
			}
		}
		if _, err := ParseClientHello(b[:info.Len-1]); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("prefix of %d bytes: %v, want ErrIncomplete", info.Len-1, err)
		}
	})
}

// TestSeedCorpus keeps the committed corpus honest: every real-* seed
// still parses as a ClientHello.
func TestSeedCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParseClientHello", "real-*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no real-* seeds (%v); run go test -run TestWriteSeeds -update", err)
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitN(string(data), "\n", 3)
			if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
				t.Fatalf("not a corpus file: %q", data[:min(len(data), 40)])
			}
			b, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseClientHello([]byte(b)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
