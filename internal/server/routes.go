package server

import "net/http"

// routes lists every endpoint of the control plane.
func (s *server) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /health", s.handleHealth)

	mux.Handle("POST /api/users/onboard", s.admin(s.handleOnboard))
	mux.Handle("POST /api/containers/create", s.admin(s.handleCreate))
	mux.Handle("GET /api/containers/{user_id}/status", s.owner(s.handleStatus))
	mux.Handle("POST /api/containers/{user_id}/action", s.owner(s.handleAction))
	mux.Handle("GET /api/containers/{user_id}/logs", s.owner(s.handleLogs))
	mux.Handle("GET /api/admin/containers", s.admin(s.handleAdminContainers))
	mux.Handle("PUT /api/users/{user_id}/plan", s.admin(s.handlePlanChange))

	mux.Handle("POST /api/automation/{user_id}/start", s.owner(s.handleAutomationStart))
	mux.Handle("POST /api/automation/{user_id}/stop", s.owner(s.handleAutomationStop))
	mux.Handle("GET /api/automation/{user_id}/status", s.owner(s.handleAutomationStatus))
	mux.Handle("GET /api/automation/{user_id}/actions", s.owner(s.handleAutomationActions))
	mux.Handle("GET /api/automation/{user_id}/workflows", s.owner(s.handleAutomationWorkflows))

	mux.Handle("GET /api/containers/{user_id}/secrets", s.owner(s.handleSecretsList))
	mux.Handle("PUT /api/containers/{user_id}/secrets/{name}", s.owner(s.handleSecretPut))
	mux.Handle("DELETE /api/containers/{user_id}/secrets/{name}", s.owner(s.handleSecretDelete))
	mux.Handle("GET /api/admin/audit", s.admin(s.handleAdminAudit))
	mux.Handle("/proxy/{user_id}/{rest...}", s.owner(s.proxy.ServeHTTP))

	mux.HandleFunc("GET /ws/admin", s.handleAdminWS)
	mux.HandleFunc("GET /ws/{user_id}", s.handleUserWS)

	mux.HandleFunc("/api/", s.handleNotFound)
}
