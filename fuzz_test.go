package berth

import (
	"strings"
	"testing"
)

// FuzzValidateUserID: an accepted user id is safe in container, volume and
// network names, paths and labels.
func FuzzValidateUserID(f *testing.F) {
	for _, s := range []string{"user_1", "../etc", "a/b", "a;rm -rf /", "$(id)", "", strings.Repeat("a", 65), "ü", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if ValidateUserID(id) != nil {
			return
		}
		if len(id) == 0 || len(id) > MaxUserIDLen || strings.ContainsAny(id, "/\\.;$ \x00\n\"'`") {
			t.Fatalf("accepted unsafe user id %q", id)
		}
		name := ContainerName("berth", id, 2)
		if !strings.HasPrefix(name, "berth-") || strings.Contains(name, "..") {
			t.Fatalf("container name %q", name)
		}
	})
}
