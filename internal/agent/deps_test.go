package agent

import (
	"go/build"
	"strings"
	"testing"
)

// The agent runs inside tenant containers: it must not depend on the
// control plane's server, store or driver packages.
func TestImports(t *testing.T) {
	t.Parallel()
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		for _, bad := range []string{"/internal/server", "/internal/store", "/internal/driver"} {
			if strings.Contains(imp, "github.com/berth/berth"+bad) {
				t.Errorf("internal/agent imports %s", imp)
			}
		}
	}
}
