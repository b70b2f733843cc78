package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
)

// FuzzWorkloadProtocol: the workload protocol's bodies (reserve, report),
// the start request's config and stdout action lines are parsed without
// panics; failures are client errors.
func FuzzWorkloadProtocol(f *testing.F) {
	f.Add([]byte(`{"action":"like","target":"@a"}`))
	f.Add([]byte(`{"reservation":"r1","success":true,"detail":{"x":1}}`))
	f.Add([]byte(`{"pace_ms":5,"max_actions":5}`))
	f.Add([]byte(`{"action":"` + "\u00ff" + `"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, dst := range []any{&api.ReserveRequest{}, &api.ReportRequest{}} {
			r := httptest.NewRequest("POST", "/v1/actions", bytes.NewReader(body))
			err := decode(httptest.NewRecorder(), r, dst)
			if err != nil && !errors.Is(err, berth.ErrInvalid) && !errors.Is(err, berth.ErrTooLarge) {
				t.Fatalf("decode error of kind %v", err)
			}
		}
		if _, err := mergeConfig(map[string]any{"pace_ms": 200}, json.RawMessage(body)); err != nil && !errors.Is(err, berth.ErrInvalid) {
			t.Fatalf("mergeConfig error of kind %v", err)
		}
		var sa stdoutAction
		if json.Unmarshal(body, &sa) == nil && sa.Action != nil {
			_ = validAction(*sa.Action)
		}
	})
}
