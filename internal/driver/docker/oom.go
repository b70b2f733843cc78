package docker

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// oomKills returns how many processes the kernel OOM-killed in the
// container's memory cgroup, when the engine runs on this host (0 when the
// cgroup cannot be read). The engine itself (API 1.41) only reports
// State.OOMKilled when the container's main process was the victim; a
// workload child killed for memory leaves the container running and the
// flag false.
func oomKills(id string) int64 {
	if id == "" || strings.ContainsAny(id, "/.") {
		return 0
	}
	for _, p := range []string{
		filepath.Join("/sys/fs/cgroup/memory/docker", id, "memory.oom_control"),                          // v1, cgroupfs
		filepath.Join("/sys/fs/cgroup/memory/system.slice", "docker-"+id+".scope", "memory.oom_control"), // v1, systemd
		filepath.Join("/sys/fs/cgroup/system.slice", "docker-"+id+".scope", "memory.events"),             // v2, systemd
		filepath.Join("/sys/fs/cgroup/docker", id, "memory.events"),                                      // v2, cgroupfs
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				return n
			}
		}
	}
	return 0
}
