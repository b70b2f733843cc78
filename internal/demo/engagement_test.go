package demo_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/berth/berth/api"
	"github.com/berth/berth/internal/agent"
	"github.com/berth/berth/internal/demo"
)

// runDemo runs Engagement in-process against a real in-process agent, using
// the agent secret as the run token.
func runDemo(t *testing.T, perDay int, config string) (api.AutomationStatus, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	a, err := agent.New(agent.Config{DataDir: t.TempDir(), Secret: "sec", ActionsPerDay: perDay,
		AgentURL: "http://" + srv.Listener.Addr().String(), Manifest: agent.DefaultManifest("/unused")})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = a.Handler()
	srv.Start()
	defer a.Close()
	defer srv.Close()
	env := map[string]string{api.EnvAgentURL: srv.URL, api.EnvRunToken: "sec", api.EnvConfigJSON: config}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := demo.Engagement(ctx, nil, func(k string) string { return env[k] }, &out, &out); err != nil {
		t.Fatalf("engagement: %v\n%s", err, out.String())
	}
	return a.Status(), out.String()
}

func TestEngagement(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		perDay  int
		config  string
		want    map[string]int
		wantOut string
	}{
		// Per-workflow caps come from the start request; the agent package tests them with this demo.
		{"small plan", 4, `{"pace_ms":0,"likes_per_day":3}`, map[string]int{"like": 2, "comment": 1, "follow": 1}, "every action type is denied"},
		{"plan quota", 5, `{"pace_ms":0}`, map[string]int{"like": 2, "comment": 1, "follow": 2}, "every action type is denied"},
		{"max actions", -1, `{"pace_ms":0,"max_actions":4}`, nil, "max_actions 4 reached"},
		{"nothing allowed", 0, `{"pace_ms":0}`, map[string]int{}, "every action type is denied"},
		{"whole feed", -1, `{"pace_ms":0}`, map[string]int{"like": 40, "comment": 20, "follow": 30}, "feed walked: 90 simulated actions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, out := runDemo(t, tt.perDay, tt.config)
			if !strings.Contains(out, tt.wantOut) {
				t.Fatalf("output lacks %q:\n%s", tt.wantOut, out)
			}
			for k, v := range tt.want {
				if st.Today[k] != v {
					t.Fatalf("today %v, want %v", st.Today, tt.want)
				}
			}
			if tt.want == nil {
				total := 0
				for _, v := range st.Today {
					total += v
				}
				if total != 4 {
					t.Fatalf("max_actions: %d actions, want 4", total)
				}
			}
		})
	}
}

func TestEngagementRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	env := map[string]string{api.EnvAgentURL: "http://example.com:9000", api.EnvRunToken: "x"}
	err := demo.Engagement(context.Background(), nil, func(k string) string { return env[k] }, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "non-loopback") {
		t.Fatalf("err = %v", err)
	}
}
