package server

import (
	"net/http"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
	"github.com/berth/berth/internal/secrets"
)

// secretsApply tells clients when a change reaches the containers.
const secretsApply = "at the next creation of the user's containers (environment variables cannot change in a running container)"

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
	writeJSON(w, http.StatusOK, api.SecretResponse{Success: true, UserID: userID, Applies: secretsApply})
}
