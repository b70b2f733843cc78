package docker_test

import (
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/driver/docker"
	"github.com/berth/berth/internal/driver/drivertest"
)

// Set by TestMain when the engine answers.
var (
	engineErr  error  // why Docker-backed tests cannot run
	testBinary string // static testagent, built as "berth"
	testImage  string // tenant image made from testBinary
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base, err := docker.New(ctx, docker.Options{Instance: randomInstance(), Version: "test"})
	if err == nil {
		err = base.Ping(ctx)
	}
	if err != nil {
		engineErr = err
		return m.Run()
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		if err := base.RemoveAll(cctx); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
	}()
	dir, err := os.MkdirTemp("", "berth-driver-test-")
	if err != nil {
		engineErr = err
		return m.Run()
	}
	defer os.RemoveAll(dir)
	testBinary = filepath.Join(dir, "berth")
	build := exec.CommandContext(ctx, "go", "build", "-o", testBinary, "github.com/berth/berth/internal/driver/drivertest/testagent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		engineErr = fmt.Errorf("build testagent: %v\n%s", err, out)
		return m.Run()
	}
	if testImage, err = base.EnsureImage(ctx, testBinary); err != nil {
		engineErr = fmt.Errorf("build test image: %w", err)
	}
	return m.Run()
}

func randomInstance() string {
	b := make([]byte, 3)
	rand.Read(b)
	return "bt-drv-" + hex.EncodeToString(b)
}

// needDocker skips, or fails when BERTH_TEST_DOCKER=1, if the engine is not usable.
func needDocker(t *testing.T) {
	t.Helper()
	if engineErr == nil {
		return
	}
	if os.Getenv("BERTH_TEST_DOCKER") == "1" {
		t.Fatalf("BERTH_TEST_DOCKER=1 but the docker engine is not usable: %v", engineErr)
	}
	t.Skipf("docker engine not usable (set BERTH_TEST_DOCKER=1 to fail instead): %v", engineErr)
}

// newDriver returns a driver of a fresh instance whose every object is
// removed when t ends, whether it passed or not.
func newDriver(t *testing.T) *docker.Driver {
	t.Helper()
	needDocker(t)
	d, err := docker.New(t.Context(), docker.Options{Instance: randomInstance(), Version: "test"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.RemoveAll(ctx); err != nil {
			t.Errorf("RemoveAll: %v", err)
		}
	})
	return d
}

func TestConformance(t *testing.T) {
	needDocker(t)
	drivertest.Run(t, func(t *testing.T) (berth.Driver, drivertest.Env) {
		d := newDriver(t)
		return d, drivertest.Env{Instance: d.Instance(), Image: testImage, FreePort: drivertest.FreePort}
	})
}

