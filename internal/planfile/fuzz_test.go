package planfile

import (
	"testing"

	"github.com/berth/berth"
)

// FuzzParse: the plans parser never panics, and whatever it accepts is a
// valid set of plans with only the documented sandbox settings.
func FuzzParse(f *testing.F) {
	f.Add([]byte("plans:\n  pro:\n    runtime: runsc\n    egress: off\n"))
	f.Add([]byte(`{"plans":{"x":{"memory":"1g","cpus":1,"actions_per_day":1,"containers_per_user":1,"price_monthly":0,"pids_limit":64}}}`))
	f.Add([]byte("plans:\n  free:\n    privileged: true\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		ps, err := Parse(doc, berth.DefaultPlans())
		if err != nil {
			return
		}
		if err := ps.Validate(); err != nil {
			t.Fatalf("accepted invalid plans: %v", err)
		}
		for _, p := range ps {
			if p.Runtime != "" && p.Runtime != berth.RuntimeRunc && p.Runtime != berth.RuntimeRunsc {
				t.Fatalf("runtime %q accepted", p.Runtime)
			}
			if p.Egress != "" && p.Egress != berth.EgressOn && p.Egress != berth.EgressOff {
				t.Fatalf("egress %q accepted", p.Egress)
			}
		}
	})
}
