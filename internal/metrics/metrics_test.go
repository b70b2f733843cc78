package metrics

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berth/berth"
)

// fakeStore is a berth.Store that only lists containers.
type fakeStore struct {
	berth.Store
	cs []berth.Container
}

func (f fakeStore) ListContainers(context.Context, string) ([]berth.Container, error) {
	return f.cs, nil
}

func TestCap(t *testing.T) {
	t.Parallel()
	var ss []ContainerSample
	for i := 0; i < 10; i++ {
		ss = append(ss, ContainerSample{Container: fmt.Sprint("c", i), MemoryBytes: int64(i), CPUPercent: 1})
	}
	top, other, rest := Cap(ss, 4)
	if len(top) != 3 || rest != 7 || other.MemoryBytes != 0+1+2+3+4+5+6 || other.CPUPercent != 7 {
		t.Fatalf("Cap = %d top, other %+v, rest %d", len(top), other, rest)
	}
	if top[0].Container != "c9" || top[2].Container != "c7" {
		t.Errorf("top = %+v, want the most memory first", top)
	}
	if top, _, rest := Cap(ss[:3], 4); len(top) != 3 || rest != 0 {
		t.Errorf("under the cap: %d, %d", len(top), rest)
	}
}

func scrapeText(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func TestMiddlewareLabelsByPattern(t *testing.T) {
	t.Parallel()
	m, err := New(Options{Store: fakeStore{cs: []berth.Container{{Status: "running", Plan: "pro"}, {Status: "running", Plan: "pro"}}}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/containers/{user_id}/status", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) })
	h := m.Middleware(mux)
	for _, u := range []string{"alice", "bob", "carol"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/containers/"+u+"/status", nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/nowhere/"+"x", nil))
	text := scrapeText(t, m)
	for _, want := range []string{
		`berth_http_request_duration_seconds_count{code="404",route="GET /api/containers/{user_id}/status"} 3`,
		`berth_http_request_duration_seconds_count{code="404",route="unmatched"} 1`,
		`berth_containers{plan="pro",state="running"} 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, "alice") {
		t.Error("a raw path reached a label")
	}
}

func TestActionLabelsAreBounded(t *testing.T) {
	t.Parallel()
	m, _ := New(Options{Store: fakeStore{}})
	for i := 0; i < MaxActionTypes+20; i++ {
		m.actionLabel(fmt.Sprint("type", i))
	}
	if got := m.actionLabel("brand_new"); got != "other" {
		t.Errorf("label past the cap = %q, want other", got)
	}
	if got := m.actionLabel("type0"); got != "type0" {
		t.Errorf("known label = %q", got)
	}
}

func TestRepairsAndHealthFailures(t *testing.T) {
	t.Parallel()
	m, _ := New(Options{Store: fakeStore{}})
	m.Repair("recreate")
	m.Repair("recreate")
	m.Repair("orphan_removed")
	m.HealthFailure()
	text := scrapeText(t, m)
	for _, want := range []string{
		`berth_reconciler_repairs_total{kind="recreate"} 2`,
		`berth_reconciler_repairs_total{kind="orphan_removed"} 1`,
		`berth_agent_health_failures_total 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
