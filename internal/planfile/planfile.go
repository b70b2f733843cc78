// Package planfile reads an operator's plans file (YAML or JSON — JSON is
// YAML too) and merges it over the built-in plans.
//
//	plans:
//	  starter:
//	    memory: 4g          # or memory_bytes: 4294967296
//	    cpus: 2
//	    actions_per_day: 100
//	  team:                 # a new plan: every field it lacks is an error
//	    memory: 6g
//	    cpus: 3
//	    actions_per_day: 250
//	    containers_per_user: 2
//	    price_monthly: 49
//	    pids_limit: 512
//	    image: acme/agent:1.4
//	    nofile: 8192        # open-files ulimit (default 4096)
//	    runtime: runsc      # OCI runtime: runc (default) or runsc (gVisor)
//	    egress: off         # outbound internet: on (default) or off
//	    idle_timeout: 30m   # stop after 30 minutes without activity; 0 or absent: never
//	  free:
//	    disabled: true      # withdraw a built-in plan
package planfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/berth/berth"
)

type file struct {
	Plans map[string]entry `yaml:"plans"`
}

type entry struct {
	Memory            *string  `yaml:"memory"`
	MemoryBytes       *int64   `yaml:"memory_bytes"`
	CPUs              *float64 `yaml:"cpus"`
	ActionsPerDay     *int     `yaml:"actions_per_day"`
	ContainersPerUser *int     `yaml:"containers_per_user"`
	PriceMonthly      *int     `yaml:"price_monthly"`
	PidsLimit         *int64   `yaml:"pids_limit"`
	Image             *string  `yaml:"image"`
	Nofile            *int64   `yaml:"nofile"`
	Runtime           *string  `yaml:"runtime"`
	Egress            *string  `yaml:"egress"`
	IdleTimeout       *string  `yaml:"idle_timeout"`
	Disabled          bool     `yaml:"disabled"`
}

// maxFileSize bounds what Parse reads: a plans file is a few hundred bytes.
const maxFileSize = 1 << 20

// Load reads the plans file at path and merges it over base.
func Load(path string, base berth.Plans) (berth.Plans, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plans file: %w", err)
	}
	ps, err := Parse(data, base)
	if err != nil {
		return nil, fmt.Errorf("plans file %s: %w", path, err)
	}
	return ps, nil
}

// Parse merges a plans document over base and validates the result. Fields
// a plan gives override the built-in plan of the same name; a plan with a new
// name must give every field but image, nofile, runtime and egress. Unknown
// keys are errors, so a typo never silently falls back to a default, and no
// key can weaken a container's hardening (privileged, capabilities, seccomp,
// user, mounts, host namespaces): only the documented fields exist.
func Parse(data []byte, base berth.Plans) (berth.Plans, error) {
	if len(data) > maxFileSize {
		return nil, berth.Errorf(berth.ErrInvalid, "plans file is larger than %d bytes", maxFileSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f file
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, berth.Wrap(berth.ErrInvalid, err, "malformed plans file: "+firstLine(err.Error()))
	}
	out := berth.Plans{}
	for n, p := range base {
		out[n] = p
	}
	for name, e := range f.Plans {
		p, existed := out[name]
		if e.Disabled {
			delete(out, name)
			continue
		}
		p.Name = name
		if !existed {
			var missing []string
			if e.Memory == nil && e.MemoryBytes == nil {
				missing = append(missing, "memory")
			}
			if e.CPUs == nil {
				missing = append(missing, "cpus")
			}
			if e.ActionsPerDay == nil {
				missing = append(missing, "actions_per_day")
			}
			if e.ContainersPerUser == nil {
				missing = append(missing, "containers_per_user")
			}
			if e.PriceMonthly == nil {
				missing = append(missing, "price_monthly")
			}
			if e.PidsLimit == nil {
				missing = append(missing, "pids_limit")
			}
			if len(missing) > 0 {
				return nil, berth.Errorf(berth.ErrInvalid, "new plan %q lacks %s", name, strings.Join(missing, ", "))
			}
		}
		if e.Memory != nil && e.MemoryBytes != nil {
			return nil, berth.Errorf(berth.ErrInvalid, "plan %q: give memory or memory_bytes, not both", name)
		}
		if e.Memory != nil {
			b, err := ParseBytes(*e.Memory)
			if err != nil {
				return nil, berth.Errorf(berth.ErrInvalid, "plan %q: %v", name, err)
			}
			p.MemoryBytes = b
		}
		if e.MemoryBytes != nil {
			p.MemoryBytes = *e.MemoryBytes
		}
		if e.CPUs != nil {
			p.CPUs = *e.CPUs
		}
		if e.ActionsPerDay != nil {
			p.ActionsPerDay = *e.ActionsPerDay
		}
		if e.ContainersPerUser != nil {
			p.ContainersPerUser = *e.ContainersPerUser
		}
		if e.PriceMonthly != nil {
			p.PriceMonthly = *e.PriceMonthly
		}
		if e.PidsLimit != nil {
			p.PidsLimit = *e.PidsLimit
		}
		if e.Image != nil {
			p.Image = *e.Image
		}
		if e.Nofile != nil {
			p.Nofile = *e.Nofile
		}
		if e.Runtime != nil {
			p.Runtime = *e.Runtime
		}
		if e.Egress != nil {
			p.Egress = *e.Egress
		}
		if e.IdleTimeout != nil {
			d, err := parseIdle(*e.IdleTimeout)
			if err != nil {
				return nil, berth.Errorf(berth.ErrInvalid, "plan %q: %v", name, err)
			}
			p.IdleTimeout = d
		}
		out[name] = p
	}
	if err := out.Validate(); err != nil {
		return nil, err
	}
	return out, nil
}

// ParseBytes reads a size such as 512m, 2g, 2GiB, 1.5g or 1048576.
func ParseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "ib"), "b")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult, t = 1<<10, t[:n-1]
		case 'm':
			mult, t = 1<<20, t[:n-1]
		case 'g':
			mult, t = 1<<30, t[:n-1]
		case 't':
			mult, t = 1<<40, t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 || f*float64(mult) > 1<<50 {
		return 0, fmt.Errorf("size %q is not a positive size like 512m or 2g", s)
	}
	return int64(f * float64(mult)), nil
}

// parseIdle reads an idle timeout: a Go duration such as 30m or 1h30m, or 0
// (never).
func parseIdle(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "0" || t == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(t)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("idle_timeout %q is not a duration like 30m or 2h (0: never)", s)
	}
	return d, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
