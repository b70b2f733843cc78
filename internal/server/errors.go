package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
)

// statusOf is the HTTP status of err: api.HTTPStatus is the one table.
func statusOf(err error) int { return api.HTTPStatus(err) }

// writeError answers with the API's one error shape and a caller-safe message.
func writeError(w http.ResponseWriter, err error) {
	status := statusOf(err)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="berth"`)
	}
	writeJSON(w, status, api.ErrorBodyOf(err))
}

// fail logs the full error and answers with the safe one.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if st := statusOf(err); st >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", st, "err", err)
	} else {
		s.log.Info("request refused", "method", r.Method, "path", r.URL.Path, "status", st, "err", err)
	}
	writeError(w, err)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// maxBody bounds every request body.
const maxBody = 1 << 20

// decode reads one JSON object strictly: size-limited, no unknown fields,
// nothing after it.
func decode(w http.ResponseWriter, r *http.Request, dst any) error {
	body := http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var maxErr *http.MaxBytesError
		var synErr *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &maxErr):
			return berth.Errorf(berth.ErrTooLarge, "request body is larger than %d bytes", maxBody)
		case errors.Is(err, io.EOF):
			return berth.Errorf(berth.ErrInvalid, "request body must be a JSON object")
		case errors.As(err, &synErr):
			return berth.Errorf(berth.ErrInvalid, "malformed JSON at byte %d", synErr.Offset)
		case errors.As(err, &typeErr):
			return berth.Errorf(berth.ErrInvalid, "field %q must be %s", typeErr.Field, typeErr.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return berth.Errorf(berth.ErrInvalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		case errors.Is(err, io.ErrUnexpectedEOF):
			return berth.Errorf(berth.ErrInvalid, "malformed JSON: unexpected end")
		default:
			return berth.Errorf(berth.ErrInvalid, "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	if dec.More() {
		return berth.Errorf(berth.ErrInvalid, "request body must hold exactly one JSON object")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return berth.Errorf(berth.ErrTooLarge, "request body is larger than %d bytes", maxBody)
		}
		return berth.Errorf(berth.ErrInvalid, "request body must hold exactly one JSON object")
	}
	return nil
}

func (s *server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, berth.Errorf(berth.ErrNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
}

func errorf(kind error, format string, args ...any) error {
	return &berth.Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}
