package web

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	h := Handler()
	for _, path := range []string{"/", "/automation", "/admin/users", "/index.html"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 || !strings.Contains(w.Body.String(), "<html") {
			t.Errorf("GET %s = %d %q, want index.html", path, w.Code, w.Body.String())
		}
		if got := w.Header().Get("Content-Security-Policy"); got != CSP {
			t.Errorf("GET %s CSP = %q", path, got)
		}
		if w.Header().Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: index.html must not be cached", path)
		}
	}
	if !Built() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if !strings.Contains(w.Body.String(), "make web") {
			t.Errorf("placeholder does not say how to build: %q", w.Body.String())
		}
	}
}
