package integration

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/strata-proxy/strata"

// allowed lists, for each top-level package of ours, the top-level packages
// of ours it may import (DESIGN.md §4: imports point down, siblings meet
// through interfaces). A package may always import its own sub-packages.
var allowed = map[string][]string{
	"layers":      {},
	"tlsstage":    {"layers"},
	"session":     {"layers"},
	"certs":       {"layers"},
	"acme":        {"layers", "certs"},
	"cmd":         {"layers", "tlsstage", "session", "certs", "acme"},
	"integration": {"layers", "tlsstage", "session", "certs", "acme", "cmd"},
}

// onlyIn names third-party imports that exactly one of our packages may use.
var onlyIn = map[string]string{
	"github.com/caddyserver/certmagic": "acme",
	"go.uber.org/zap":                  "acme",
}

type listedPackage struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func top(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return "", false
	}
	first, _, _ := strings.Cut(rest, "/")
	return first, true
}

// violations returns one line for each import arrow of pkgs that DESIGN.md
// §4 forbids. Tests may import the layers vocabulary from anywhere.
func violations(pkgs []listedPackage) []string {
	var out []string
	for _, p := range pkgs {
		from, ok := top(p.ImportPath)
		if !ok {
			continue
		}
		may, known := allowed[from]
		if !known {
			out = append(out, fmt.Sprintf("%s: top-level package %q is not in DESIGN.md §4's map", p.ImportPath, from))
			continue
		}
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				if owner, ok := onlyIn[imp]; ok && owner != from {
					out = append(out, fmt.Sprintf("%s imports %s, which only %s may import", p.ImportPath, imp, owner))
				}
				to, ours := top(imp)
				if !ours || to == from || (test && to == "layers") {
					continue
				}
				ok := false
				for _, a := range may {
					ok = ok || a == to
				}
				if !ok {
					out = append(out, fmt.Sprintf("%s imports %s: %s may not import %s (DESIGN.md §4)", p.ImportPath, imp, from, to))
				}
			}
		}
		check(p.Imports, false)
		check(p.TestImports, true)
		check(p.XTestImports, true)
	}
	return out
}

// TestImportRules fails on any import arrow of the module that DESIGN.md §4
// forbids.
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []listedPackage
	for dec.More() {
		var p listedPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 8 {
		t.Fatalf("go list reported %d packages; expected the whole module", len(pkgs))
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

// TestImportRulesCatchWrongArrows proves the checker fails on the arrows it
// is there to catch.
func TestImportRulesCatchWrongArrows(t *testing.T) {
	cases := []struct {
		name string
		pkg  listedPackage
		bad  bool
	}{
		{"layers imports session", listedPackage{ImportPath: module + "/layers", Imports: []string{module + "/session"}}, true},
		{"session imports tlsstage", listedPackage{ImportPath: module + "/session", Imports: []string{module + "/tlsstage"}}, true},
		{"tlsstage imports cmd", listedPackage{ImportPath: module + "/tlsstage", Imports: []string{module + "/cmd/config"}}, true},
		{"certs imports certmagic", listedPackage{ImportPath: module + "/certs", Imports: []string{"github.com/caddyserver/certmagic"}}, true},
		{"new top-level package", listedPackage{ImportPath: module + "/util"}, true},
		{"session test imports certs", listedPackage{ImportPath: module + "/session", TestImports: []string{module + "/certs"}}, true},
		{"cmd imports session", listedPackage{ImportPath: module + "/cmd/graph", Imports: []string{module + "/session", module + "/cmd/config"}}, false},
		{"layers sub-package imports layers", listedPackage{ImportPath: module + "/layers/h1", Imports: []string{module + "/layers"}}, false},
		{"acme imports certmagic", listedPackage{ImportPath: module + "/acme", Imports: []string{"github.com/caddyserver/certmagic"}}, false},
		{"session test imports layers", listedPackage{ImportPath: module + "/session", XTestImports: []string{module + "/layers"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := violations([]listedPackage{tc.pkg})
			if got := len(v) > 0; got != tc.bad {
				t.Fatalf("violations = %q, want bad=%v", v, tc.bad)
			}
		})
	}
}
