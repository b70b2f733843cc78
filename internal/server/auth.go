package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/berth/berth"
)

// principal is who a request acts as.
type principal struct {
	Admin  bool
	UserID string // set for user tokens and user sessions
	// Session is the stored hash of the session when the request was
	// authenticated by the berth_session cookie, empty for a bearer token.
	Session string
}

// HashToken returns the stored form of a token: hex SHA-256. Tokens are 256
// random bits, so an unsalted fast hash is enough to make a leaked database
// useless for authenticating.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewToken returns a fresh random API token.
func NewToken(prefix string) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b)
}

// bearer extracts the token of an Authorization: Bearer header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// authRequest resolves a request's credentials: the token when one is
// given (from the Authorization header, or ?token= on a WebSocket), else the
// session cookie. A state-changing request authenticated by the cookie must
// carry the session's CSRF token in X-CSRF-Token; a bearer token needs none
// (browsers never send one on their own).
func (s *server) authRequest(r *http.Request, token string) (principal, error) {
	if token != "" {
		return s.authenticate(r, token)
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return principal{}, berth.Errorf(berth.ErrUnauthorized, "missing credentials: send Authorization: Bearer <token> or sign in")
	}
	p, err := s.sessionPrincipal(r, c.Value)
	if err != nil {
		return principal{}, err
	}
	if stateChanging(r.Method) {
		if err := checkCSRF(r, c.Value); err != nil {
			return principal{}, err
		}
	}
	return p, nil
}

// authenticate resolves a token.
func (s *server) authenticate(r *http.Request, token string) (principal, error) {
	if token == "" {
		return principal{}, berth.Errorf(berth.ErrUnauthorized, "missing credentials: send Authorization: Bearer <token> or sign in")
	}
	if len(token) > 256 {
		return principal{}, berth.Errorf(berth.ErrUnauthorized, "invalid token")
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], s.adminHash[:]) == 1 {
		return principal{Admin: true}, nil
	}
	t, err := s.store.LookupToken(r.Context(), hex.EncodeToString(sum[:]))
	if errors.Is(err, berth.ErrNotFound) {
		return principal{}, berth.Errorf(berth.ErrUnauthorized, "invalid token")
	}
	if err != nil {
		return principal{}, err
	}
	return principal{Admin: t.Admin, UserID: t.UserID}, nil
}

// admin wraps a handler that only the admin may call.
func (s *server) admin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authRequest(r, bearer(r))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if !p.Admin {
			s.fail(w, r, berth.Errorf(berth.ErrForbidden, "this endpoint needs the admin token"))
			return
		}
		s.audited(p, h)(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// owner wraps a handler on /…/{user_id}/…: the admin or that user's own
// token. The user id is validated before anything else is done with it.
func (s *server) owner(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authRequest(r, bearer(r))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if err := s.allowed(p, r.PathValue("user_id")); err != nil {
			s.fail(w, r, err)
			return
		}
		s.audited(p, h)(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// signedIn wraps a handler that any credential may call: the admin, a user
// token or a session.
func (s *server) signedIn(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authRequest(r, bearer(r))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		h(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// self wraps a handler on the caller's own account (/api/me/…): a user's
// token or session; the admin has no account of its own.
func (s *server) self(h http.HandlerFunc) http.Handler {
	return s.signedIn(func(w http.ResponseWriter, r *http.Request) {
		if principalOf(r).UserID == "" {
			s.fail(w, r, berth.Errorf(berth.ErrForbidden, "this endpoint acts on a user's own account: sign in as a user"))
			return
		}
		h(w, r)
	})
}

// allowed reports whether p may act on userID's resources.
func (s *server) allowed(p principal, userID string) error {
	if err := berth.ValidateUserID(userID); err != nil {
		return err
	}
	if p.Admin || p.UserID == userID {
		return nil
	}
	return berth.Errorf(berth.ErrForbidden, "these credentials may not act on user %q", userID)
}

// issueUserToken creates and stores a new API token for a user.
func (s *server) issueUserToken(r *http.Request, userID, name string) (string, error) {
	tok := NewToken("bt_")
	err := s.store.CreateToken(r.Context(), berth.Token{Hash: HashToken(tok), UserID: userID, Name: name, CreatedAt: time.Now().UTC()})
	if err != nil {
		return "", err
	}
	return tok, nil
}
