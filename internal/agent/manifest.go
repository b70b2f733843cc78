package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"

	"go.yaml.in/yaml/v3"

	"github.com/berth/berth/api"
)

// Manifest maps workflow names to what the agent runs for them. It is read
// from YAML, for example:
//
//	engagement:
//	  description: Simulated likes, comments and follows over a sample feed
//	  command: ["/usr/local/bin/berth", "workload", "engagement"]
//	  actions: [like, comment, follow]
//	  config: {pace_ms: 200, likes_per_day: 50}
//	  env: {PYTHONUNBUFFERED: "1"}
type Manifest map[string]WorkflowSpec

// WorkflowSpec is one workflow of the manifest.
type WorkflowSpec struct {
	Description string            `yaml:"description"`
	Command     []string          `yaml:"command"`
	Actions     []string          `yaml:"actions"`
	Config      map[string]any    `yaml:"config"`
	Env         map[string]string `yaml:"env"`
	Dir         string            `yaml:"dir"` // working directory; empty: the agent's
}

var workflowName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// DefaultManifest is used when the manifest file does not exist: the demo
// workflow "engagement", run by the executable itself.
func DefaultManifest(exe string) Manifest {
	return Manifest{
		"engagement": {
			Description: "Simulation: likes, comments and follows over an offline sample feed of fictional accounts (no network)",
			Command:     []string{exe, "workload", "engagement"},
			Actions:     []string{"like", "comment", "follow"},
			Config:      map[string]any{"pace_ms": 200},
		},
	}
}

// LoadManifest reads the manifest at path. A missing file yields
// DefaultManifest(exe); an unreadable or invalid one an error naming the
// file and the problem.
func LoadManifest(path, exe string) (Manifest, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return DefaultManifest(exe), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read workflow manifest %s: %w", path, err)
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("workflow manifest %s: %w", path, err)
	}
	return m, nil
}

// ParseManifest decodes and validates a YAML manifest.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty manifest: define at least one workflow")
		}
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Validate checks names, commands and that each default config is JSON-able.
func (m Manifest) Validate() error {
	if len(m) == 0 {
		return errors.New("no workflows defined")
	}
	for _, name := range m.Names() {
		w := m[name]
		if !workflowName.MatchString(name) {
			return fmt.Errorf("workflow name %q must match %s", name, workflowName)
		}
		if len(w.Command) == 0 || w.Command[0] == "" {
			return fmt.Errorf("workflow %s: command must be a non-empty list (argv)", name)
		}
		if _, err := json.Marshal(w.Config); err != nil {
			return fmt.Errorf("workflow %s: config is not a JSON object: %v", name, err)
		}
	}
	return nil
}

// Names returns the workflow names, sorted.
func (m Manifest) Names() []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// list describes the workflows on the wire.
func (m Manifest) list() []api.Workflow {
	out := make([]api.Workflow, 0, len(m))
	for _, n := range m.Names() {
		w := m[n]
		var cfg json.RawMessage
		if w.Config != nil {
			cfg, _ = json.Marshal(w.Config)
		}
		out = append(out, api.Workflow{Name: n, Description: w.Description, Actions: w.Actions, Config: cfg})
	}
	return out
}
