package secrets

import "fmt"

// SealEnv seals every value of env bound to (scope, key): the seam for
// stores that keep a container's extra environment (for re-creation) so that
// they keep only ciphertexts.
func (kr *Keyring) SealEnv(scope string, env map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(env))
	for k, v := range env {
		ct, err := kr.Seal([]byte(v), aad("env:"+scope, k))
		if err != nil {
			return nil, err
		}
		out[k] = ct
	}
	return out, nil
}

// OpenEnv reverses SealEnv. A value that is not a berth ciphertext is an
// error (naming the key, never the value).
func (kr *Keyring) OpenEnv(scope string, sealed map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(sealed))
	for k, ct := range sealed {
		pt, err := kr.Open(ct, aad("env:"+scope, k))
		if err != nil {
			return nil, fmt.Errorf("open %s of %s: %w", k, scope, err)
		}
		out[k] = string(pt)
	}
	return out, nil
}
