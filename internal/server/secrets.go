package server

import (
	"errors"
	"net/http"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
	"github.com/berth/berth/internal/secrets"
)

// secretsApply tells clients when a change reaches the containers.
const secretsApply = "at the next creation or re-creation of the user's containers (environment variables cannot change in a running container)"

// syncKept updates the environment kept for re-creating the user's
// existing containers (sealed by the store), so the reconciler's and a plan
// change's re-creations use the new value; set == "" with del removes it.
func (s *server) syncKept(r *http.Request, userID, name, value string, del bool) error {
	cs, err := s.store.ListContainers(r.Context(), userID)
	if err != nil {
		return err
	}
	for _, c := range cs {
		env, err := s.store.ContainerSecrets(r.Context(), c.Name)
		if err != nil {
			return err
		}
		if del {
			if _, ok := env[name]; !ok {
				continue
			}
			delete(env, name)
		} else {
			env[name] = value
		}
		if err := s.store.SetContainerSecrets(r.Context(), c.Name, env); err != nil && !errors.Is(err, berth.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (s *server) vaultOr(w http.ResponseWriter, r *http.Request) *secrets.Vault {
	if s.vault == nil {
		s.fail(w, r, berth.Errorf(berth.ErrUnavailable, "secrets are not configured"))
	}
	return s.vault
}

func (s *server) handleSecretsList(w http.ResponseWriter, r *http.Request) {
	v := s.vaultOr(w, r)
	if v == nil {
		return
	}
	userID := r.PathValue("user_id")
	if _, err := s.store.GetUser(r.Context(), userID); err != nil {
		s.fail(w, r, err)
		return
	}
	ss, err := v.List(r.Context(), userID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.SecretList{UserID: userID, Secrets: []api.Secret{}, Applies: secretsApply}
	for _, x := range ss {
		out.Secrets = append(out.Secrets, api.Secret{Name: x.Name, Hint: x.Hint, UpdatedAt: x.UpdatedAt})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) handleSecretPut(w http.ResponseWriter, r *http.Request) {
	v := s.vaultOr(w, r)
	if v == nil {
		return
	}
	userID, name := r.PathValue("user_id"), r.PathValue("name")
	if err := secrets.ValidateName(name); err != nil {
		s.fail(w, r, err)
		return
	}
	var req api.SecretRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	x, err := v.Put(r.Context(), userID, name, req.Value)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.syncKept(r, userID, name, req.Value, false); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.SecretResponse{Success: true, UserID: userID, Secret: &api.Secret{Name: x.Name, Hint: x.Hint, UpdatedAt: x.UpdatedAt}, Applies: secretsApply})
}

func (s *server) handleSecretDelete(w http.ResponseWriter, r *http.Request) {
	v := s.vaultOr(w, r)
	if v == nil {
		return
	}
	userID := r.PathValue("user_id")
	if err := v.Delete(r.Context(), userID, r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.syncKept(r, userID, r.PathValue("name"), "", true); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.SecretResponse{Success: true, UserID: userID, Applies: secretsApply})
}
