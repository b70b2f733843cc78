package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"
)

// TestHardenedByDefault inspects a container berth serve made from a plans
// file and checks every item of the hardening list, with the plan's own
// pids limit and nofile ulimit.
func TestHardenedByDefault(t *testing.T) {
	t.Parallel()
	s := startAttackServer(t)
	ob := s.onboard("hardened", "free")
	ctx := context.Background()
	c, err := dockerC.ContainerInspect(ctx, ob.Container.ContainerName)
	if err != nil {
		t.Fatal(err)
	}
	h := c.HostConfig
	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s: not as required", what)
		}
	}
	check("non-root user 65534", c.Config.User == "65534:65534")
	check("all capabilities dropped, none added", len(h.CapDrop) == 1 && h.CapDrop[0] == "ALL" && len(h.CapAdd) == 0)
	check("no-new-privileges", strings.Join(h.SecurityOpt, ",") == "no-new-privileges")
	check("default seccomp profile (no seccomp=unconfined, no apparmor=unconfined)", !strings.Contains(strings.Join(h.SecurityOpt, ","), "unconfined"))
	check("read-only root filesystem", h.ReadonlyRootfs)
	check("size-limited tmpfs /tmp, nosuid, nodev", strings.Contains(h.Tmpfs["/tmp"], "size=64m") && strings.Contains(h.Tmpfs["/tmp"], "nosuid") && strings.Contains(h.Tmpfs["/tmp"], "nodev"))
	check("not privileged", !h.Privileged)
	check("no devices", len(h.Devices) == 0)
	check("pids limit of the plan (64)", h.PidsLimit != nil && *h.PidsLimit == 64)
	check("nofile ulimit of the plan (1024)", len(h.Ulimits) == 1 && h.Ulimits[0].Name == "nofile" && h.Ulimits[0].Soft == 1024 && h.Ulimits[0].Hard == 1024)
	check("memory = swap (96m)", h.Memory == 96<<20 && h.MemorySwap == h.Memory)
	check("no host network/pid/ipc/uts/userns/cgroup namespace", !h.NetworkMode.IsHost() && !h.PidMode.IsHost() && !h.IpcMode.IsHost() && !h.UTSMode.IsHost() && !h.UsernsMode.IsHost() && !h.CgroupnsMode.IsHost())
	check("no bind mounts", len(h.Binds) == 0)
	var data bool
	for _, m := range c.Mounts {
		check("mount "+m.Destination+" is not a bind", m.Type != "bind")
		check("no docker socket", !strings.Contains(m.Source, "docker.sock") && !strings.Contains(m.Destination, "docker.sock"))
		data = data || m.Destination == "/data" && m.Type == "volume" && m.Name == ob.Container.ContainerName+"-data"
	}
	check("the tenant's volume at /data", data)
	check("runtime runc", h.Runtime == "runc" || h.Runtime == "")
	bound := c.NetworkSettings.Ports["9000/tcp"]
	check("agent port on 127.0.0.1 only", len(bound) == 1 && bound[0].HostIP == "127.0.0.1" && len(c.NetworkSettings.Ports) == 1)
	check("own network <name>-net", string(h.NetworkMode) == ob.Container.ContainerName+"-net" && len(c.NetworkSettings.Networks) == 1)
	n, err := dockerC.NetworkInspect(ctx, ob.Container.ContainerName+"-net", network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check("network labelled with instance and container", n.Labels["berth.instance"] == s.name && n.Labels["berth.name"] == ob.Container.ContainerName)
	check("subnet /28 from the pool", len(n.IPAM.Config) == 1 && strings.HasPrefix(n.IPAM.Config[0].Subnet, "10.213.") && strings.HasSuffix(n.IPAM.Config[0].Subnet, "/28"))

	// Removal takes the network with it.
	s.mustCall(200, "POST", "/api/containers/hardened/action", adminToken, map[string]string{"action": "remove"}, nil)
	if _, err := dockerC.NetworkInspect(ctx, ob.Container.ContainerName+"-net", network.InspectOptions{}); err == nil {
		t.Error("the container's network outlived it")
	}
}
