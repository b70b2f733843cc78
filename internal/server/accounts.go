package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
)

// Browser sessions. The berth_session cookie holds a random session id
// (HttpOnly, SameSite=Lax, Secure over TLS); the store keeps only its
// SHA-256. The CSRF token is derived from the session id, so it needs no
// storage and cannot be guessed without the cookie: it is sent in the
// readable berth_csrf cookie and must come back in X-CSRF-Token on every
// state-changing request authenticated by the cookie.
const (
	sessionCookie   = "berth_session"
	csrfCookie      = "berth_csrf"
	csrfHeader      = "X-CSRF-Token"
	passwordLinkTTL = 24 * time.Hour
	sweepEvery      = time.Hour
)

func stateChanging(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// csrfToken derives a session's CSRF token from its id.
func csrfToken(sessionID string) string {
	sum := sha256.Sum256([]byte("berth-csrf\x00" + sessionID))
	return hex.EncodeToString(sum[:16])
}

// checkCSRF verifies the double-submitted CSRF token of a cookie-
// authenticated request.
func checkCSRF(r *http.Request, sessionID string) error {
	want := csrfToken(sessionID)
	got := r.Header.Get(csrfHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return berth.Errorf(berth.ErrForbidden, "missing or wrong %s header: send the value of the %s cookie", csrfHeader, csrfCookie)
	}
	if c, err := r.Cookie(csrfCookie); err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(want)) != 1 {
		return berth.Errorf(berth.ErrForbidden, "missing or wrong %s cookie: sign in again", csrfCookie)
	}
	return nil
}

// sessionPrincipal resolves a session id from the cookie.
func (s *server) sessionPrincipal(r *http.Request, id string) (principal, error) {
	if len(id) > 256 {
		return principal{}, berth.Errorf(berth.ErrUnauthorized, "invalid session: sign in again")
	}
	hash := HashToken(id)
	se, err := s.store.LookupSession(r.Context(), hash, s.now())
	if errors.Is(err, berth.ErrNotFound) {
		return principal{}, berth.Errorf(berth.ErrUnauthorized, "session expired or signed out: sign in again")
	}
	if err != nil {
		return principal{}, err
	}
	return principal{Admin: se.Admin, UserID: se.UserID, Session: hash}, nil
}

// secure reports whether cookies must be Secure: the request came over TLS
// (directly, or the public URL is https).
func (s *server) secure(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(s.publicURL, "https://")
}

// startSession stores a new session and sets its cookies.
func (s *server) startSession(w http.ResponseWriter, r *http.Request, userID string, admin bool) (api.SessionResponse, error) {
	s.sweep(r.Context())
	id := NewToken("")
	now := s.now().UTC()
	exp := now.Add(s.ttl)
	if err := s.store.CreateSession(r.Context(), berth.Session{Hash: HashToken(id), UserID: userID, Admin: admin, CreatedAt: now, ExpiresAt: exp}); err != nil {
		return api.SessionResponse{}, err
	}
	csrf := csrfToken(id)
	maxAge := int(s.ttl / time.Second)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", MaxAge: maxAge, Expires: exp,
		HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: csrf, Path: "/", MaxAge: maxAge, Expires: exp,
		HttpOnly: false, Secure: s.secure(r), SameSite: http.SameSiteLaxMode})
	return api.SessionResponse{Success: true, Admin: admin, CSRFToken: csrf, ExpiresAt: exp}, nil
}

func (s *server) clearSession(w http.ResponseWriter, r *http.Request) {
	for _, name := range []string{sessionCookie, csrfCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1,
			HttpOnly: name == sessionCookie, Secure: s.secure(r), SameSite: http.SameSiteLaxMode})
	}
}

// sweep removes expired sessions and links, at most once an hour; it runs on
// sign-in, so no goroutine is needed for it.
func (s *server) sweep(ctx context.Context) {
	now := s.now()
	last := s.lastSweep.Load()
	if now.Unix()-last < int64(sweepEvery/time.Second) || !s.lastSweep.CompareAndSwap(last, now.Unix()) {
		return
	}
	if n, err := s.store.DeleteExpired(ctx, now); err != nil {
		s.log.Warn("remove expired sessions", "err", err)
	} else if n > 0 {
		s.log.Info("removed expired sessions and password links", "count", n)
	}
}

