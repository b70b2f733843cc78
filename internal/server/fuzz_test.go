package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
)

// FuzzDecode: request bodies decode or fail with a client error (invalid or
// too large), never panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"user_id":"u","email":"u@example.com","plan":"free"}`))
	f.Add([]byte(`{"user_id":"u"} {"x":1}`))
	f.Add([]byte(`[[[[[[[[[[`))
	f.Add([]byte(`{"user_id":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, dst := range []any{&api.OnboardRequest{}, &api.CreateContainerRequest{}, &api.ContainerActionRequest{}, &api.SecretRequest{}} {
			r := httptest.NewRequest("POST", "/api/users/onboard", bytes.NewReader(body))
			w := httptest.NewRecorder()
			err := decode(w, r, dst)
			if err != nil && !errors.Is(err, berth.ErrInvalid) && !errors.Is(err, berth.ErrTooLarge) {
				t.Fatalf("decode error of kind %v", err)
			}
		}
	})
}

// FuzzEventJSON: WebSocket event messages parse or are skipped (as the
// fan-out does), and a parsed event re-encodes.
func FuzzEventJSON(f *testing.F) {
	f.Add([]byte(`{"type":"action","seq":1,"container":"c","action":"like"}`))
	f.Add([]byte(`{"type":"dropped","count":3}`))
	f.Add([]byte(`{"type":"log","line":"\u0000"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev api.Event
		if json.Unmarshal(data, &ev) != nil {
			return
		}
		if _, err := json.Marshal(ev); err != nil {
			t.Fatalf("re-encode %+v: %v", ev, err)
		}
	})
}
