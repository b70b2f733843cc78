// Command bench measures Berth against baselines run side by side in the
// same run (these machines are noisy: read the ratios). `make bench` runs it.
//
//	go run ./internal/bench -berth bin/berth [-n 20]
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/berth/berth/api"
	"github.com/berth/berth/internal/driver/docker"
)

const admin = "bench-admin-token-0123456789abcdef"

type bench struct {
	bin, url, instance, dataDir string
	docker                      *client.Client
	cmd                         *exec.Cmd
	image                       string
	rows                        [][]string
	extraEnv                    []string  // more environment for `berth serve`
	logOut                      io.Writer // its stdout; nil discards
	skipWarmup                  bool      // another replica built the image
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("berth", "bin/berth", "static berth binary")
	n := flag.Int("n", 20, "users per onboarding series")
	replicas := flag.Bool("replicas", false, "measure the scale-out figures instead: 1 vs 3 replicas on PostgreSQL + Redis behind nginx")
	flag.Parse()
	abs, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	if *replicas {
		return runReplicas(abs, cli)
	}
	b := &bench{bin: abs, docker: cli, instance: "bench-" + randHex(3)}
	defer b.cleanup()
	if err := b.start(); err != nil {
		return err
	}
	fmt.Printf("berth bench: instance %s, %s\n\n", b.instance, time.Now().UTC().Format(time.RFC3339))
	steps := []struct {
		name string
		f    func() error
	}{
		{"onboarding", func() error { return b.onboarding(*n) }},
		{"agent memory", b.agentMemory},
		{"reservations", b.reservations},
		{"live actions", b.live},
	}
	for _, s := range steps {
		fmt.Printf("-- %s …\n", s.name)
		if err := s.f(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	fmt.Println()
	fmt.Println("| figure | berth | baseline | ratio |")
	fmt.Println("|---|---|---|---|")
	for _, r := range b.rows {
		fmt.Printf("| %s |\n", strings.Join(r, " | "))
	}
	return nil
}

func (b *bench) row(name, got, base, ratio string) {
	b.rows = append(b.rows, []string{name, got, base, ratio})
}

func (b *bench) start() error {
	dir, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return err
	}
	b.dataDir = dir
	plans := filepath.Join(dir, "plans.yaml")
	if err := os.WriteFile(plans, []byte("plans:\n  bench:\n    memory: 256m\n    cpus: 1\n    actions_per_day: 1000000000\n    containers_per_user: 1\n    price_monthly: 0\n    pids_limit: 256\n"), 0o644); err != nil {
		return err
	}
	port := freePort()
	b.url = "http://127.0.0.1:" + strconv.Itoa(port)
	b.cmd = exec.Command(b.bin, "serve")
	b.cmd.Env = append(os.Environ(), "BERTH_LISTEN=127.0.0.1:"+strconv.Itoa(port), "BERTH_DATA_DIR="+filepath.Join(dir, "data"),
		"BERTH_INSTANCE="+b.instance, "BERTH_ADMIN_TOKEN="+admin, "BERTH_PLANS_FILE="+plans, "BERTH_OVERCOMMIT=100", "BERTH_LOG_LEVEL=warn",
		"BERTH_RATE_LIMIT=off", "BERTH_RATE_LIMIT_ADDR=off") // one client address; rate limits are not what is measured
	b.cmd.Env = append(b.cmd.Env, b.extraEnv...)
	b.cmd.Stdout, b.cmd.Stderr = io.Discard, os.Stderr
	if b.logOut != nil {
		b.cmd.Stdout, b.cmd.Stderr = b.logOut, b.logOut
	}
	if err := b.cmd.Start(); err != nil {
		return err
	}
	for i := 0; i < 600; i++ {
		if resp, err := http.Get(b.url + "/health"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b.skipWarmup {
		return nil
	}
	// The first onboarding builds the tenant image; warm it up and learn the ref.
	var ob api.OnboardResponse
	if err := b.call("POST", "/api/users/onboard", admin, api.OnboardRequest{UserID: "warmup", Email: "w@example.com", Plan: "bench"}, &ob); err != nil {
		return err
	}
	b.image = ob.Container.Image
	return b.call("POST", "/api/containers/warmup/action", admin, api.ContainerActionRequest{Action: "remove"}, nil)
}

func (b *bench) cleanup() {
	if b.cmd != nil && b.cmd.Process != nil {
		_ = b.cmd.Process.Signal(os.Interrupt)
		_, _ = b.cmd.Process.Wait()
	}
	// berth serve's host firewall chains outlive it by design: remove this
	// instance's (a no-op where there is no firewall).
	_ = exec.Command(b.bin, "firewall", "remove", "--instance", b.instance).Run()
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", "berth.instance="+b.instance))
	cs, _ := b.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	for _, c := range cs {
		_ = b.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}
	vs, _ := b.docker.VolumeList(ctx, volume.ListOptions{Filters: f})
	for _, v := range vs.Volumes {
		_ = b.docker.VolumeRemove(ctx, v.Name, true)
	}
	ns, _ := b.docker.NetworkList(ctx, network.ListOptions{Filters: f})
	for _, n := range ns {
		_ = b.docker.NetworkRemove(ctx, n.ID)
	}
	is, _ := b.docker.ImageList(ctx, image.ListOptions{Filters: f})
	for _, im := range is {
		_, _ = b.docker.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true})
	}
	if b.dataDir != "" {
		os.RemoveAll(b.dataDir)
	}
}

// onboarding: POST /api/users/onboard → 200 (the agent answered /health)
// against a raw SDK create+start of the same image → first 200 from
// /health, interleaved so both see the same machine load.
func (b *bench) onboarding(n int) error {
	var berthT, rawT []time.Duration
	for i := 0; i < n; i++ {
		d, err := b.rawRun(i)
		if err != nil {
			return err
		}
		rawT = append(rawT, d)
		user := fmt.Sprintf("bench_%d", i)
		start := time.Now()
		if err := b.call("POST", "/api/users/onboard", admin, api.OnboardRequest{UserID: user, Email: user + "@example.com", Plan: "bench"}, nil); err != nil {
			return err
		}
		berthT = append(berthT, time.Since(start))
		if err := b.call("POST", "/api/containers/"+user+"/action", admin, api.ContainerActionRequest{Action: "remove"}, nil); err != nil {
			return err
		}
	}
	bp50, bp95 := pct(berthT, 50), pct(berthT, 95)
	rp50, rp95 := pct(rawT, 50), pct(rawT, 95)
	b.row(fmt.Sprintf("onboard → agent healthy, p50 (n=%d)", n), ms(bp50), ms(rp50)+" raw docker run", ratio(bp50, rp50))
	b.row(fmt.Sprintf("onboard → agent healthy, p95 (n=%d)", n), ms(bp95), ms(rp95)+" raw docker run", ratio(bp95, rp95))
	return nil
}

// rawRun creates and starts the tenant image with the SDK, publishing the
// agent port on 127.0.0.1, and times it to the first 200 from /health.
func (b *bench) rawRun(i int) (time.Duration, error) {
	ctx := context.Background()
	port := freePort()
	name := fmt.Sprintf("%s-raw-%d", b.instance, i)
	start := time.Now()
	_, err := b.docker.ContainerCreate(ctx, &container.Config{
		Image:        b.image,
		Env:          []string{"BERTH_AGENT_SECRET=" + randHex(16)},
		Labels:       map[string]string{"berth.instance": b.instance},
		ExposedPorts: nat.PortSet{"9000/tcp": {}},
	}, &container.HostConfig{
		PortBindings: nat.PortMap{"9000/tcp": {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(port)}}},
		Tmpfs:        map[string]string{"/data": "size=16m,uid=65534", "/tmp": "size=16m"},
	}, nil, nil, name)
	if err != nil {
		return 0, err
	}
	defer b.docker.ContainerRemove(ctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err := b.docker.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		return 0, err
	}
	for time.Since(start) < time.Minute {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(start), nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, fmt.Errorf("raw container never answered")
}

// agentMemory: RSS of the agent idle and during a run, beside a baseline
// of a minimal static Go HTTP server (the driver tests' testagent) idling
// in a container made the same way.
func (b *bench) agentMemory() error {
	base, err := b.baselineRSS()
	if err != nil {
		return err
	}
	user := "bench_mem"
	if err := b.call("POST", "/api/users/onboard", admin, api.OnboardRequest{UserID: user, Email: "m@example.com", Plan: "bench"}, nil); err != nil {
		return err
	}
	name := b.instance + "-" + user
	idle, err := b.rss(name)
	if err != nil {
		return err
	}
	if err := b.call("POST", "/api/automation/"+user+"/start", admin, json.RawMessage(`{"workflow":"engagement","config":{"pace_ms":1,"loop":true,"max_actions":3000}}`), nil); err != nil {
		return err
	}
	var peak int64
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r, err := b.rss(name)
		if err == nil && r > peak {
			peak = r
		}
		var st api.AutomationStatus
		if err := b.call("GET", "/api/automation/"+user+"/status", admin, nil, &st); err == nil && st.State != api.StateRunning {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.row("agent RSS idle (VmRSS of the container's processes)", mib(idle), mib(base)+" minimal Go HTTP server", fmt.Sprintf("%.2f×", float64(idle)/float64(base)))
	b.row("agent RSS during an engagement run (peak; agent + workflow child)", mib(peak), mib(idle)+" idle", fmt.Sprintf("%.2f×", float64(peak)/float64(idle)))
	return b.call("POST", "/api/containers/"+user+"/action", admin, api.ContainerActionRequest{Action: "remove"}, nil)
}

// baselineRSS builds the minimal test server, imports it as a scratch
// image and reads the idle RSS of one container of it.
func (b *bench) baselineRSS() (int64, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "berth-bench-testagent-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "berth")
	build := exec.Command("go", "build", "-o", bin, "./internal/driver/drivertest/testagent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build testagent: %v: %s", err, out)
	}
	drv, err := docker.New(ctx, docker.Options{Instance: b.instance, Client: b.docker})
	if err != nil {
		return 0, err
	}
	ref, err := drv.EnsureImage(ctx, bin)
	if err != nil {
		return 0, err
	}
	name := b.instance + "-baseline"
	if _, err := b.docker.ContainerCreate(ctx, &container.Config{Image: ref, Labels: map[string]string{"berth.instance": b.instance}},
		&container.HostConfig{Tmpfs: map[string]string{"/data": "size=16m,uid=65534"}}, nil, nil, name); err != nil {
		return 0, err
	}
	defer b.docker.ContainerRemove(ctx, name, container.RemoveOptions{Force: true})
	if err := b.docker.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		return 0, err
	}
	time.Sleep(time.Second)
	return b.rss(name)
}

