package berth

import "time"

// Credential is a user's password login: the address they sign in with and
// an encoded password hash (argon2id, with its parameters and salt).
type Credential struct {
	UserID       string
	Email        string // compared case-insensitively; unique among credentials
	PasswordHash string
	UpdatedAt    time.Time
}

// Session is a signed-in browser. Only the hash of its random id is stored.
type Session struct {
	Hash      string // hex SHA-256 of the session id
	UserID    string // empty for an admin session
	Admin     bool
	CreatedAt time.Time
	ExpiresAt time.Time
}

// PasswordLink is a one-time permission to set a user's password. Only the
// hash of its random token is stored.
type PasswordLink struct {
	Hash      string // hex SHA-256 of the link's token
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// MinPasswordLen is the shortest password accepted.
const MinPasswordLen = 10

// MaxPasswordLen bounds the work a password costs to hash.
const MaxPasswordLen = 256

// ValidatePassword reports whether pw is acceptable: 10 to 256 bytes.
func ValidatePassword(pw string) error {
	if len(pw) < MinPasswordLen {
		return Errorf(ErrInvalid, "password must be at least %d characters", MinPasswordLen)
	}
	if len(pw) > MaxPasswordLen {
		return Errorf(ErrInvalid, "password must be at most %d characters", MaxPasswordLen)
	}
	return nil
}
