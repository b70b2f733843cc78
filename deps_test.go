package berth_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/berth/berth"

// imports returns the module-internal and the third-party imports of the
// non-test files of each package directory.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains(strings.Split(p, "/")[0], ".") {
				out[dir] = append(out[dir], p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestImportRules keeps the arrows pointing down: adapters depend on the
// domain, never the domain on an adapter, never an adapter on another.
func TestImportRules(t *testing.T) {
	if _, err := os.Stat("go.mod"); err != nil {
		t.Skip("run from the module root")
	}
	rules := []struct {
		dir    string // package directory prefix
		forbid []string
		only   []string // when set, the only allowed imports (besides stdlib)
	}{
		{dir: ".", only: []string{}},
		{dir: "api", only: []string{module}},
		{dir: "workload", only: []string{module + "/api"}},
		{dir: "internal/agent", forbid: []string{"/internal/server", "/internal/store", "/internal/driver", "/internal/lifecycle", "/internal/ingest", "/internal/bus"}},
		{dir: "internal/driver/docker", forbid: []string{"/internal/store", "/internal/server", "/internal/bus", "/internal/lifecycle", "/internal/agent"}},
		{dir: "internal/driver/kube", forbid: []string{"/internal/store", "/internal/server", "/internal/bus", "/internal/lifecycle", "/internal/agent", "/internal/driver/docker"}},
		{dir: "internal/store/sqlite", forbid: []string{"/internal/driver", "/internal/server", "/internal/bus", "/internal/lifecycle", "/internal/agent"}},
		{dir: "internal/store/postgres", forbid: []string{"/internal/driver", "/internal/server", "/internal/bus", "/internal/lifecycle", "/internal/agent", "/internal/store/sqlite"}},
		{dir: "internal/bus/redis", forbid: []string{"/internal/driver", "/internal/store", "/internal/server", "/internal/lifecycle", "/internal/bus/inmem"}},
		{dir: "internal/lease", forbid: []string{"/internal/driver", "/internal/store", "/internal/server", "/internal/bus", "/internal/lifecycle", "/internal/ingest"}},
		{dir: "internal/bus/inmem", forbid: []string{"/internal/driver", "/internal/store", "/internal/server", "/internal/lifecycle"}},
		{dir: "internal/lifecycle", forbid: []string{"/internal/driver/", "/internal/store/", "/internal/server", "/internal/bus/"}},
		{dir: "internal/server", forbid: []string{"/internal/driver/", "/internal/store/", "/internal/bus/"}},
		{dir: "internal/ingest", forbid: []string{"/internal/driver/", "/internal/store/", "/internal/server", "/internal/bus/"}},
		{dir: "internal/cli", only: []string{module + "/api"}},
		{dir: "internal/metrics", forbid: []string{"/internal/driver/", "/internal/store/", "/internal/server", "/internal/bus/", "/internal/ingest", "/internal/webhook", "/internal/usage"}},
		{dir: "internal/webhook", forbid: []string{"/internal/driver/", "/internal/store/", "/internal/server", "/internal/bus/", "/internal/ingest", "/internal/metrics", "/internal/usage"}},
		{dir: "internal/usage", forbid: []string{"/internal/driver/", "/internal/store/", "/internal/server", "/internal/bus/", "/internal/ingest", "/internal/metrics", "/internal/webhook"}},
	}
	for dir, imps := range imports(t) {
		for _, r := range rules {
			if dir != r.dir && !(r.dir != "." && strings.HasPrefix(dir, r.dir+"/")) {
				continue
			}
			for _, p := range imps {
				if r.only != nil {
					ok := false
					for _, o := range r.only {
						if p == o {
							ok = true
						}
					}
					if !ok {
						t.Errorf("%s imports %s; it may import only %v and the standard library", dir, p, r.only)
					}
				}
				for _, f := range r.forbid {
					if strings.HasPrefix(p, module+f) {
						t.Errorf("%s imports %s (forbidden: %s)", dir, p, f)
					}
				}
			}
		}
	}
}
