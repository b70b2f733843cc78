package storetest

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/berth/berth"
)

// testContainerSecrets: secrets round-trip, are replaced as a whole, are
// ErrNotFound for a missing record and go with their record.
func testContainerSecrets(t *testing.T, s berth.Store) {
	ctx := context.Background()
	mustUser(t, s, "u1")
	c := container("u1", 1, 20001)
	mustContainer(t, s, c)

	got, err := s.ContainerSecrets(ctx, c.Name)
	noErr(t, "ContainerSecrets of none", err)
	if len(got) != 0 {
		t.Errorf("secrets before any = %v, want none", got)
	}
	want := map[string]string{"ANTHROPIC_API_KEY": "sk-1", "OTHER": "x=y"}
	noErr(t, "SetContainerSecrets", s.SetContainerSecrets(ctx, c.Name, want))
	got, err = s.ContainerSecrets(ctx, c.Name)
	noErr(t, "ContainerSecrets", err)
	if !maps.Equal(got, want) {
		t.Errorf("secrets = %v, want %v", got, want)
	}
	want = map[string]string{"ANTHROPIC_API_KEY": "sk-2"}
	noErr(t, "SetContainerSecrets again", s.SetContainerSecrets(ctx, c.Name, want))
	got, _ = s.ContainerSecrets(ctx, c.Name)
	if !maps.Equal(got, want) {
		t.Errorf("replaced secrets = %v, want %v", got, want)
	}
	if err := s.SetContainerSecrets(ctx, "berth-nobody", want); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("SetContainerSecrets of a missing record = %v, want ErrNotFound", err)
	}
	noErr(t, "DeleteContainer", s.DeleteContainer(ctx, c.Name))
	mustContainer(t, s, c)
	got, _ = s.ContainerSecrets(ctx, c.Name)
	if len(got) != 0 {
		t.Errorf("secrets outlived their record: %v", got)
	}
}
