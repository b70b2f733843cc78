package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/berth/berth/api"
)

// The attack plans: small limits so the limits are reached quickly; the
// sandbox plan runs gVisor (runsc) and leaves pids headroom for its threads.
const attackPlans = `plans:
  free:
    memory: 96m
    cpus: 0.5
    pids_limit: 64
    nofile: 1024
    containers_per_user: 2
  sandbox:
    memory: 192m
    cpus: 0.5
    actions_per_day: 20
    containers_per_user: 2
    price_monthly: 5
    pids_limit: 256
    runtime: runsc
  closed:
    memory: 96m
    cpus: 0.5
    actions_per_day: 20
    containers_per_user: 1
    price_monthly: 5
    pids_limit: 64
    egress: "off"
`

var (
	attackerOnce sync.Once
	attackerBin  string
	attackerErr  error
)

// buildAttacker compiles testdata/attacker statically, once per run.
func buildAttacker(t testing.TB) string {
	t.Helper()
	attackerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-attacker-")
		if err != nil {
			attackerErr = err
			return
		}
		attackerBin = filepath.Join(dir, "attack")
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-trimpath", "-o", attackerBin, "./testdata/attacker")
		cmd.Dir = filepath.Dir(file)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			attackerErr = err
			t.Logf("%s", out)
		}
	})
	if attackerErr != nil {
		t.Fatalf("build attacker: %v", attackerErr)
	}
	return attackerBin
}

// startAttackServer runs berth serve with the attack plans and the host
// firewall required.
func startAttackServer(t *testing.T, extraEnv ...string) *instance {
	t.Helper()
	plans := filepath.Join(t.TempDir(), "plans.yaml")
	if err := os.WriteFile(plans, []byte(attackPlans), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServer(t, append([]string{"BERTH_PLANS_FILE=" + plans, "BERTH_FIREWALL=on"}, extraEnv...)...)
}

// plant copies the attacker into the container's /data volume (the only
// writable place besides /tmp; the root filesystem is read-only).
func plant(t testing.TB, name string) {
	t.Helper()
	bin, err := os.ReadFile(buildAttacker(t))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "attack", Mode: 0o755, Size: int64(len(bin)), Uid: 65534, Gid: 65534, ModTime: time.Now()})
	_, _ = tw.Write(bin)
	_ = tw.Close()
	if err := dockerC.CopyToContainer(context.Background(), name, "/data", &buf, container.CopyToContainerOptions{}); err != nil {
		t.Fatalf("copy attacker into %s: %v", name, err)
	}
}

type attackResult struct {
	Attack string `json:"attack"`
	Target string `json:"target"`
	OK     bool   `json:"ok"`
	Err    string `json:"err"`
	N      int    `json:"n"`
	Exit   int    `json:"-"`
	Raw    string `json:"-"`
}

