package planfile

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berth/berth"
)

func TestParseOverridesAndAdds(t *testing.T) {
	t.Parallel()
	doc := `
plans:
  starter:
    memory: 3g
    actions_per_day: 150
  team:
    memory_bytes: 1073741824
    cpus: 0.5
    actions_per_day: 10
    containers_per_user: 2
    price_monthly: 9
    pids_limit: 128
    image: acme/agent:1
  free:
    disabled: true
`
	ps, err := Parse([]byte(doc), berth.DefaultPlans())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ps["free"]; ok {
		t.Error("free should be disabled")
	}
	st := ps["starter"]
	if st.MemoryBytes != 3*berth.GiB || st.ActionsPerDay != 150 || st.CPUs != 2 || st.PriceMonthly != 29 {
		t.Errorf("starter = %+v, want memory 3g, 150 actions, built-in cpus and price kept", st)
	}
	team := ps["team"]
	if team.Name != "team" || team.MemoryBytes != berth.GiB || team.Image != "acme/agent:1" || team.ContainersPerUser != 2 {
		t.Errorf("team = %+v", team)
	}
}

func TestParseJSON(t *testing.T) {
	t.Parallel()
	ps, err := Parse([]byte(`{"plans":{"pro":{"actions_per_day":600}}}`), berth.DefaultPlans())
	if err != nil {
		t.Fatal(err)
	}
	if got := ps["pro"].ActionsPerDay; got != 600 {
		t.Errorf("pro actions = %d, want 600", got)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	cases := map[string]struct{ doc, want string }{
		"typo":           {"plans:\n  pro:\n    memroy: 2g\n", "memroy"},
		"new incomplete": {"plans:\n  team:\n    memory: 2g\n", "lacks cpus"},
		"bad size":       {"plans:\n  pro:\n    memory: lots\n", "not a positive size"},
		"both memories":  {"plans:\n  pro:\n    memory: 2g\n    memory_bytes: 5\n", "not both"},
		"negative":       {"plans:\n  pro:\n    actions_per_day: -1\n", "must not be negative"},
		"bad name":       {"plans:\n  Pro!:\n    memory: 2g\n    cpus: 1\n    actions_per_day: 1\n    containers_per_user: 1\n    price_monthly: 1\n    pids_limit: 64\n", "must match"},
		"not yaml":       {"plans: [", "malformed"},
		"none left":      {"plans:\n  free: {disabled: true}\n  starter: {disabled: true}\n  pro: {disabled: true}\n  agency: {disabled: true}\n", "no plans"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.doc), berth.DefaultPlans())
			if err == nil {
				t.Fatalf("Parse accepted %q", tc.doc)
			}
			if !errors.Is(err, berth.ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"512m": 512 << 20, "2g": 2 << 30, "2GiB": 2 << 30, "1.5g": 3 << 29, "1048576": 1 << 20, "64k": 64 << 10} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1g", "g", "abc", "0"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) accepted", in)
		}
	}
}

func TestParseIdleTimeout(t *testing.T) {
	t.Parallel()
	ps, err := Parse([]byte("plans:\n  free:\n    idle_timeout: 30m\n  pro:\n    idle_timeout: 0\n"), berth.DefaultPlans())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ps["free"].IdleTimeout, 30*time.Minute; got != want {
		t.Errorf("free idle_timeout = %v, want %v", got, want)
	}
	if got := ps["pro"].IdleTimeout; got != 0 {
		t.Errorf("pro idle_timeout = %v, want 0 (never)", got)
	}
	for _, bad := range []string{"soon", "-5m", "10ms"} {
		if _, err := Parse([]byte("plans:\n  free:\n    idle_timeout: "+bad+"\n"), berth.DefaultPlans()); !errors.Is(err, berth.ErrInvalid) {
			t.Errorf("idle_timeout %q: err = %v, want ErrInvalid", bad, err)
		}
	}
}
