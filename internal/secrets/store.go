package secrets

import (
	"context"
	"strings"

	"github.com/berth/berth"
)

// SealingStore is a berth.Store whose container secrets (the extra
// environment a container is created and re-created with) are sealed with
// the keyring: the database holds only ciphertexts bound to the container
// name and variable. Everything else passes through.
type SealingStore struct {
	berth.Store
	Keyring *Keyring
}

// SetContainerSecrets seals the values, then stores them.
func (s SealingStore) SetContainerSecrets(ctx context.Context, name string, env map[string]string) error {
	sealed, err := s.Keyring.SealEnv(name, env)
	if err != nil {
		return err
	}
	return s.Store.SetContainerSecrets(ctx, name, sealed)
}

// ContainerSecrets opens the stored values. A value written before sealing
// existed (no "bsec1:" prefix) is returned as it is and sealed at the next
// SetContainerSecrets or rotation.
func (s SealingStore) ContainerSecrets(ctx context.Context, name string) (map[string]string, error) {
	stored, err := s.Store.ContainerSecrets(ctx, name)
	if err != nil {
		return nil, err
	}
	sealed, legacy := map[string]string{}, map[string]string{}
	for k, v := range stored {
		if strings.HasPrefix(v, version+":") {
			sealed[k] = v
		} else {
			legacy[k] = v
		}
	}
	out, err := s.Keyring.OpenEnv(name, sealed)
	if err != nil {
		return nil, err
	}
	for k, v := range legacy {
		out[k] = v
	}
	return out, nil
}

// RotateContainerSecrets re-seals every container's stored environment
// under the keyring's current key (and seals legacy plaintext). It returns
// how many containers it rewrote.
func (s SealingStore) RotateContainerSecrets(ctx context.Context) (int, error) {
	cs, err := s.Store.ListContainers(ctx, "")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range cs {
		env, err := s.ContainerSecrets(ctx, c.Name)
		if err != nil {
			return n, err
		}
		if len(env) == 0 {
			continue
		}
		if err := s.SetContainerSecrets(ctx, c.Name, env); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