// rss sums VmRSS over the container's processes (read from the host's /proc).
func (b *bench) rss(name string) (int64, error) {
	top, err := b.docker.ContainerTop(context.Background(), name, []string{"-o", "pid"})
	if err != nil {
		return 0, err
	}
	var total int64
	for _, p := range top.Processes {
		data, err := os.ReadFile("/proc/" + strings.TrimSpace(p[0]) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				total += kb << 10
			}
		}
	}
	return total, nil
}

// reservations: sustained POST /v1/actions/reserve (quota check + durable
// ledger record) against GET /health on the same agent, same clients.
func (b *bench) reservations() error {
	user := "bench_res"
	if err := b.call("POST", "/api/users/onboard", admin, api.OnboardRequest{UserID: user, Email: "r@example.com", Plan: "bench"}, nil); err != nil {
		return err
	}
	base, secret, err := b.agentOf(b.instance + "-" + user)
	if err != nil {
		return err
	}
	const clients, dur = 8, 3 * time.Second
	health := hammer(clients, dur, func(c *http.Client) error {
		resp, err := c.Get(base + "/health")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	})
	reserve := hammer(clients, dur, func(c *http.Client) error {
		req, _ := http.NewRequest("POST", base+"/v1/actions/reserve", strings.NewReader(`{"action":"like"}`))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("reserve: %d", resp.StatusCode)
		}
		return nil
	})
	b.row(fmt.Sprintf("reservations/s sustained (%d clients, %s; each fsynced)", clients, dur), fmt.Sprintf("%.0f/s", reserve), fmt.Sprintf("%.0f/s GET /health", health), fmt.Sprintf("%.2f×", reserve/health))
	return b.call("POST", "/api/containers/"+user+"/action", admin, api.ContainerActionRequest{Action: "remove"}, nil)
}

