package secrets

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/berth/berth"
)

// MaxValueSize bounds a secret's value.
const MaxValueSize = 4096

// Vault seals tenant secrets into a berth.SecretStore and opens them for
// injection into containers. Values never leave it except through Env.
type Vault struct {
	kr    *Keyring
	store berth.SecretStore
}

// NewVault checks its dependencies.
func NewVault(kr *Keyring, store berth.SecretStore) (*Vault, error) {
	if kr == nil || store == nil {
		return nil, fmt.Errorf("secrets: a Keyring and a SecretStore are required")
	}
	return &Vault{kr: kr, store: store}, nil
}

// Keyring returns the vault's keyring.
func (v *Vault) Keyring() *Keyring { return v.kr }

func aad(userID, name string) []byte {
	return []byte("berth secret\x00" + userID + "\x00" + name)
}

// ValidateName accepts environment variable names [A-Z_][A-Z0-9_]{0,63}
// that are not reserved for Berth (BERTH_*) or the process (PATH, HOME…).
func ValidateName(name string) error {
	ok := len(name) >= 1 && len(name) <= 64 && !(name[0] >= '0' && name[0] <= '9')
	for _, r := range name {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			ok = false
		}
	}
	if !ok {
		return berth.Errorf(berth.ErrInvalid, "secret name must be an environment variable name: [A-Z_][A-Z0-9_]{0,63}")
	}
	switch {
	case strings.HasPrefix(name, "BERTH_"):
		return berth.Errorf(berth.ErrInvalid, "secret names starting with BERTH_ are reserved")
	case name == "PATH" || name == "HOME" || name == "HOSTNAME" || name == "LD_PRELOAD" || name == "LD_LIBRARY_PATH":
		return berth.Errorf(berth.ErrInvalid, "secret name %s is reserved", name)
	}
	return nil
}

// ValidateValue accepts 1..MaxValueSize bytes without NUL or newlines.
func ValidateValue(value string) error {
	if len(value) == 0 || len(value) > MaxValueSize || strings.ContainsAny(value, "\x00\r\n") {
		return berth.Errorf(berth.ErrInvalid, "secret value must be 1 to %d bytes without NUL or line breaks", MaxValueSize)
	}
	return nil
}

// Hint is the masked form of a value that may be shown: the last four
// characters of a value of 16 or more, nothing of a shorter one.
func Hint(value string) string {
	if len(value) < 16 {
		return "****"
	}
	return "****" + value[len(value)-4:]
}

// Put seals and stores a secret and returns its record (without the value).
func (v *Vault) Put(ctx context.Context, userID, name, value string) (berth.Secret, error) {
	if err := ValidateName(name); err != nil {
		return berth.Secret{}, err
	}
	if err := ValidateValue(value); err != nil {
		return berth.Secret{}, err
	}
	ct, err := v.kr.Seal([]byte(value), aad(userID, name))
	if err != nil {
		return berth.Secret{}, err
	}
	s := berth.Secret{UserID: userID, Name: name, Ciphertext: ct, Hint: Hint(value), UpdatedAt: time.Now().UTC()}
	if err := v.store.PutSecret(ctx, s); err != nil {
		return berth.Secret{}, fmt.Errorf("store secret %s: %w", name, err)
	}
	s.Ciphertext = ""
	return s, nil
}

// List returns a user's secrets without their ciphertexts.
func (v *Vault) List(ctx context.Context, userID string) ([]berth.Secret, error) {
	ss, err := v.store.ListSecrets(ctx, userID)
	if err != nil {
		return nil, err
	}
	for i := range ss {
		ss[i].Ciphertext = ""
	}
	return ss, nil
}

// Delete removes a secret; ErrNotFound when there is none.
func (v *Vault) Delete(ctx context.Context, userID, name string) error {
	if err := ValidateName(name); err != nil {
		return berth.Errorf(berth.ErrNotFound, "secret not found")
	}
	return v.store.DeleteSecret(ctx, userID, name)
}

// Env opens a user's secrets as environment variables for a container.
func (v *Vault) Env(ctx context.Context, userID string) (map[string]string, error) {
	ss, err := v.store.ListSecrets(ctx, userID)
	if err != nil {
		return nil, err
	}
	env := make(map[string]string, len(ss))
	for _, s := range ss {
		pt, err := v.kr.Open(s.Ciphertext, aad(s.UserID, s.Name))
		if err != nil {
			// Name the secret, never its value.
			return nil, fmt.Errorf("open secret %s of user %s: %w", s.Name, s.UserID, err)
		}
		env[s.Name] = string(pt)
	}
	return env, nil
}

// Rotate re-seals every stored secret not sealed by the current key with
// the current key; old keys must still be in the keyring. It returns how
// many secrets it re-sealed. Running it again is a no-op.
func (v *Vault) Rotate(ctx context.Context) (int, error) {
	ss, err := v.store.ListSecrets(ctx, "")
	if err != nil {
		return 0, err
	}
	cur := v.kr.CurrentID()
	n := 0
	for _, s := range ss {
		if id, err := KeyOf(s.Ciphertext); err == nil && id == cur {
			continue
		}
		pt, err := v.kr.Open(s.Ciphertext, aad(s.UserID, s.Name))
		if err != nil {
			return n, fmt.Errorf("rotate: open secret %s of user %s: %w", s.Name, s.UserID, err)
		}
		ct, err := v.kr.Seal(pt, aad(s.UserID, s.Name))
		if err != nil {
			return n, err
		}
		s.Ciphertext, s.UpdatedAt = ct, time.Now().UTC()
		if err := v.store.PutSecret(ctx, s); err != nil {
			return n, fmt.Errorf("rotate: store secret %s of user %s: %w", s.Name, s.UserID, err)
		}
		n++
	}
	return n, nil
}
