package api

import "time"

// SignupRequest is the body of POST /api/auth/signup. UserID is derived
// from the email when empty.
type SignupRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	UserID   string `json:"user_id,omitempty"`
}

// LoginRequest is the body of POST /api/auth/login.
type LoginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// AdminLoginRequest is the body of POST /api/auth/admin-login: the admin
// token is exchanged for an admin session cookie.
type AdminLoginRequest struct {
	Token string `json:"token"`
}

// SetPasswordRequest is the body of POST /api/auth/set-password.
type SetPasswordRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

// SessionResponse answers signup, login, admin-login and set-password. The
// session itself travels in the berth_session cookie; CSRFToken is the value
// to send as X-CSRF-Token (also in the berth_csrf cookie).
type SessionResponse struct {
	Success   bool      `json:"success"`
	User      *User     `json:"user,omitempty"`
	Admin     bool      `json:"admin"`
	CSRFToken string    `json:"csrf_token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// AuthConfig answers GET /api/auth/config (no credentials needed).
type AuthConfig struct {
	Signup bool `json:"signup"` // self-service sign-up is switched on
}

// Me answers GET /api/me.
type Me struct {
	User      *User  `json:"user,omitempty"` // absent for the admin
	Admin     bool   `json:"admin"`
	Auth      string `json:"auth"` // "session" or "token"
	CSRFToken string `json:"csrf_token,omitempty"`
}

// MyContainerResponse answers POST /api/me/container.
type MyContainerResponse struct {
	Success   bool      `json:"success"`
	Container Container `json:"container"`
}

// TokenInfo describes a personal API token; the secret is never listed.
type TokenInfo struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// TokenList answers GET /api/me/tokens.
type TokenList struct {
	Tokens []TokenInfo `json:"tokens"`
}

// CreateTokenRequest is the body of POST /api/me/tokens.
type CreateTokenRequest struct {
	Name string `json:"name"`
}

// CreateTokenResponse answers it; Token is shown this once.
type CreateTokenResponse struct {
	Success bool `json:"success"`
	TokenInfo
	Token string `json:"token"`
}

// PasswordLinkResponse answers POST /api/admin/users/{user_id}/password-link.
type PasswordLinkResponse struct {
	Success   bool      `json:"success"`
	UserID    string    `json:"user_id"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// AdminUser is one row of GET /api/admin/users.
type AdminUser struct {
	User
	HasPassword     bool   `json:"has_password"`
	ContainerStatus string `json:"container_status"` // "none" without a container
	ActionsToday    int    `json:"actions_today"`
}

// AdminUserList answers GET /api/admin/users.
type AdminUserList struct {
	Total int         `json:"total"`
	Users []AdminUser `json:"users"`
}

// PlanRequest is the body of PUT /api/users/{user_id}/plan.
type PlanRequest struct {
	Plan string `json:"plan"`
}

// PlanResponse answers it.
type PlanResponse struct {
	Success bool   `json:"success"`
	UserID  string `json:"user_id"`
	Plan    string `json:"plan"`
}