// live: action acknowledged in the container → WebSocket viewer through the
// control plane, against the same events read straight from the agent's
// /ws; and fan-out to 1, 10 and 100 viewers.
func (b *bench) live() error {
	user := "bench_live"
	var ob api.OnboardResponse
	if err := b.call("POST", "/api/users/onboard", admin, api.OnboardRequest{UserID: user, Email: "l@example.com", Plan: "bench"}, &ob); err != nil {
		return err
	}
	agentURL, secret, err := b.agentOf(b.instance + "-" + user)
	if err != nil {
		return err
	}
	cpWS := strings.Replace(b.url, "http://", "ws://", 1) + "/ws/" + user + "?token=" + ob.Token
	agentWS := strings.Replace(agentURL, "http://", "ws://", 1) + "/ws"
	for _, viewers := range []int{1, 10, 100} {
		const actions = 300
		var wg sync.WaitGroup
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cp := make([]*collector, viewers)
		for i := range cp {
			c, err := dial(ctx, cpWS, nil)
			if err != nil {
				cancel()
				return err
			}
			cp[i] = c
		}
		direct, err := dial(ctx, agentWS, http.Header{"Authorization": []string{"Bearer " + secret}})
		if err != nil {
			cancel()
			return err
		}
		all := append([]*collector{direct}, cp...)
		for _, c := range all {
			wg.Add(1)
			go func() { defer wg.Done(); c.collect(ctx, actions) }()
		}
		if err := b.call("POST", "/api/automation/"+user+"/start", ob.Token, json.RawMessage(fmt.Sprintf(`{"workflow":"engagement","config":{"pace_ms":0,"loop":true,"max_actions":%d}}`, actions)), nil); err != nil {
			cancel()
			return err
		}
		wg.Wait()
		cancel()
		var cpLat []time.Duration
		var cpRate float64
		for _, c := range cp {
			cpLat = append(cpLat, c.lat...)
			cpRate += c.rate()
		}
		cpRate /= float64(len(cp))
		if viewers == 1 {
			b.row("action → viewer latency p50 (control plane /ws vs agent /ws)", ms(pct(cpLat, 50)), ms(pct(direct.lat, 50))+" from the agent", "+"+ms(pct(cpLat, 50)-pct(direct.lat, 50)))
			b.row("action → viewer latency p99", ms(pct(cpLat, 99)), ms(pct(direct.lat, 99))+" from the agent", "+"+ms(pct(cpLat, 99)-pct(direct.lat, 99)))
		}
		b.row(fmt.Sprintf("fan-out: action events/s per viewer, %d viewer(s)", viewers), fmt.Sprintf("%.0f/s (p99 %s)", cpRate, ms(pct(cpLat, 99))), fmt.Sprintf("%.0f/s from the agent", direct.rate()), fmt.Sprintf("%.2f×", cpRate/direct.rate()))
		// wait for the run to end before the next series
		for i := 0; i < 100; i++ {
			var st api.AutomationStatus
			if err := b.call("GET", "/api/automation/"+user+"/status", ob.Token, nil, &st); err == nil && st.State != api.StateRunning && st.State != api.StateStopping {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

type collector struct {
	conn        *websocket.Conn
	lat         []time.Duration
	first, last time.Time
	n           int
}

func dial(ctx context.Context, url string, h http.Header) (*collector, error) {
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", strings.Split(url, "?")[0], err)
	}
	conn.SetReadLimit(1 << 20)
	return &collector{conn: conn}, nil
}

// collect reads until it has seen n new action events (only those after it connected).
func (c *collector) collect(ctx context.Context, n int) {
	defer c.conn.CloseNow()
	for c.n < n {
		_, data, err := c.conn.Read(ctx)
		if err != nil {
			return
		}
		now := time.Now()
		var ev api.Event
		if json.Unmarshal(data, &ev) != nil || ev.Type != api.EventAction {
			continue
		}
		if c.n == 0 {
			c.first = now
		}
		c.last = now
		c.n++
		c.lat = append(c.lat, now.Sub(ev.Timestamp))
	}
}

func (c *collector) rate() float64 {
	d := c.last.Sub(c.first).Seconds()
	if d <= 0 || c.n < 2 {
		return 0
	}
	return float64(c.n-1) / d
}

func (b *bench) agentOf(name string) (string, string, error) {
	ins, err := b.docker.ContainerInspect(context.Background(), name)
	if err != nil {
		return "", "", err
	}
	secret := ""
	for _, e := range ins.Config.Env {
		if v, ok := strings.CutPrefix(e, api.EnvAgentSecret+"="); ok {
			secret = v
		}
	}
	for _, bs := range ins.HostConfig.PortBindings {
		if len(bs) > 0 {
			return "http://127.0.0.1:" + bs[0].HostPort, secret, nil
		}
	}
	return "", "", fmt.Errorf("%s publishes no port", name)
}

// hammer runs f from clients goroutines for d and returns calls per second.
func hammer(clients int, d time.Duration, f func(*http.Client) error) float64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for time.Now().Before(stop) {
				if f(c) == nil {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}

func (b *bench) call(method, path, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, b.url+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[min(i, len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
func mib(b int64) string        { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
func ratio(a, b time.Duration) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