// attack runs /data/attack in the container with docker exec: the process
// has the container's user, capabilities, seccomp profile, namespaces and
// cgroups, like any process a tenant's workload starts.
func attack(t testing.TB, name string, args ...string) attackResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ex, err := dockerC.ContainerExecCreate(ctx, name, container.ExecOptions{Cmd: append([]string{"/data/attack"}, args...), AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec create in %s: %v", name, err)
	}
	hj, err := dockerC.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec attach: %v", err)
	}
	var stdout, stderr bytes.Buffer
	_, _ = stdcopy.StdCopy(&stdout, &stderr, hj.Reader)
	hj.Close()
	var r attackResult
	for i := 0; i < 50; i++ {
		ins, err := dockerC.ContainerExecInspect(ctx, ex.ID)
		if err == nil && !ins.Running {
			r.Exit = ins.ExitCode
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Raw = stdout.String() + stderr.String()
	if line := strings.TrimSpace(stdout.String()); line != "" {
		_ = json.Unmarshal([]byte(line), &r)
	}
	return r
}

// hostIP returns a non-loopback address of the host that is not on a
// Docker bridge: a service listening on 0.0.0.0 is reachable there.
func hostIP(t testing.TB) string {
	t.Helper()
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 || i.Flags&net.FlagUp == 0 || strings.HasPrefix(i.Name, "br-") || strings.HasPrefix(i.Name, "docker") || strings.HasPrefix(i.Name, "veth") || strings.HasPrefix(i.Name, "b") && len(i.Name) == 15 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return ""
}

// netOf returns a container's IP and its network's gateway.
func netOf(t testing.TB, name string) (ip, gateway string, n network.Inspect) {
	t.Helper()
	ins, err := dockerC.ContainerInspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	for netName, ep := range ins.NetworkSettings.Networks {
		n, err = dockerC.NetworkInspect(context.Background(), netName, network.InspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ep.IPAddress, ep.Gateway, n
	}
	t.Fatalf("%s has no network", name)
	return
}

func TestAttackFromInsideRunc(t *testing.T) {
	t.Parallel()
	runAttacks(t, "free", 64)
}

func TestAttackFromInsideRunsc(t *testing.T) {
	t.Parallel()
	info, err := dockerC.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := info.Runtimes["runsc"]; !ok {
		if os.Getenv("BERTH_TEST_DOCKER") == "1" {
			t.Fatal("the runsc runtime is not registered with the engine: run scripts/ensure-runsc.sh (make test does)")
		}
		t.Skip("runsc not registered")
	}
	runAttacks(t, "sandbox", 256)
}

// runAttacks onboards a victim and an attacker on plan and runs every
// attack from inside the attacker's container.
func runAttacks(t *testing.T, plan string, pidsLimit int) {
	s := startAttackServer(t)
	victim := s.onboard("victim_"+plan, plan)
	mallory := s.onboard("mallory_"+plan, plan)
	if got := mallory.Container.Runtime; plan == "sandbox" && got != "runsc" || plan != "sandbox" && got != "runc" {
		t.Errorf("status runtime = %q", got)
	}
	vName, mName := victim.Container.ContainerName, mallory.Container.ContainerName
	vIP, _, _ := netOf(t, vName)
	mIP, gw, mNet := netOf(t, mName)
	if vIP == "" || mIP == "" || gw == "" {
		t.Fatalf("addresses: victim %q, mallory %q, gateway %q", vIP, mIP, gw)
	}
	if !strings.HasPrefix(mNet.IPAM.Config[0].Subnet, "10.213.") || mNet.Name != mName+"-net" {
		t.Errorf("mallory's network %s %v: want <name>-net from the pool", mNet.Name, mNet.IPAM.Config)
	}
	plant(t, mName)

	// A service on the host, on every address.
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	hostPort := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	victimAgentPort := strconv.Itoa(victimPort(t, s, victim))

	// The attack tool works: the container's own agent answers.
	if r := attack(t, mName, "connect", "127.0.0.1:9000"); !r.OK {
		t.Fatalf("control: own agent unreachable (%s): the attack results below would mean nothing", r.Raw)
	}
	// Egress on: the host's resolvers answer (they are allowed on port 53
	// even in a private range), but never with another tenant's address.
	if r := attack(t, mName, "resolve", "localhost.invalid"); r.Err != "" && strings.Contains(r.Err, "timeout") {
		t.Errorf("DNS through the host's resolvers timed out: %s", r.Raw)
	}
	if r := attack(t, mName, "write", "/tmp/ok"); !r.OK {
		t.Errorf("write /tmp: %s", r.Raw)
	}
	if r := attack(t, mName, "write", "/data/ok"); !r.OK {
		t.Errorf("write /data: %s", r.Raw)
	}

	// The kernel's view: uid 65534, no effective or bounding capabilities,
	// no_new_privs, seccomp filter mode (runc; gVisor is its own kernel).
	if r := attack(t, mName, "procstatus"); plan != "sandbox" {
		for _, want := range []string{"Uid: 65534 65534 65534 65534", "CapEff: 0000000000000000", "CapBnd: 0000000000000000", "NoNewPrivs: 1", "Seccomp: 2"} {
			if !strings.Contains(r.Target, want) {
				t.Errorf("/proc/self/status lacks %q: %s", want, r.Target)
			}
		}
	} else {
		t.Logf("under runsc: %s", r.Target)
	}

	mustFail := [][]string{
		{"connect", net.JoinHostPort(vIP, "9000")},         // another tenant by IP
		{"resolve", vName},                                 // another tenant by name
		{"connect", vName + ":9000"},                       //
		{"connect", net.JoinHostPort(gw, hostPort)},        // the host through the gateway
		{"connect", net.JoinHostPort(gw, victimAgentPort)}, // another tenant's published agent port
		{"connect", net.JoinHostPort(gw, portOf(s.url))},   // the control plane
		{"connect", "169.254.169.254:80"},                  // cloud metadata
		{"connect", "10.0.0.1:80"},                         // private ranges
		{"connect", "192.168.1.1:80"},                      //
		{"connect", "172.17.0.1:" + hostPort},              // docker0 gateway
		{"mount", "/tmp"},                                  // mount
		{"chroot", "/tmp"},                                 // chroot
		{"setuid"},                                         // setuid(0)
		{"rawsocket"},                                      // raw sockets
		{"packetsocket"},                                   //
		{"write", "/etc/passwd"},                           // outside /tmp and /data
		{"write", "/pwned"},                                //
		{"write", "/berth"},                                //
		{"write", "/proc/sys/kernel/hostname"},             //
		{"write", "/sys/fs/cgroup/pids/pids.max"},          //
	}
	if ip := hostIP(t); ip != "" {
		mustFail = append(mustFail, []string{"connect", net.JoinHostPort(ip, hostPort)}) // the host's main address
	}
	for _, a := range mustFail {
		r := attack(t, mName, a...)
		if r.Attack == "" {
			t.Errorf("%v: no result: exit %d %q", a, r.Exit, r.Raw)
		} else if r.OK {
			t.Errorf("ATTACK SUCCEEDED: %v from %s (%s)", a, mName, r.Raw)
		} else {
			t.Logf("refused: %v: %s", a, r.Err)
		}
	}

	// Fork bomb: held at the pids limit; the container and its agent live on.
	r := attack(t, mName, "forkbomb", "5000")
	t.Logf("fork bomb: %d children before %q (exit %d)", r.N, r.Err, r.Exit)
	if r.N >= pidsLimit || (r.Attack != "" && r.Err == "") {
		t.Errorf("fork bomb started %d children (pids limit %d): %s", r.N, pidsLimit, r.Raw)
	}
	var st api.Container
	s.mustCall(200, "GET", "/api/containers/"+mallory.User.UserID+"/status", mallory.Token, nil, &st)
	if st.Status != "running" {
		t.Errorf("after the fork bomb: status %q", st.Status)
	}

	// Memory hog: the kernel OOM-kills it and status says so.
	r = attack(t, mName, "memhog", "1024")
	t.Logf("memory hog: exit %d, %q", r.Exit, r.Raw)
	if r.OK {
		t.Errorf("memory hog allocated %d MiB past a %s limit", r.N, plan)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		s.mustCall(200, "GET", "/api/containers/"+mallory.User.UserID+"/status", mallory.Token, nil, &st)
		if st.OOMKilled || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !st.OOMKilled {
		t.Errorf("status after the memory hog does not report oom_killed: %+v", st)
	}
	// The victim was never disturbed.
	var vs api.Container
	s.mustCall(200, "GET", "/api/containers/"+victim.User.UserID+"/status", victim.Token, nil, &vs)
	if vs.Status != "running" || vs.Health != "healthy" {
		t.Errorf("victim status after the attacks: %s/%s", vs.Status, vs.Health)
	}
}

func portOf(url string) string {
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
	return p
}

func victimPort(t testing.TB, s *instance, ob api.OnboardResponse) int {
	t.Helper()
	ins, err := dockerC.ContainerInspect(context.Background(), ob.Container.ContainerName)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range ins.HostConfig.PortBindings["9000/tcp"] {
		p, _ := strconv.Atoi(b.HostPort)
		return p
	}
	t.Fatal("victim has no published agent port")
	return 0
}

// TestEgressOff: a plan with egress off gets a network whose bridge the
// host firewall drops every new outbound connection of (counted by the
// chain's DROP rule), while onboarding still works through the 127.0.0.1
// published port.
func TestEgressOff(t *testing.T) {
	t.Parallel()
	s := startAttackServer(t)
	ob := s.onboard("closed_user", "closed")
	if ob.Container.Status != "running" {
		t.Fatalf("onboarding an egress-off container: %+v", ob.Container)
	}
	_, _, n := netOf(t, ob.Container.ContainerName)
	if n.Labels["berth.egress"] != "off" || !strings.HasPrefix(n.Options["com.docker.network.bridge.name"], "x") {
		t.Errorf("network %s: labels %v options %v", n.Name, n.Labels, n.Options)
	}
	plant(t, ob.Container.ContainerName)
	chain := firewallChain(s.name, "NO")
	before := dropCount(t, chain)
	if r := attack(t, ob.Container.ContainerName, "connect", "1.1.1.1:443"); r.OK {
		t.Errorf("egress off but 1.1.1.1:443 answered")
	}
	if after := dropCount(t, chain); after <= before {
		t.Errorf("%s dropped %d packets before and %d after an outbound connection: the firewall did not stop it", chain, before, after)
	}
}

func firewallChain(instance, suffix string) string { return "BERTH-" + instance + "-" + suffix }

// dropCount is the packet count of the chain's final DROP rule.
func dropCount(t testing.TB, chain string) int {
	t.Helper()
	out, err := exec.Command("iptables", "-w", "5", "-L", chain, "-v", "-x", "-n").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables -L %s: %v: %s", chain, err, out)
	}
	n := -1
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && f[2] == "DROP" {
			n, _ = strconv.Atoi(f[0])
		}
	}
	return n
}
