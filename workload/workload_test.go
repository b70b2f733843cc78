package workload_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/berth/berth/api"
	"github.com/berth/berth/workload"
)

// fakeAgent grants n reservations and records reports.
func fakeAgent(t *testing.T, n int, reports *[]api.ReportRequest) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/actions/reserve", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(401)
			w.Write([]byte(`{"error":{"code":"unauthorized","message":"no"}}`))
			return
		}
		if n == 0 {
			w.WriteHeader(429)
			json.NewEncoder(w).Encode(api.ReserveResponse{Reason: "used up"})
			return
		}
		n--
		json.NewEncoder(w).Encode(api.ReserveResponse{Allowed: true, Reservation: "r1", Remaining: n})
	})
	mux.HandleFunc("POST /v1/actions", func(w http.ResponseWriter, r *http.Request) {
		var req api.ReportRequest
		json.NewDecoder(r.Body).Decode(&req)
		*reports = append(*reports, req)
		json.NewEncoder(w).Encode(api.ReportResponse{Seq: int64(len(*reports))})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestClient(t *testing.T) {
	var reports []api.ReportRequest
	srv := fakeAgent(t, 1, &reports)
	env := map[string]string{api.EnvAgentURL: srv.URL, api.EnvRunToken: "tok", api.EnvConfigJSON: `{"likes_per_day":3}`}
	c, err := workload.FromGetenv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Likes int `json:"likes_per_day"`
	}
	if err := c.Config(&cfg); err != nil || cfg.Likes != 3 {
		t.Fatalf("config %+v %v", cfg, err)
	}
	ran := 0
	boom := errors.New("boom")
	if err := c.Do(context.Background(), "like", "@x", func() error { ran++; return boom }); !errors.Is(err, boom) {
		t.Fatalf("Do: %v", err)
	}
	if len(reports) != 1 || reports[0].Success || reports[0].Target != "@x" || string(reports[0].Detail) != `{"error":"boom"}` {
		t.Fatalf("reports %+v", reports)
	}
	err = c.Do(context.Background(), "like", "@y", func() error { ran++; return nil })
	var d *workload.DeniedError
	if !errors.Is(err, workload.ErrDenied) || !errors.As(err, &d) || d.Reason != "used up" || ran != 1 {
		t.Fatalf("denied Do: %v ran=%d", err, ran)
	}
	bad := workload.New(srv.URL, "wrong", nil, nil)
	var pe *workload.ProtocolError
	if _, err := bad.Reserve(context.Background(), "like"); !errors.As(err, &pe) || pe.Status != 401 {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := workload.FromGetenv(func(string) string { return "" }); err == nil {
		t.Fatal("FromGetenv without env succeeded")
	}
}
