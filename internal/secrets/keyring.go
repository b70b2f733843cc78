// Package secrets seals tenant secrets with AES-256-GCM under a master key
// and keeps them in a berth.SecretStore.
//
// Ciphertexts are versioned and name the key that sealed them:
//
//	bsec1:<key id>:<base64url(12-byte nonce || ciphertext+tag)>
//
// The key id is the first 8 bytes (hex) of SHA-256 over "berth key id" and
// the key, so it identifies a key without revealing it. The additional
// authenticated data binds each ciphertext to its row (user id and name): a
// ciphertext copied to another tenant or name does not open.
//
// The master key comes from BERTH_MASTER_KEY (base64 of 32 bytes; several
// keys comma-separated, the first sealing, all opening — for rotation), or
// from the file BERTH_MASTER_KEY_FILE, or from <data dir>/master.key, which is
// generated (mode 0600) at first start. A key file holds one base64 key per
// line, the first sealing. Key material is never logged or printed.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// KeySize is the master key length: AES-256.
const KeySize = 32

const version = "bsec1"

// ErrUnknownKey means a ciphertext was sealed by a key the keyring lacks.
var ErrUnknownKey = errors.New("secrets: sealed by an unknown key")

type key struct {
	id   string
	aead cipher.AEAD
}

// Keyring holds the current sealing key and older keys that still open.
// It is safe for concurrent use.
type Keyring struct {
	mu     sync.RWMutex
	keys   []key // keys[0] seals
	reload func() ([][]byte, error)
}

// KeyID returns the id of a key.
func KeyID(k []byte) string {
	h := sha256.New()
	h.Write([]byte("berth key id\x00"))
	h.Write(k)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// NewKeyring returns a keyring; the first key seals.
func NewKeyring(keys ...[]byte) (*Keyring, error) {
	kr := &Keyring{}
	if err := kr.set(keys); err != nil {
		return nil, err
	}
	return kr, nil
}

func (kr *Keyring) set(raw [][]byte) error {
	if len(raw) == 0 {
		return errors.New("secrets: no master key")
	}
	keys := make([]key, 0, len(raw))
	for _, k := range raw {
		if len(k) != KeySize {
			return fmt.Errorf("secrets: a master key must be %d bytes, got %d", KeySize, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return fmt.Errorf("secrets: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return fmt.Errorf("secrets: %w", err)
		}
		keys = append(keys, key{id: KeyID(k), aead: aead})
	}
	kr.mu.Lock()
	kr.keys = keys
	kr.mu.Unlock()
	return nil
}

// CurrentID returns the id of the sealing key.
func (kr *Keyring) CurrentID() string {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.keys[0].id
}

// Seal encrypts plaintext bound to aad under the current key.
func (kr *Keyring) Seal(plaintext, aad []byte) (string, error) {
	kr.mu.RLock()
	k := kr.keys[0]
	kr.mu.RUnlock()
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secrets: nonce: %w", err)
	}
	out := k.aead.Seal(nonce, nonce, plaintext, aad)
	return version + ":" + k.id + ":" + base64.RawURLEncoding.EncodeToString(out), nil
}

// KeyOf returns the id of the key that sealed ct.
func KeyOf(ct string) (string, error) {
	parts := strings.Split(ct, ":")
	if len(parts) != 3 || parts[0] != version || len(parts[1]) != 16 {
		return "", errors.New("secrets: not a berth ciphertext")
	}
	return parts[1], nil
}

// Open decrypts ct bound to aad. ErrUnknownKey when no key of the ring
// sealed it (the ring is re-read from its source once first).
func (kr *Keyring) Open(ct string, aad []byte) ([]byte, error) {
	id, err := KeyOf(ct)
	if err != nil {
		return nil, err
	}
	data, err := base64.RawURLEncoding.DecodeString(ct[len(version)+1+len(id)+1:])
	if err != nil {
		return nil, errors.New("secrets: malformed ciphertext")
	}
	k, ok := kr.find(id)
	if !ok && kr.reload != nil {
		// The key file may have been rotated by `berth secrets rotate`.
		if raw, err := kr.reload(); err == nil {
			_ = kr.set(raw)
		}
		k, ok = kr.find(id)
	}
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrUnknownKey, id)
	}
	if len(data) < k.aead.NonceSize() {
		return nil, errors.New("secrets: malformed ciphertext")
	}
	pt, err := k.aead.Open(nil, data[:k.aead.NonceSize()], data[k.aead.NonceSize():], aad)
	if err != nil {
		return nil, errors.New("secrets: ciphertext does not open (tampered, or bound to another secret)")
	}
	return pt, nil
}

