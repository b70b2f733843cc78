package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/berth/berth/api"
)

// TestPythonImage builds the example Python tenant image with
// scripts/python-image.sh (a real Python 3 from a debootstrap rootfs, cached
// between runs in $BERTH_CACHE; the first run takes about a minute), makes it
// the starter plan's image, and runs its Python workflow end to end through
// the control plane: the workflow reserves a "digest" per feed item through
// sdk/python, the cap {"digests_per_day": 2} grants exactly two, and the
// other four are denied.
//
// Everything but the cached base image (berth-python-base:*, label
// berth.cache=python-base) is removed at the end.
func TestPythonImage(t *testing.T) {
	if os.Getenv("BERTH_TEST_DOCKER") != "1" && os.Geteuid() != 0 {
		t.Skip("building the Python image needs root (debootstrap); make test sets BERTH_TEST_DOCKER=1 to make this a failure")
	}
	t.Parallel()
	const (
		userID   = "py_user1"
		workflow = "summarise-feed"
		allowed  = 2
		items    = 6 // examples/python-workflow/feed.json
	)

	// 1. The image, from the binary this run built.
	tag := "bt-e2e-pyimg-" + randHex(4) + ":test"
	t.Cleanup(func() { removeImage(t, tag) }) // registered first: runs after the server's cleanup
	buildPythonImage(t, tag)
	ins, _, err := dockerC.ImageInspectWithRaw(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if ins.Config.User != "65534:65534" || strings.Join(ins.Config.Entrypoint, " ") != "/usr/local/bin/berth agent" {
		t.Fatalf("image user %q entrypoint %q", ins.Config.User, ins.Config.Entrypoint)
	}

	// 2. A control plane whose starter plan uses it.
	plans := filepath.Join(t.TempDir(), "plans.yaml")
	if err := os.WriteFile(plans, []byte("plans:\n  starter:\n    image: "+tag+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "BERTH_PLANS_FILE="+plans)

	var ob api.OnboardResponse
	s.mustCall(200, "POST", "/api/users/onboard", adminToken,
		map[string]string{"user_id": userID, "email": "py@example.com", "plan": "starter"}, &ob)
	if ob.Container.Image != tag || ob.Container.Status != "running" {
		t.Fatalf("container = %+v, want running on %s", ob.Container, tag)
	}
	cins, err := dockerC.ContainerInspect(context.Background(), ob.Container.ContainerName)
	if err != nil {
		t.Fatal(err)
	}
	if cins.Config.Image != tag || !cins.HostConfig.ReadonlyRootfs || cins.Config.User != "65534:65534" {
		t.Fatalf("engine runs image %q readonly=%v user=%q", cins.Config.Image, cins.HostConfig.ReadonlyRootfs, cins.Config.User)
	}

	var wfs struct {
		Workflows []api.Workflow `json:"workflows"`
	}
	s.mustCall(200, "GET", "/api/automation/"+userID+"/workflows", ob.Token, nil, &wfs)
	if len(wfs.Workflows) != 1 || wfs.Workflows[0].Name != workflow {
		t.Fatalf("workflows = %+v, want only %s (the image's manifest)", wfs.Workflows, workflow)
	}

	// Denials and log lines are live events, not replayed: start watching
	// once the control plane follows the agent.
	waitFor(t, 30*time.Second, "the ingester to follow "+ob.Container.ContainerName, func() bool {
		out := s.out.String()
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "ingest: following") && strings.Contains(l, ob.Container.ContainerName) {
				return true
			}
		}
		return false
	})
	events := watch(t, s, userID, ob.Token)

	// 3. Run the Python workflow with a cap of 2 digests.
	s.mustCall(200, "POST", "/api/automation/"+userID+"/start", ob.Token,
		map[string]any{"workflow": workflow, "config": map[string]int{"digests_per_day": allowed}}, nil)
	var st api.AutomationStatus
	waitFor(t, 60*time.Second, "the workflow to finish", func() bool {
		st = api.AutomationStatus{}
		s.mustCall(200, "GET", "/api/automation/"+userID+"/status", ob.Token, nil, &st)
		return st.State != api.StateRunning && st.State != api.StateStopping
	})
	if st.State != api.StateCompleted || st.ExitCode == nil || *st.ExitCode != 0 {
		t.Fatalf("status = %+v, want completed with exit 0", st)
	}
	if st.Today["digest"] != allowed || st.Remaining["digest"] != 0 || st.Remaining["total"] != 100-allowed {
		t.Errorf("status today %v remaining %v, want digest %d, 0 left, total %d", st.Today, st.Remaining, allowed, 100-allowed)
	}

	// 4. The control plane's record: exactly two digests, in order.
	var page api.ActionsPage
	waitFor(t, 30*time.Second, "both actions to be ingested", func() bool {
		page = api.ActionsPage{}
		s.mustCall(200, "GET", "/api/automation/"+userID+"/actions?limit=50", ob.Token, nil, &page)
		return page.Count >= allowed
	})
	time.Sleep(500 * time.Millisecond) // nothing more may trickle in
	page = api.ActionsPage{}
	s.mustCall(200, "GET", "/api/automation/"+userID+"/actions?limit=50", ob.Token, nil, &page)
	if page.Count != allowed {
		t.Fatalf("%d actions recorded, want %d: %+v", page.Count, allowed, page.Actions)
	}
	for i, a := range page.Actions { // newest first
		wantTarget := fmt.Sprintf("item-%03d", allowed-i)
		if a.Action != "digest" || a.Target != wantTarget || a.Success == nil || !*a.Success || a.Seq != int64(allowed-i) {
			t.Errorf("action %d = %+v, want a successful digest of %s, seq %d", i, a, wantTarget, allowed-i)
		}
		var d struct {
			Path     string   `json:"path"`
			Keywords []string `json:"keywords"`
		}
		if err := json.Unmarshal(a.Details, &d); err != nil || d.Path != "/data/digests/"+wantTarget+".json" || len(d.Keywords) == 0 {
			t.Errorf("action %d details %s: want the digest's path and keywords", i, a.Details)
		}
	}

	// 5. The live stream: four denials, and the workflow's own account.
	var denied int
	var summary, start map[string]any
	deadline := time.After(30 * time.Second)
	for denied < items-allowed || summary == nil {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the WebSocket closed early: %d digest denials, summary %v", denied, summary)
			}
			switch {
			case ev.Type == api.EventQuotaDenied && ev.Action == "digest":
				denied++
			case ev.Type == api.EventLog && ev.Stream == "stderr":
				var l map[string]any
				if json.Unmarshal([]byte(ev.Line), &l) == nil {
					switch l["event"] {
					case "summary":
						summary = l
					case "start":
						start = l
					}
				}
			}
		case <-deadline:
			t.Fatalf("stream: %d digest denials (want %d), summary %v", denied, items-allowed, summary)
		}
	}
	if denied != items-allowed {
		t.Errorf("%d denials, want %d", denied, items-allowed)
	}
	if summary["digested"] != float64(allowed) || summary["denied"] != float64(items-allowed) || summary["failed"] != float64(0) {
		t.Errorf("workflow summary = %v", summary)
	}
	if v, _ := start["python"].(string); !strings.HasPrefix(v, "3.") {
		t.Errorf("workflow start line = %v: want the Python 3 version", start)
	}

	// 6. Starting again the same day: every digest denied, nothing recorded.
	s.mustCall(200, "POST", "/api/automation/"+userID+"/start", ob.Token,
		map[string]any{"workflow": workflow, "config": map[string]int{"digests_per_day": allowed}}, nil)
	waitFor(t, 60*time.Second, "the second run to finish", func() bool {
		st = api.AutomationStatus{}
		s.mustCall(200, "GET", "/api/automation/"+userID+"/status", ob.Token, nil, &st)
		return st.State == api.StateCompleted || st.State == api.StateFailed
	})
	if st.State != api.StateCompleted || st.Today["digest"] != allowed {
		t.Errorf("second run status = %+v, want completed with still %d digests today", st, allowed)
	}
	s.mustCall(200, "GET", "/api/automation/"+userID+"/actions?limit=50", ob.Token, nil, &page)
	if page.Count != allowed {
		t.Errorf("after the second run %d actions recorded, want still %d", page.Count, allowed)
	}
	s.mustCall(200, "POST", "/api/automation/"+userID+"/stop", ob.Token, nil, nil)
}