func (s *server) handleAuthConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.AuthConfig{Signup: s.signup})
}

// signupPlan is the plan of a self-service account: "free" when the
// operator offers it, else the cheapest.
func (s *server) signupPlan() string {
	plans := s.mgr.Plans()
	if _, ok := plans["free"]; ok {
		return "free"
	}
	return plans.Names()[0]
}

// deriveUserID makes a user id from an email's local part: [A-Za-z0-9_-]
// only, at most 40 characters.
func deriveUserID(email string) string {
	local, _, _ := strings.Cut(email, "@")
	var b strings.Builder
	for _, c := range strings.ToLower(local) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteRune(c)
		case c == '.' || c == '+':
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	id := strings.Trim(b.String(), "_-")
	if id == "" {
		id = "user"
	}
	return id
}

func (s *server) handleSignup(w http.ResponseWriter, r *http.Request) {
	if !s.signup {
		s.fail(w, r, berth.Errorf(berth.ErrForbidden, "self-service sign-up is switched off: ask the operator for an account"))
		return
	}
	var req api.SignupRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := berth.ValidateEmail(req.Email); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := berth.ValidatePassword(req.Password); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.UserID != "" {
		if err := berth.ValidateUserID(req.UserID); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if _, err := s.store.GetCredentialByEmail(r.Context(), req.Email); err == nil {
		s.fail(w, r, berth.Errorf(berth.ErrConflict, "an account with this email exists: log in instead"))
		return
	} else if !errors.Is(err, berth.ErrNotFound) {
		s.fail(w, r, err)
		return
	}
	hash, err := hashPassword(req.Password)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	u := berth.User{ID: req.UserID, Email: req.Email, Plan: s.signupPlan(), CreatedAt: s.now().UTC()}
	created := false
	for attempt := 0; !created; attempt++ {
		switch {
		case req.UserID != "" && attempt > 0:
			s.fail(w, r, berth.Errorf(berth.ErrConflict, "user_id %q is taken", req.UserID))
			return
		case req.UserID == "" && attempt == 0:
			u.ID = deriveUserID(req.Email)
		case req.UserID == "":
			if attempt > 5 {
				s.fail(w, r, berth.Errorf(berth.ErrConflict, "could not find a free user_id: choose one"))
				return
			}
			u.ID = deriveUserID(req.Email) + "-" + NewToken("")[:6]
		}
		var got berth.User
		got, created, err = s.store.CreateUser(r.Context(), u)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if created {
			u = got
		}
	}
	if err := s.store.SetCredential(r.Context(), berth.Credential{UserID: u.ID, Email: u.Email, PasswordHash: hash, UpdatedAt: s.now().UTC()}); err != nil {
		// Someone signed up with this email in between: undo our user.
		if derr := s.store.DeleteUser(context.WithoutCancel(r.Context()), u.ID); derr != nil {
			s.log.Error("signup: remove user after failure", "user", u.ID, "err", derr)
		}
		if errors.Is(err, berth.ErrConflict) {
			err = berth.Errorf(berth.ErrConflict, "an account with this email exists: log in instead")
		}
		s.fail(w, r, err)
		return
	}
	resp, err := s.startSession(w, r, u.ID, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	uj := userJSON(u)
	resp.User = &uj
	s.log.Info("signed up", "user", u.ID)
	writeJSON(w, http.StatusCreated, resp)
}

func (s *server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req api.LoginRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	refused := berth.Errorf(berth.ErrUnauthorized, "wrong email or password")
	if req.Email == "" || req.Password == "" || len(req.Password) > berth.MaxPasswordLen || len(req.Email) > 254 {
		s.fail(w, r, refused)
		return
	}
	c, err := s.store.GetCredentialByEmail(r.Context(), req.Email)
	if err != nil && !errors.Is(err, berth.ErrNotFound) {
		s.fail(w, r, err)
		return
	}
	encoded := c.PasswordHash
	if err != nil {
		encoded = dummyHash() // same work for an unknown email
	}
	ok, verr := verifyPassword(encoded, req.Password)
	if verr != nil {
		s.log.Error("stored password hash is malformed", "user", c.UserID)
	}
	if err != nil || !ok {
		s.fail(w, r, refused)
		return
	}
	u, err := s.store.GetUser(r.Context(), c.UserID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp, err := s.startSession(w, r, u.ID, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	uj := userJSON(u)
	resp.User = &uj
	writeJSON(w, http.StatusOK, resp)
}

func (s *server) handleAdminLogin(w http.ResponseWriter, r *http.Request) {
	var req api.AdminLoginRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	sum := sha256.Sum256([]byte(req.Token))
	if req.Token == "" || subtle.ConstantTimeCompare(sum[:], s.adminHash[:]) != 1 {
		s.fail(w, r, berth.Errorf(berth.ErrUnauthorized, "wrong admin token"))
		return
	}
	resp, err := s.startSession(w, r, "", true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// handleLogout ends the cookie's session. Without a valid session it only
// clears the cookies; with one it needs the CSRF header like any write.
func (s *server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		if p, err := s.sessionPrincipal(r, c.Value); err == nil {
			if err := checkCSRF(r, c.Value); err != nil {
				s.fail(w, r, err)
				return
			}
			if err := s.store.DeleteSession(r.Context(), p.Session); err != nil {
				s.fail(w, r, err)
				return
			}
		}
	}
	s.clearSession(w, r)
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

func (s *server) handleSetPassword(w http.ResponseWriter, r *http.Request) {
	var req api.SetPasswordRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := berth.ValidatePassword(req.Password); err != nil {
		s.fail(w, r, err)
		return
	}
	invalid := berth.Errorf(berth.ErrInvalid, "this password link is invalid, used or expired: ask the operator for a new one")
	if req.Token == "" || len(req.Token) > 256 {
		s.fail(w, r, invalid)
		return
	}
	hash, err := hashPassword(req.Password)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	l, err := s.store.ConsumePasswordLink(r.Context(), HashToken(req.Token), s.now())
	if errors.Is(err, berth.ErrNotFound) {
		s.fail(w, r, invalid)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	u, err := s.store.GetUser(r.Context(), l.UserID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.store.SetCredential(r.Context(), berth.Credential{UserID: u.ID, Email: u.Email, PasswordHash: hash, UpdatedAt: s.now().UTC()}); err != nil {
		if errors.Is(err, berth.ErrConflict) {
			err = berth.Errorf(berth.ErrConflict, "another account signs in with this user's email")
		}
		s.fail(w, r, err)
		return
	}
	// A new password signs every other browser out.
	if err := s.store.DeleteUserSessions(r.Context(), u.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	resp, err := s.startSession(w, r, u.ID, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	uj := userJSON(u)
	resp.User = &uj
	writeJSON(w, http.StatusOK, resp)
}

func (s *server) handleMe(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	me := api.Me{Admin: p.Admin, Auth: "token"}
	if p.Session != "" {
		me.Auth = "session"
		if c, err := r.Cookie(sessionCookie); err == nil {
			me.CSRFToken = csrfToken(c.Value)
		}
	}
	if p.UserID != "" {
		u, err := s.store.GetUser(r.Context(), p.UserID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		uj := userJSON(u)
		me.User = &uj
	}
	writeJSON(w, http.StatusOK, me)
}

// handleMyContainer creates (or starts) the caller's container: onboarding
// for a signed-in user. It answers when the container runs.
func (s *server) handleMyContainer(w http.ResponseWriter, r *http.Request) {
	u, err := s.store.GetUser(r.Context(), principalOf(r).UserID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	_, c, _, err := s.mgr.Onboard(r.Context(), u)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	o, err := s.mgr.Observe(r.Context(), c, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.MyContainerResponse{Success: true, Container: s.containerJSON(r, o)})
}

func (s *server) handleListTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.store.ListUserTokens(r.Context(), principalOf(r).UserID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.TokenList{Tokens: make([]api.TokenInfo, len(ts))}
	for i, t := range ts {
		out.Tokens[i] = api.TokenInfo{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	var req api.CreateTokenRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" || len(req.Name) > 64 || strings.ContainsAny(req.Name, "\x00\r\n") {
		s.fail(w, r, berth.Errorf(berth.ErrInvalid, "name must be 1 to 64 characters on one line"))
		return
	}
	tok := NewToken("bt_")
	hash := HashToken(tok)
	t := berth.Token{ID: hash[:16], Hash: hash, UserID: principalOf(r).UserID, Name: req.Name, CreatedAt: s.now().UTC()}
	if err := s.store.CreateToken(r.Context(), t); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.CreateTokenResponse{Success: true,
		TokenInfo: api.TokenInfo{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt}, Token: tok})
}

func (s *server) handleDeleteToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" || len(id) > 64 {
		s.fail(w, r, berth.Errorf(berth.ErrInvalid, "token id must be 1 to 64 characters"))
		return
	}
	if err := s.store.DeleteToken(r.Context(), principalOf(r).UserID, id); err != nil {
		if errors.Is(err, berth.ErrNotFound) {
			err = berth.Errorf(berth.ErrNotFound, "no token %q", id)
		}
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "id": id})
}

// baseURL is the public URL of the control plane (and the dashboard).
func (s *server) baseURL(r *http.Request) string {
	if s.publicURL != "" {
		return strings.TrimSuffix(s.publicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *server) handlePasswordLink(w http.ResponseWriter, r *http.Request) {
	userID := r.PathValue("user_id")
	if err := berth.ValidateUserID(userID); err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.store.GetUser(r.Context(), userID); err != nil {
		if errors.Is(err, berth.ErrNotFound) {
			err = berth.Errorf(berth.ErrNotFound, "unknown user %q", userID)
		}
		s.fail(w, r, err)
		return
	}
	tok := NewToken("")
	now := s.now().UTC()
	l := berth.PasswordLink{Hash: HashToken(tok), UserID: userID, CreatedAt: now, ExpiresAt: now.Add(passwordLinkTTL)}
	if err := s.store.CreatePasswordLink(r.Context(), l); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.PasswordLinkResponse{Success: true, UserID: userID,
		URL: s.baseURL(r) + "/set-password?token=" + tok, ExpiresAt: l.ExpiresAt})
}

func (s *server) handleAdminUsers(w http.ResponseWriter, r *http.Request) {
	us, err := s.store.ListUsers(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	cs, err := s.store.ListContainers(r.Context(), "")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := map[string]string{}
	for _, c := range cs {
		if c.Index == 1 {
			status[c.UserID] = c.Status
		}
	}
	day := s.now().UTC().Truncate(24 * time.Hour)
	out := api.AdminUserList{Users: make([]api.AdminUser, 0, len(us))}
	for _, u := range us {
		au := api.AdminUser{User: userJSON(u), ContainerStatus: "none"}
		if st, ok := status[u.ID]; ok {
			au.ContainerStatus = st
		}
		counts, err := s.store.CountActions(r.Context(), u.ID, day)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, n := range counts {
			au.ActionsToday += n
		}
		if _, err := s.store.GetCredential(r.Context(), u.ID); err == nil {
			au.HasPassword = true
		} else if !errors.Is(err, berth.ErrNotFound) {
			s.fail(w, r, err)
			return
		}
		out.Users = append(out.Users, au)
	}
	out.Total = len(out.Users)
	writeJSON(w, http.StatusOK, out)
}

// handleDashboard serves the web dashboard for every path no API route
// claims; unknown /api/ and /ws/ paths stay JSON 404s.
func (s *server) handleDashboard(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/ws/") || s.dashboard == nil {
		s.handleNotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, berth.Errorf(berth.ErrNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
		return
	}
	s.dashboard.ServeHTTP(w, r)
}
