package berth

import (
	"net/mail"
	"time"
)

// User is a tenant of the operator.
type User struct {
	ID        string    `json:"user_id"`
	Email     string    `json:"email"`
	Plan      string    `json:"plan"`
	CreatedAt time.Time `json:"created_at"`
}

// MaxUserIDLen is the longest user id accepted.
const MaxUserIDLen = 64

// ValidateUserID reports whether id is a valid user id: [A-Za-z0-9_-]{1,64}.
// User ids become parts of Docker object names and URL paths, so nothing else
// is accepted.
func ValidateUserID(id string) error {
	if len(id) == 0 || len(id) > MaxUserIDLen {
		return Errorf(ErrInvalid, "user_id must match [A-Za-z0-9_-]{1,64}")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return Errorf(ErrInvalid, "user_id must match [A-Za-z0-9_-]{1,64}")
		}
	}
	return nil
}

// ValidateEmail reports whether s is a plain address such as a@b.example.
func ValidateEmail(s string) error {
	if len(s) == 0 || len(s) > 254 {
		return Errorf(ErrInvalid, "email must be a valid address")
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return Errorf(ErrInvalid, "email must be a valid address")
	}
	return nil
}

// Token is an API credential. Only its hash is stored.
type Token struct {
	ID        string // public handle for listing and revoking; the store derives one from Hash when empty
	Hash      string // hex SHA-256 of the secret
	UserID    string // empty for the admin token
	Admin     bool   // acts on every user's resources
	Name      string // human label
	CreatedAt time.Time
}