func spec(t *testing.T, d *docker.Driver, suffix string) berth.ContainerSpec {
	return berth.ContainerSpec{
		Name:      d.Instance() + "-" + suffix,
		UserID:    suffix,
		Plan:      "test",
		Image:     testImage,
		Limits:    berth.Limits{MemoryBytes: 64 << 20, CPUs: 0.5, PidsLimit: 64},
		AgentPort: drivertest.FreePort(t),
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestHardenedConfig(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	ctx := ctxFor(t)
	s := spec(t, d, "hard")
	if _, err := d.Create(ctx, s); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := d.Start(ctx, s.Name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	c, err := d.Client().ContainerInspect(ctx, s.Name)
	if err != nil {
		t.Fatalf("ContainerInspect: %v", err)
	}
	h := c.HostConfig
	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s: not as required", what)
		}
	}
	check("user 65534:65534", c.Config.User == "65534:65534")
	check("cap drop ALL, no cap add", len(h.CapDrop) == 1 && h.CapDrop[0] == "ALL" && len(h.CapAdd) == 0)
	check("no-new-privileges", len(h.SecurityOpt) == 1 && strings.HasPrefix(h.SecurityOpt[0], "no-new-privileges"))
	check("read-only rootfs", h.ReadonlyRootfs)
	check("not privileged", !h.Privileged)
	check("tmpfs /tmp 64m 1777", strings.Contains(h.Tmpfs["/tmp"], "size=64m") && strings.Contains(h.Tmpfs["/tmp"], "mode=1777"))
	check("memory = swap = limit", h.Memory == 64<<20 && h.MemorySwap == 64<<20)
	check("nano cpus", h.NanoCPUs == 5e8)
	check("pids limit", h.PidsLimit != nil && *h.PidsLimit == 64)
	check("nofile 4096", len(h.Ulimits) == 1 && h.Ulimits[0].Name == "nofile" && h.Ulimits[0].Soft == 4096 && h.Ulimits[0].Hard == 4096)
	check("restart policy no", h.RestartPolicy.Name == container.RestartPolicyDisabled)
	check("no init", h.Init != nil && !*h.Init)
	check("no host namespaces", !h.NetworkMode.IsHost() && !h.PidMode.IsHost() && !h.IpcMode.IsHost() && !h.UTSMode.IsHost() && !h.UsernsMode.IsHost())
	check("own network, not the default bridge", string(h.NetworkMode) == s.Name+"-net" && len(c.NetworkSettings.Networks) == 1)
	bound := c.NetworkSettings.Ports["9000/tcp"]
	check(fmt.Sprintf("agent port published on 127.0.0.1:%d only (%v)", s.AgentPort, bound),
		len(c.NetworkSettings.Ports) == 1 && len(bound) == 1 && bound[0].HostIP == "127.0.0.1" && bound[0].HostPort == fmt.Sprint(s.AgentPort))

	n, err := d.Client().NetworkInspect(ctx, s.Name+"-net", network.InspectOptions{})
	if err != nil {
		t.Fatalf("NetworkInspect: %v", err)
	}
	check("network ICC disabled", n.Options["com.docker.network.bridge.enable_icc"] == "false")
	check("network labelled", n.Labels[berth.LabelInstance] == d.Instance() && n.Labels[berth.LabelName] == s.Name)
	check("network subnet from the pool", len(n.IPAM.Config) == 1 && strings.HasPrefix(n.IPAM.Config[0].Subnet, "10.213.") && strings.HasSuffix(n.IPAM.Config[0].Subnet, "/28"))
	check("bridge named for the firewall", n.Options["com.docker.network.bridge.name"] != "" && strings.HasPrefix(n.Options["com.docker.network.bridge.name"], docker.BridgePrefix(d.Instance())))
	check("egress on by default: not internal", !n.Internal)
	check("runtime runc by default", h.Runtime == "" || h.Runtime == "runc")
	check("default seccomp (not unconfined)", !strings.Contains(strings.Join(h.SecurityOpt, ","), "unconfined"))
	check("no binds, no docker socket", len(h.Binds) == 0 && func() bool {
		for _, m := range c.Mounts {
			if m.Type == "bind" || strings.Contains(m.Source, "docker.sock") {
				return false
			}
		}
		return true
	}())
	v, err := d.Client().VolumeInspect(ctx, s.Name+"-data")
	if err != nil {
		t.Fatalf("VolumeInspect: %v", err)
	}
	check("volume labelled", v.Labels[berth.LabelInstance] == d.Instance())
}

// waitLog polls the container's logs until they contain want.
func waitLog(t *testing.T, ctx context.Context, d *docker.Driver, name, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		logs, err := d.Logs(ctx, name, 0)
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		if strings.Contains(logs, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs of %s do not contain %q:\n%s", name, want, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The testagent counts its boots in /data/boots: the count going to 2 after
// re-creation shows the volume is writable by 65534 and outlives the container.
func TestVolumeSurvivesRecreate(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	ctx := ctxFor(t)
	s := spec(t, d, "vol")
	for boot := 1; boot <= 2; boot++ {
		if _, err := d.Create(ctx, s); err != nil {
			t.Fatalf("Create %d: %v", boot, err)
		}
		if err := d.Start(ctx, s.Name); err != nil {
			t.Fatalf("Start %d: %v", boot, err)
		}
		waitLog(t, ctx, d, s.Name, fmt.Sprintf("testagent listening boots=%d", boot))
		if err := d.Remove(ctx, s.Name, false); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		v, err := d.Client().VolumeInspect(ctx, s.Name+"-data")
		if err != nil || v.Labels[berth.LabelInstance] != d.Instance() {
			t.Fatalf("volume after Remove(keep) = %+v, %v; want it kept with its label", v, err)
		}
	}
	if err := d.Remove(ctx, s.Name, true); err != nil {
		t.Fatalf("Remove(volume): %v", err)
	}
	if _, err := d.Client().VolumeInspect(ctx, s.Name+"-data"); !cerrdefs.IsNotFound(err) {
		t.Errorf("volume after Remove(volume): %v, want gone", err)
	}
}

// A container with the driver's naming but another instance's label, as
// another control plane would make it, is invisible and left alone.
func TestForeignContainerInvisible(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	ctx := ctxFor(t)
	name := d.Instance() + "-foreign"
	resp, err := d.Client().ContainerCreate(ctx, &container.Config{
		Image:  testImage,
		Labels: map[string]string{berth.LabelInstance: "someone-else", berth.LabelName: name},
	}, &container.HostConfig{NetworkMode: "none"}, nil, nil, name)
	if err != nil {
		t.Fatalf("ContainerCreate: %v", err)
	}
	t.Cleanup(func() {
		d.Client().ContainerRemove(context.Background(), resp.ID, container.RemoveOptions{Force: true})
	})
	if _, err := d.Inspect(ctx, name); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("Inspect of a foreign container: %v, want ErrNotFound", err)
	}
	if _, err := d.Inspect(ctx, resp.ID); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("Inspect by a foreign container's ID: %v, want ErrNotFound", err)
	}
	if list, err := d.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List = %v, %v; want empty", list, err)
	}
	if err := d.Remove(ctx, name, true); err != nil {
		t.Errorf("Remove of a foreign container: %v, want nil", err)
	}
	if _, err := d.Client().ContainerInspect(ctx, resp.ID); err != nil {
		t.Errorf("foreign container was removed: %v", err)
	}
	s := spec(t, d, "foreign")
	if _, err := d.Create(ctx, s); !errors.Is(err, berth.ErrConflict) {
		t.Errorf("Create over a foreign container's name: %v, want ErrConflict", err)
	}
}

