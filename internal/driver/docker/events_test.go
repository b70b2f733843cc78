package docker_test

import (
	"testing"
	"time"

	"github.com/berth/berth"
)

// TestEvents sees a container's start, its death by SIGKILL (exit code 137)
// and its removal, and nothing of other instances.
func TestEvents(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	other := newDriver(t)
	ctx := ctxFor(t)
	evs, errc := d.Events(ctx)
	s := spec(t, d, "ev")
	if _, err := d.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, s.Name); err != nil {
		t.Fatal(err)
	}
	o := spec(t, other, "ev")
	if _, err := other.Create(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := other.Start(ctx, o.Name); err != nil {
		t.Fatal(err)
	}
	if err := d.Client().ContainerKill(ctx, s.Name, "KILL"); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, s.Name, true); err != nil {
		t.Fatal(err)
	}
	want := []string{berth.RuntimeStarted, berth.RuntimeDied, berth.RuntimeDestroyed}
	var got []berth.RuntimeEvent
	deadline := time.After(30 * time.Second)
	for len(got) < len(want) {
		select {
		case ev := <-evs:
			if ev.Name != s.Name {
				t.Fatalf("event of another container: %+v", ev)
			}
			if ev.Action == berth.RuntimeStopped {
				continue // a kill may or may not be reported as a stop too
			}
			got = append(got, ev)
		case err := <-errc:
			t.Fatalf("stream ended: %v", err)
		case <-deadline:
			t.Fatalf("events after 30s = %+v, want %v", got, want)
		}
	}
	for i, ev := range got {
		if ev.Action != want[i] {
			t.Fatalf("events = %+v, want actions %v", got, want)
		}
	}
	if got[1].ExitCode != 137 {
		t.Errorf("die exit code = %d, want 137", got[1].ExitCode)
	}
}
