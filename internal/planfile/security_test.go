package planfile

import (
	"errors"
	"strings"
	"testing"

	"github.com/berth/berth"
)

// TestParseRefusesUnsafeKeys: a plans file can only set the documented
// fields; anything that would weaken a tenant container's hardening is an
// unknown key and refused, never ignored.
func TestParseRefusesUnsafeKeys(t *testing.T) {
	t.Parallel()
	for _, key := range []string{
		"privileged: true",
		"cap_add: [SYS_ADMIN]",
		"capabilities: [ALL]",
		"security_opt: [seccomp=unconfined]",
		"seccomp: unconfined",
		"user: root",
		"read_only: false",
		"network_mode: host",
		"pid: host",
		"ipc: host",
		"volumes: [/var/run/docker.sock:/var/run/docker.sock]",
		"binds: [/:/host]",
		"devices: [/dev/kvm]",
		"no_new_privileges: false",
		"userns_mode: host",
	} {
		doc := "plans:\n  free:\n    " + key + "\n"
		_, err := Parse([]byte(doc), berth.DefaultPlans())
		if !errors.Is(err, berth.ErrInvalid) {
			t.Errorf("%q: err = %v, want ErrInvalid", key, err)
		}
	}
}

func TestParseSandboxSettings(t *testing.T) {
	t.Parallel()
	ps, err := Parse([]byte("plans:\n  pro:\n    runtime: runsc\n    egress: off\n    nofile: 8192\n"), berth.DefaultPlans())
	if err != nil {
		t.Fatal(err)
	}
	p := ps["pro"]
	if p.Runtime != "runsc" || p.Egress != "off" || p.NofileLimit() != 8192 || p.EgressAllowed() {
		t.Errorf("pro = %+v", p)
	}
	if ps["free"].NofileLimit() != berth.DefaultNofile || !ps["free"].EgressAllowed() {
		t.Errorf("free defaults = %+v", ps["free"])
	}
	for _, bad := range []string{"runtime: kata", "runtime: runsc --privileged", "egress: maybe", "nofile: 1", "nofile: 99999999"} {
		_, err := Parse([]byte("plans:\n  pro:\n    "+bad+"\n"), berth.DefaultPlans())
		if !errors.Is(err, berth.ErrInvalid) || !strings.Contains(err.Error(), "pro") {
			t.Errorf("%q: err = %v, want ErrInvalid naming the plan", bad, err)
		}
	}
}
