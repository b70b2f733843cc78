// Package e2e runs the real berth binary against the real Docker Engine, as
// a user would: `berth serve` as a subprocess, driven over HTTP.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
)

var (
	berthBin string // the static berth binary built for this run
	dockerC  *client.Client
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.Ping(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("BERTH_TEST_DOCKER") == "1" {
			fmt.Fprintf(os.Stderr, "FAIL: BERTH_TEST_DOCKER=1 but the Docker Engine is unreachable: %v\n(run scripts/ensure-docker.sh)\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "skipping e2e tests: no Docker Engine (%v); make test sets BERTH_TEST_DOCKER=1 to make this a failure\n", err)
		return 0
	}
	dockerC = cli
	dir, err := os.MkdirTemp("", "berth-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	berthBin = filepath.Join(dir, "berth")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	build := exec.Command("go", "build", "-trimpath", "-o", berthBin, "./cmd/berth")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build berth: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

const adminToken = "e2e-admin-token-0123456789abcdef"

// instance is one running `berth serve` with its own instance name, data
// directory and port.
type instance struct {
	t        testing.TB
	name     string
	url      string
	dataDir  string
	cmd      *exec.Cmd
	out      *syncBuffer
	env      []string
	done     chan struct{}
	stopOnce sync.Once
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer runs `berth serve` with extra environment and waits until it
// answers. Everything it makes on the engine is removed at cleanup.
func startServer(t testing.TB, extraEnv ...string) *instance {
	t.Helper()
	name := "bt-e2e-" + randHex(4)
	inst := &instance{t: t, name: name, dataDir: t.TempDir(), out: &syncBuffer{}}
	port := freePort(t)
	inst.url = "http://127.0.0.1:" + strconv.Itoa(port)
	inst.env = append(os.Environ(),
		"BERTH_LISTEN=127.0.0.1:"+strconv.Itoa(port),
		"BERTH_DATA_DIR="+inst.dataDir,
		"BERTH_INSTANCE="+name,
		"BERTH_ADMIN_TOKEN="+adminToken,
		"BERTH_LOG_LEVEL=debug",
	)
	inst.env = append(inst.env, extraEnv...)
	t.Cleanup(func() { cleanupEngine(t, name); cleanupFirewall(t, name) })
	inst.start()
	t.Cleanup(inst.stop)
	return inst
}

func (in *instance) start() {
	t := in.t
	t.Helper()
	in.cmd = exec.Command(berthBin, "serve")
	in.cmd.Env = in.env
	in.cmd.Stdout, in.cmd.Stderr = in.out, in.out
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.done = make(chan struct{})
	in.stopOnce = sync.Once{}
	go func() { _ = in.cmd.Wait(); close(in.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(in.url + "/health")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-in.done:
			t.Fatalf("berth serve exited early:\n%s", in.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth serve did not answer within 60s:\n%s", in.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the process to exit.
func (in *instance) stop() {
	in.stopOnce.Do(func() {
		if in.cmd == nil || in.cmd.Process == nil {
			return
		}
		_ = in.cmd.Process.Signal(os.Interrupt)
		select {
		case <-in.done:
		case <-time.After(30 * time.Second):
			_ = in.cmd.Process.Kill()
			<-in.done
		}
		if in.t.Failed() {
			in.t.Logf("berth serve output:\n%s", in.out.String())
		}
	})
}

// kill ends the control plane with SIGKILL, as a crash would.
func (in *instance) kill() {
	in.stopOnce.Do(func() {
		_ = in.cmd.Process.Kill()
		<-in.done
	})
}

// cleanupEngine removes every container, volume, network and image labelled
// with the instance, whatever state a test left them in.
func cleanupEngine(t testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", "berth.instance="+name))
	cs, err := dockerC.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Errorf("cleanup: list containers: %v", err)
	}
	for _, c := range cs {
		if err := dockerC.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			t.Errorf("cleanup: remove container %s: %v", c.ID, err)
		}
	}
	vs, err := dockerC.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err == nil {
		for _, v := range vs.Volumes {
			if err := dockerC.VolumeRemove(ctx, v.Name, true); err != nil {
				t.Errorf("cleanup: remove volume %s: %v", v.Name, err)
			}
		}
	}
	ns, err := dockerC.NetworkList(ctx, network.ListOptions{Filters: f})
	if err == nil {
		for _, n := range ns {
			if err := dockerC.NetworkRemove(ctx, n.ID); err != nil {
				t.Errorf("cleanup: remove network %s: %v", n.Name, err)
			}
		}
	}
	is, err := dockerC.ImageList(ctx, image.ListOptions{Filters: f})
	if err == nil {
		for _, im := range is {
			if _, err := dockerC.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
				t.Errorf("cleanup: remove image %s: %v", im.ID, err)
			}
		}
	}
}

// engineObjects counts this instance's containers, volumes and networks.
func engineObjects(t testing.TB, name string) (containers, volumes, networks int) {
	t.Helper()
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", "berth.instance="+name))
	cs, err := dockerC.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := dockerC.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := dockerC.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	return len(cs), len(vs.Volumes), len(ns)
}

// call sends a request with a token and decodes the JSON answer into out
// (when out is not nil). It returns the status code and the raw body.
func (in *instance) call(method, path, token string, body any, out any) (int, string) {
	in.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			in.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, in.url+path, rd)
	if err != nil {
		in.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: 3 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(data, out); err != nil {
			in.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, string(data)
}

// mustCall is call that fails the test unless the status is want.
func (in *instance) mustCall(want int, method, path, token string, body, out any) string {
	in.t.Helper()
	got, raw := in.call(method, path, token, body, out)
	if got != want {
		in.t.Fatalf("%s %s = %d %s, want %d", method, path, got, raw, want)
	}
	return raw
}

func errorCode(t testing.TB, raw string) string {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(raw), &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not the error shape: %q", raw)
	}
	return e.Error.Code
}
