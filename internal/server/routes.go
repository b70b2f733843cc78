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
	mux.Handle("GET /api/containers/{user_id}/events", s.owner(s.handleEvents))
	mux.Handle("GET /api/admin/containers", s.admin(s.handleAdminContainers))
	mux.Handle("GET /api/admin/actions", s.admin(s.handleAdminActions))
	mux.Handle("PUT /api/users/{user_id}/plan", s.admin(s.handlePlanChange))
	mux.Handle("GET /api/admin/users", s.admin(s.handleAdminUsers))
	mux.Handle("POST /api/admin/users/{user_id}/password-link", s.admin(s.handlePasswordLink))

	mux.HandleFunc("GET /api/auth/config", s.handleAuthConfig)
	mux.HandleFunc("POST /api/auth/signup", s.handleSignup)
	mux.HandleFunc("POST /api/auth/login", s.handleLogin)
	mux.HandleFunc("POST /api/auth/admin-login", s.handleAdminLogin)
	mux.HandleFunc("POST /api/auth/logout", s.handleLogout)
	mux.HandleFunc("POST /api/auth/set-password", s.handleSetPassword)
	mux.Handle("GET /api/me", s.signedIn(s.handleMe))
	mux.Handle("POST /api/me/container", s.self(s.handleMyContainer))
	mux.Handle("GET /api/me/tokens", s.self(s.handleListTokens))
	mux.Handle("POST /api/me/tokens", s.self(s.handleCreateToken))
	mux.Handle("DELETE /api/me/tokens/{id}", s.self(s.handleDeleteToken))

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

	// Operator tools (ops.go).
	mux.HandleFunc("GET /api/openapi.json", s.handleOpenAPI)
	mux.Handle("GET /metrics", s.admin(s.handleMetrics))
	mux.Handle("GET /api/admin/usage", s.admin(s.handleUsage))
	mux.Handle("POST /api/admin/webhooks", s.admin(s.handleWebhookCreate))
	mux.Handle("GET /api/admin/webhooks", s.admin(s.handleWebhookList))
	mux.Handle("DELETE /api/admin/webhooks/{id}", s.admin(s.handleWebhookDelete))
	mux.Handle("GET /api/admin/webhooks/{id}/deliveries", s.admin(s.handleWebhookDeliveries))
	mux.Handle("POST /api/users/{user_id}/webhooks", s.owner(s.handleWebhookCreate))
	mux.Handle("GET /api/users/{user_id}/webhooks", s.owner(s.handleWebhookList))
	mux.Handle("DELETE /api/users/{user_id}/webhooks/{id}", s.owner(s.handleWebhookDelete))
	mux.Handle("GET /api/users/{user_id}/webhooks/{id}/deliveries", s.owner(s.handleWebhookDeliveries))

	mux.HandleFunc("/api/", s.handleNotFound)
	mux.HandleFunc("/", s.handleDashboard)
}
