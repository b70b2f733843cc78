package server

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestOpenAPIDescribesEveryRoute checks that every route registered in
// routes.go is described in openapi.json and that every described route is
// registered. A route added to routes.go fails here until it is described.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("routes.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`mux\.Handle(?:Func)?\("([A-Z]+) (/[^"]*)"`)
	registered := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		registered[m[1]+" "+m[2]] = true
	}
	if len(registered) < 10 {
		t.Fatalf("found only %d routes in routes.go: has its form changed?", len(registered))
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	described := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				described[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	var missing, extra []string
	for r := range registered {
		if !described[r] {
			method, path, _ := strings.Cut(r, " ")
			missing = append(missing, r+` (add paths["`+path+`"]["`+strings.ToLower(method)+`"] to internal/server/openapi.json)`)
		}
	}
	for d := range described {
		if !registered[d] {
			extra = append(extra, d+" (described in internal/server/openapi.json but not registered in routes.go)")
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, m := range missing {
		t.Errorf("route %s", m)
	}
	for _, e := range extra {
		t.Errorf("route %s", e)
	}
}