// buildPythonImage runs scripts/python-image.sh with the berth binary of
// this run.
func buildPythonImage(t *testing.T, tag string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "python-image.sh"), berthBin, tag)
	cmd.Env = append(os.Environ(), "BERTH_IMAGE_LABELS=berth.e2e=python-image")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/python-image.sh failed after %s: %v\n%s", time.Since(start).Round(time.Second), err, out)
	}
	t.Logf("scripts/python-image.sh took %s", time.Since(start).Round(100*time.Millisecond))
}

// removeImage removes the test's image by tag with its untagged parent
// layers; the cached base image stays.
func removeImage(t *testing.T, tag string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := dockerC.ImageRemove(ctx, tag, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !strings.Contains(err.Error(), "No such image") {
		t.Errorf("cleanup: remove image %s: %v", tag, err)
	}
	left, err := dockerC.ImageList(ctx, image.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("reference", tag))})
	if err == nil && len(left) > 0 {
		t.Errorf("cleanup: image %s still present", tag)
	}
}

// watch streams the user's events from the control plane's WebSocket until
// the test ends.
func watch(t *testing.T, s *instance, userID, token string) <-chan api.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.url, "http")+"/ws/"+userID+"?token="+token, nil)
	if err != nil {
		cancel()
		t.Fatalf("dial the user's WebSocket: %v", err)
	}
	conn.SetReadLimit(1 << 20)
	ch := make(chan api.Event, 1024)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ch)
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				return
			}
			var ev api.Event
			if json.Unmarshal(data, &ev) == nil {
				select {
				case ch <- ev:
				default: // the test stopped reading
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		conn.CloseNow()
		wg.Wait()
	})
	return ch
}