func TestCreateRefusals(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	ctx := ctxFor(t)
	host, err := d.Host(ctx)
	if err != nil {
		t.Fatalf("Host: %v", err)
	}
	for _, tt := range []struct {
		name   string
		mutate func(*berth.ContainerSpec)
		kind   error
	}{
		{"name without instance prefix", func(s *berth.ContainerSpec) { s.Name = "other-x" }, berth.ErrInvalid},
		{"name with a slash", func(s *berth.ContainerSpec) { s.Name = d.Instance() + "-a/b" }, berth.ErrInvalid},
		{"cpus above host", func(s *berth.ContainerSpec) { s.Limits.CPUs = float64(host.CPUs) + 0.5 }, berth.ErrInvalid},
		{"bad env key", func(s *berth.ContainerSpec) { s.Env = map[string]string{"A=B": "secret-value"} }, berth.ErrInvalid},
		{"missing image", func(s *berth.ContainerSpec) { s.Image = d.Instance() + "-no-such-image:1" }, berth.ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := spec(t, d, "refused")
			tt.mutate(&s)
			_, err := d.Create(ctx, s)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("Create: %v, want kind %v", err, tt.kind)
			}
			if strings.Contains(err.Error(), "secret-value") {
				t.Errorf("error leaks an env value: %v", err)
			}
			if _, err := d.Client().VolumeInspect(ctx, s.Name+"-data"); err == nil {
				t.Errorf("refused Create left volume %s-data behind", s.Name)
			}
		})
	}
}

