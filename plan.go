package berth

import (
	"fmt"
	"sort"
	"time"
)

// GiB is 2^30 bytes.
const GiB = int64(1) << 30

// Plan is a tier of service: the resources a tenant container gets and how
// many actions its automation may take each UTC day.
type Plan struct {
	Name              string  `json:"name" yaml:"name"`
	MemoryBytes       int64   `json:"memory_bytes" yaml:"memory_bytes"`
	CPUs              float64 `json:"cpus" yaml:"cpus"`
	ActionsPerDay     int     `json:"actions_per_day" yaml:"actions_per_day"`
	ContainersPerUser int     `json:"containers_per_user" yaml:"containers_per_user"`
	PriceMonthly      int     `json:"price_monthly" yaml:"price_monthly"` // whole currency units
	PidsLimit         int64   `json:"pids_limit" yaml:"pids_limit"`
	// Image overrides the operator's default tenant image for this plan.
	Image string `json:"image,omitempty" yaml:"image"`
	// Nofile is the open-files ulimit (soft = hard); 0 means DefaultNofile.
	Nofile int64 `json:"nofile,omitempty" yaml:"nofile"`
	// Runtime names the OCI runtime registered with the engine ("" or
	// "runc" for the default, "runsc" for the gVisor sandbox tier).
	Runtime string `json:"runtime,omitempty" yaml:"runtime"`
	// Egress is outbound internet access: EgressOn (default) or EgressOff
	// (an internal network). Private ranges and metadata addresses are
	// always blocked by the host firewall.
	Egress string `json:"egress,omitempty" yaml:"egress"`
	// IdleTimeout stops a container after this long without activity (see
	// lifecycle.Activity for what counts); 0 never stops it.
	IdleTimeout time.Duration `json:"idle_timeout,omitempty" yaml:"idle_timeout"`
}

// Sandbox settings a plan may choose. Nothing else about a tenant
// container's hardening is configurable.
const (
	DefaultNofile = 4096
	MaxNofile     = 1 << 20
	EgressOn      = "on"
	EgressOff     = "off"
	RuntimeRunc   = "runc"
	RuntimeRunsc  = "runsc"
)

// NofileLimit returns the plan's nofile ulimit, DefaultNofile when unset.
func (p Plan) NofileLimit() int64 {
	if p.Nofile <= 0 {
		return DefaultNofile
	}
	return p.Nofile
}

// EgressAllowed reports whether the plan's containers may reach the internet.
func (p Plan) EgressAllowed() bool { return p.Egress != EgressOff }

// Limits is the resource envelope of one container.
type Limits struct {
	MemoryBytes   int64   `json:"memory_bytes"`
	CPUs          float64 `json:"cpus"`
	PidsLimit     int64   `json:"pids_limit"`
	ActionsPerDay int     `json:"actions_per_day"`
}

// Limits returns the plan's limits for one container.
func (p Plan) Limits() Limits {
	return Limits{MemoryBytes: p.MemoryBytes, CPUs: p.CPUs, PidsLimit: p.PidsLimit, ActionsPerDay: p.ActionsPerDay}
}

// Validate reports whether the plan is usable.
func (p Plan) Validate() error {
	switch {
	case !planNameOK(p.Name):
		return Errorf(ErrInvalid, "plan name %q must match [a-z0-9_-]{1,32}", p.Name)
	case p.MemoryBytes < 6<<20:
		return Errorf(ErrInvalid, "plan %s: memory_bytes must be at least 6 MiB", p.Name)
	case p.CPUs <= 0 || p.CPUs > 1024:
		return Errorf(ErrInvalid, "plan %s: cpus must be in (0, 1024]", p.Name)
	case p.ActionsPerDay < 0:
		return Errorf(ErrInvalid, "plan %s: actions_per_day must not be negative", p.Name)
	case p.ContainersPerUser < 1 || p.ContainersPerUser > 100:
		return Errorf(ErrInvalid, "plan %s: containers_per_user must be in [1, 100]", p.Name)
	case p.PriceMonthly < 0:
		return Errorf(ErrInvalid, "plan %s: price_monthly must not be negative", p.Name)
	case p.PidsLimit < 16:
		return Errorf(ErrInvalid, "plan %s: pids_limit must be at least 16", p.Name)
	case p.Nofile < 0 || p.Nofile > MaxNofile || (p.Nofile > 0 && p.Nofile < 64):
		return Errorf(ErrInvalid, "plan %s: nofile must be in [64, %d]", p.Name, MaxNofile)
	case p.Runtime != "" && p.Runtime != RuntimeRunc && p.Runtime != RuntimeRunsc:
		return Errorf(ErrInvalid, "plan %s: runtime must be %q or %q", p.Name, RuntimeRunc, RuntimeRunsc)
	case p.Egress != "" && p.Egress != EgressOn && p.Egress != EgressOff:
		return Errorf(ErrInvalid, "plan %s: egress must be %q or %q", p.Name, EgressOn, EgressOff)
	case p.IdleTimeout < 0:
		return Errorf(ErrInvalid, "plan %s: idle_timeout must not be negative", p.Name)
	case p.IdleTimeout > 0 && p.IdleTimeout < time.Second:
		return Errorf(ErrInvalid, "plan %s: idle_timeout must be 0 (never) or at least 1s", p.Name)
	}
	return nil
}

func planNameOK(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// Plans is the set of plans an operator offers, by name.
type Plans map[string]Plan

// DefaultPlans returns the built-in plans with the original figures.
func DefaultPlans() Plans {
	return Plans{
		"free":    {Name: "free", MemoryBytes: 2 * GiB, CPUs: 1, ActionsPerDay: 20, ContainersPerUser: 1, PriceMonthly: 0, PidsLimit: 256},
		"starter": {Name: "starter", MemoryBytes: 4 * GiB, CPUs: 2, ActionsPerDay: 100, ContainersPerUser: 1, PriceMonthly: 29, PidsLimit: 512},
		"pro":     {Name: "pro", MemoryBytes: 8 * GiB, CPUs: 4, ActionsPerDay: 500, ContainersPerUser: 1, PriceMonthly: 79, PidsLimit: 1024},
		"agency":  {Name: "agency", MemoryBytes: 16 * GiB, CPUs: 8, ActionsPerDay: 500, ContainersPerUser: 5, PriceMonthly: 299, PidsLimit: 2048},
	}
}

// Get returns the named plan, or an ErrInvalid error naming the known plans.
func (ps Plans) Get(name string) (Plan, error) {
	p, ok := ps[name]
	if !ok {
		return Plan{}, Errorf(ErrInvalid, "unknown plan %q (known: %v)", name, ps.Names())
	}
	return p, nil
}

// Names returns the plan names, cheapest first.
func (ps Plans) Names() []string {
	names := make([]string, 0, len(ps))
	for n := range ps {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := ps[names[i]], ps[names[j]]
		if a.PriceMonthly != b.PriceMonthly {
			return a.PriceMonthly < b.PriceMonthly
		}
		return names[i] < names[j]
	})
	return names
}

// Validate checks every plan and that the set is not empty.
func (ps Plans) Validate() error {
	if len(ps) == 0 {
		return Errorf(ErrInvalid, "no plans defined")
	}
	for name, p := range ps {
		if p.Name != name {
			return Errorf(ErrInvalid, "plan keyed %q is named %q", name, p.Name)
		}
		if err := p.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// String renders a plan briefly, for logs.
func (p Plan) String() string {
	return fmt.Sprintf("%s(mem=%dMiB cpus=%g actions/day=%d)", p.Name, p.MemoryBytes>>20, p.CPUs, p.ActionsPerDay)
}
