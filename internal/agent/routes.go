package agent

import "net/http"

// addRoutes lists every endpoint of the agent.
func (a *Agent) addRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /health", a.handleHealth)

	// Control plane API: the container's secret.
	mux.Handle("POST /automation/start", a.requireSecret(a.handleStart))
	mux.Handle("POST /automation/stop", a.requireSecret(a.handleStop))
	mux.Handle("GET /automation/status", a.requireSecret(a.handleStatus))
	mux.Handle("GET /automation/actions", a.requireSecret(a.handleActions))
	mux.Handle("GET /automation/logs", a.requireSecret(a.handleLogs))
	mux.Handle("GET /automation/workflows", a.requireSecret(a.handleWorkflows))
	mux.Handle("PUT /limits", a.requireSecret(a.handleLimits))
	mux.Handle("GET /ws", a.requireSecret(a.handleWS))

	// Workload protocol: the current run's token, or the secret.
	mux.Handle("POST /v1/actions/reserve", a.requireRunToken(a.handleReserve))
	mux.Handle("POST /v1/actions", a.requireRunToken(a.handleReport))

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errNotFound("no such endpoint: "+r.Method+" "+r.URL.Path))
	})
}
