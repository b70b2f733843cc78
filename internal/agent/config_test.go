package agent

import (
	"encoding/json"
	"testing"
)

// TestManifestDefaultCapsApply: caps given as manifest defaults (YAML ints)
// are accepted and applied, and a request's value overrides them.
func TestManifestDefaultCapsApply(t *testing.T) {
	t.Parallel()
	m, err := ParseManifest([]byte("w:\n  command: [/bin/true]\n  config: {likes_per_day: 50, pace_ms: 200, note: hi}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  string
		want int
	}{
		{``, 50},
		{`{"likes_per_day": 3}`, 3},
	} {
		cfg, err := mergeConfig(m["w"].Config, json.RawMessage(tc.req))
		if err != nil {
			t.Fatalf("merge %q: %v", tc.req, err)
		}
		caps, err := capsFromConfig(cfg)
		if err != nil {
			t.Fatalf("caps of %q: %v", tc.req, err)
		}
		if caps["like"] != tc.want {
			t.Errorf("request %q: like cap %d, want %d", tc.req, caps["like"], tc.want)
		}
	}
}