func (kr *Keyring) find(id string) (key, bool) {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	for _, k := range kr.keys {
		if k.id == id {
			return k, true
		}
	}
	return key{}, false
}

// NewKey returns a fresh random master key.
func NewKey() []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return k
}

// EncodeKey is the text form of a key (standard base64).
func EncodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// parseKeys reads base64 keys separated by commas, newlines or spaces.
func parseKeys(s string) ([][]byte, error) {
	var out [][]byte
	var fields []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "#") {
			continue
		}
		fields = append(fields, strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' })...)
	}
	for _, f := range fields {
		k, err := base64.StdEncoding.DecodeString(f)
		if err != nil {
			if k, err = base64.RawURLEncoding.DecodeString(f); err != nil {
				return nil, errors.New("secrets: a master key is not valid base64")
			}
		}
		if len(k) != KeySize {
			return nil, fmt.Errorf("secrets: a master key must decode to %d bytes, got %d", KeySize, len(k))
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("secrets: no master key given")
	}
	return out, nil
}

// Source says where a keyring's keys come from.
type Source struct {
	Env  string // BERTH_MASTER_KEY, "" when unset
	File string // the key file (BERTH_MASTER_KEY_FILE or <data dir>/master.key)
	// Generated is set by Load when it created File.
	Generated bool
}

// Describe names the source without revealing keys.
func (s Source) Describe() string {
	if s.Env != "" {
		return "BERTH_MASTER_KEY"
	}
	return s.File
}

// Load returns the keyring from BERTH_MASTER_KEY, BERTH_MASTER_KEY_FILE or
// <dataDir>/master.key, generating the last (mode 0600) when missing.
func Load(getenv func(string) string, dataDir string) (*Keyring, Source, error) {
	if v := getenv("BERTH_MASTER_KEY"); v != "" {
		raw, err := parseKeys(v)
		if err != nil {
			return nil, Source{}, fmt.Errorf("BERTH_MASTER_KEY: %w", err)
		}
		kr, err := NewKeyring(raw...)
		return kr, Source{Env: "BERTH_MASTER_KEY"}, err
	}
	src := Source{File: getenv("BERTH_MASTER_KEY_FILE")}
	if src.File == "" {
		src.File = filepath.Join(dataDir, "master.key")
		if _, err := os.Stat(src.File); errors.Is(err, os.ErrNotExist) {
			if err := WriteKeyFile(src.File, [][]byte{NewKey()}, true); err != nil {
				return nil, Source{}, err
			}
			src.Generated = true
		}
	}
	read := func() ([][]byte, error) { return ReadKeyFile(src.File) }
	raw, err := read()
	if err != nil {
		return nil, Source{}, err
	}
	kr, err := NewKeyring(raw...)
	if err != nil {
		return nil, Source{}, err
	}
	kr.reload = read
	return kr, src, nil
}

// ReadKeyFile reads a key file, refusing one that others may read.
func ReadKeyFile(path string) ([][]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("master key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key file %s is readable by others (mode %o): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("master key file: %w", err)
	}
	raw, err := parseKeys(string(b))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return raw, nil
}

// WriteKeyFile writes keys (the first seals) to path with mode 0600,
// atomically. With exclusive it fails if path exists.
func WriteKeyFile(path string, keys [][]byte, exclusive bool) error {
	var b strings.Builder
	b.WriteString("# berth master keys (base64); the first seals, all open. Keep secret.\n")
	for _, k := range keys {
		b.WriteString(EncodeKey(k) + "\n")
	}
	if exclusive {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("create master key file: %w", err)
		}
		if _, err := f.WriteString(b.String()); err != nil {
			f.Close()
			return fmt.Errorf("write master key file: %w", err)
		}
		return f.Close()
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write master key file: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