func TestEnsureImage(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	ctx := ctxFor(t)
	ref, err := d.EnsureImage(ctx, testBinary)
	if err != nil {
		t.Fatalf("EnsureImage: %v", err)
	}
	if !strings.HasPrefix(ref, d.Instance()+"-tenant:") || len(ref) != len(d.Instance()+"-tenant:")+12 {
		t.Errorf("ref = %q, want %s-tenant:<12 hex>", ref, d.Instance())
	}
	start := time.Now()
	again, err := d.EnsureImage(ctx, testBinary)
	if err != nil || again != ref {
		t.Fatalf("second EnsureImage = %q, %v; want %q", again, err, ref)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("second EnsureImage took %v, want it to skip the build", el)
	}
	if ok, err := d.ImageExists(ctx, ref); !ok || err != nil {
		t.Errorf("ImageExists(%s) = %v, %v", ref, ok, err)
	}
	if ok, err := d.ImageExists(ctx, d.Instance()+"-tenant:nope"); ok || err != nil {
		t.Errorf("ImageExists(missing) = %v, %v; want false, nil", ok, err)
	}
	img, err := d.Client().ImageInspect(ctx, ref)
	if err != nil {
		t.Fatalf("ImageInspect: %v", err)
	}
	cfg := img.Config
	if fmt.Sprint(cfg.Entrypoint) != "[/berth agent]" || cfg.User != "65534:65534" || cfg.WorkingDir != "/data" ||
		cfg.Labels[berth.LabelInstance] != d.Instance() || !containsString(cfg.Env, "BERTH_AGENT_DATA=/data") {
		t.Errorf("image config = %+v", cfg)
	}
	if _, ok := cfg.ExposedPorts["9000/tcp"]; !ok {
		t.Errorf("image exposes %v, want 9000/tcp", cfg.ExposedPorts)
	}

	notELF := filepath.Join(t.TempDir(), "berth")
	os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755)
	if _, err := d.EnsureImage(ctx, notELF); !errors.Is(err, berth.ErrInvalid) {
		t.Errorf("EnsureImage(script): %v, want ErrInvalid", err)
	}
	if dyn := dynamicBinary(); dyn != "" {
		_, err := d.EnsureImage(ctx, dyn)
		if !errors.Is(err, berth.ErrInvalid) || !strings.Contains(err.Error(), "dynamically linked; build it with CGO_ENABLED=0") {
			t.Errorf("EnsureImage(%s): %v, want a dynamically-linked error", dyn, err)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// dynamicBinary returns a dynamically linked executable of this machine, or "".
func dynamicBinary() string {
	for _, p := range []string{"/bin/sh", "/bin/ls", "/usr/bin/env"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		defer f.Close()
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				return p
			}
		}
	}
	return ""
}

// No engine needed: an unreachable engine is ErrUnavailable with its address.
func TestUnreachableEngine(t *testing.T) {
	t.Parallel()
	cli, err := client.NewClientWithOpts(client.WithHost("unix:///nonexistent/docker.sock"), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	d, err := docker.New(t.Context(), docker.Options{Instance: "bt-unreachable", Client: cli})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	err = d.Ping(t.Context())
	if !errors.Is(err, berth.ErrUnavailable) || !strings.Contains(err.Error(), "docker engine unreachable at unix:///nonexistent/docker.sock") {
		t.Errorf("Ping: %v, want ErrUnavailable naming the socket", err)
	}
	_, err = d.Create(t.Context(), berth.ContainerSpec{Name: "bt-unreachable-u", Image: "x", AgentPort: 1, Limits: berth.Limits{MemoryBytes: 64 << 20, CPUs: 1, PidsLimit: 64}})
	if !errors.Is(err, berth.ErrUnavailable) {
		t.Errorf("Create: %v, want ErrUnavailable", err)
	}
}

func TestNewRejectsBadInstance(t *testing.T) {
	t.Parallel()
	for _, inst := range []string{"", "Upper", "-x", "x-", "a--b", "a_b", strings.Repeat("a", 41)} {
		if _, err := docker.New(t.Context(), docker.Options{Instance: inst}); !errors.Is(err, berth.ErrInvalid) {
			t.Errorf("New(%q): %v, want ErrInvalid", inst, err)
		}
	}
}
