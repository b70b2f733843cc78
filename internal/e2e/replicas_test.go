package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/berth/berth/api"
	"github.com/berth/berth/internal/testenv"
)

// cluster is three `berth serve` replicas of one instance sharing a real
// PostgreSQL and a real Redis, behind a real nginx.
type cluster struct {
	name     string
	replicas []*instance
	lb       *instance // the balancer, driven like an instance
	nginx    *testenv.Nginx
}

// replicasEnabled: these tests start PostgreSQL, Redis, nginx and three
// control planes; plain `go test` skips them, make test sets
// BERTH_TEST_REPLICAS=1 (then a missing backend is a failure).
func replicasEnabled(t *testing.T) {
	t.Helper()
	if os.Getenv("BERTH_TEST_REPLICAS") != "1" {
		t.Skip("multi-replica e2e: set BERTH_TEST_REPLICAS=1 (make test does)")
	}
}

func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	pg, err := testenv.StartPostgres()
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Errorf("stop postgres: %v", err)
		}
	})
	rd, err := testenv.StartRedis()
	if err != nil {
		t.Fatalf("redis: %v", err)
	}
	t.Cleanup(func() {
		if err := rd.Stop(); err != nil {
			t.Errorf("stop redis: %v", err)
		}
	})
	cl := &cluster{name: "bt-rep-" + randHex(4)}
	t.Cleanup(func() { cleanupEngine(t, cl.name); cleanupFirewall(t, cl.name) }) // runs after the replicas stop
	var upstreams []string
	for i := range n {
		port := freePort(t)
		in := &instance{t: t, name: cl.name, dataDir: t.TempDir(), out: &syncBuffer{},
			url: "http://127.0.0.1:" + strconv.Itoa(port)}
		in.env = append(os.Environ(),
			"BERTH_LISTEN=127.0.0.1:"+strconv.Itoa(port),
			"BERTH_DATA_DIR="+in.dataDir,
			"BERTH_INSTANCE="+cl.name,
			"BERTH_ADMIN_TOKEN="+adminToken,
			"BERTH_LOG_LEVEL=debug",
			"BERTH_DATABASE_URL="+pg.URL("postgres"),
			"BERTH_REDIS_URL="+rd.URL(),
		)
		cl.replicas = append(cl.replicas, in)
		upstreams = append(upstreams, "127.0.0.1:"+strconv.Itoa(port))
		_ = i
	}
	// The first replica builds the tenant image; the others find it.
	cl.replicas[0].start()
	t.Cleanup(cl.replicas[0].stop)
	var wg sync.WaitGroup
	for _, in := range cl.replicas[1:] {
		wg.Go(in.start)
		t.Cleanup(in.stop)
	}
	wg.Wait()
	ng, err := testenv.StartNginx(upstreams)
	if err != nil {
		t.Fatalf("nginx: %v", err)
	}
	t.Cleanup(func() {
		if err := ng.Stop(); err != nil {
			t.Errorf("stop nginx: %v", err)
		}
	})
	cl.nginx = ng
	cl.lb = &instance{t: t, name: cl.name, url: ng.URL(), out: &syncBuffer{}}
	return cl
}

// holder returns the index of the replica that last logged taking the
// ingestion lease of container, waiting up to timeout; skip is ignored.
func (cl *cluster) holder(t *testing.T, container string, skip int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for i, in := range cl.replicas {
			if i == skip {
				continue
			}
			for _, line := range strings.Split(in.out.String(), "\n") {
				if strings.Contains(line, "holding the stream lease") && strings.Contains(line, "container="+container) {
					return i
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica took the ingestion lease of %s within %s", container, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplicas: one PostgreSQL, one Redis, three replicas behind nginx.
func TestReplicas(t *testing.T) {
	replicasEnabled(t)
	cl := startCluster(t, 3)

	t.Run("OnboardRaceMakesOneContainer", func(t *testing.T) {
		const per = 3
		var wg sync.WaitGroup
		ids := make([]string, 0, 2*per)
		var mu sync.Mutex
		start := make(chan struct{})
		for _, in := range cl.replicas[:2] {
			for range per {
				wg.Go(func() {
					<-start
					var ob api.OnboardResponse
					in.mustCall(200, "POST", "/api/users/onboard", adminToken,
						map[string]string{"user_id": "racer", "email": "racer@example.com", "plan": "free"}, &ob)
					mu.Lock()
					ids = append(ids, ob.Container.ContainerID)
					mu.Unlock()
				})
			}
		}
		close(start)
		wg.Wait()
		for _, id := range ids {
			if id == "" || id != ids[0] {
				t.Fatalf("onboarding through two replicas gave container ids %v, want one", ids)
			}
		}
		f := filters.NewArgs(filters.Arg("label", "berth.instance="+cl.name), filters.Arg("name", cl.name+"-racer"))
		cs, err := dockerC.ContainerList(context.Background(), container.ListOptions{All: true, Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 1 {
			t.Fatalf("engine has %d containers for the user, want 1", len(cs))
		}
		var list api.ContainerList
		cl.replicas[2].mustCall(200, "GET", "/api/admin/containers", adminToken, nil, &list)
		if list.Total != 1 {
			t.Errorf("the store lists %d containers, want 1", list.Total)
		}
	})

	t.Run("ViewerOnAnotherReplicaAndHolderKilled", func(t *testing.T) {
		const total = 90 // within the starter plan's daily quota
		ob := cl.lb.onboard("live", "starter")
		cname := cl.name + "-live"
		h := cl.holder(t, cname, -1, 20*time.Second)
		a := (h + 1) % len(cl.replicas) // the viewer's replica: not the holder
		survivor := (h + 2) % len(cl.replicas)
		t.Logf("replica %d holds the ingestion lease; viewer on replica %d", h, a)
		direct := dialViewer(t, cl.replicas[a], "live", ob.Token, 0)
		viaLB := dialViewer(t, cl.lb, "live", ob.Token, 0)
		cl.replicas[survivor].mustCall(200, "POST", "/api/automation/live/start", ob.Token,
			fmt.Sprintf(`{"workflow": "engagement", "config": {"pace_ms": 40, "loop": true, "max_actions": %d}}`, total), nil)

		// Actions ingested by the holder reach a viewer of another replica.
		first := direct.waitActions(t, 30, 60*time.Second)
		checkContiguous(t, "viewer on replica A before the kill", first)

		// Kill the holder mid-run; another replica takes the stream over.
		cl.replicas[h].kill()
		killedAt := time.Now()
		nh := cl.holder(t, cname, h, 30*time.Second)
		t.Logf("replica %d took the lease over %.1fs after the kill", nh, time.Since(killedAt).Seconds())

		st := cl.replicas[a].waitState("live", ob.Token, 120*time.Second, api.StateCompleted, api.StateFailed)
		if st.State != api.StateCompleted {
			t.Fatalf("run ended %q", st.State)
		}
		ledger := agentLedger(t, cname)
		if len(ledger) != total {
			t.Fatalf("agent ledger has %d actions, want %d", len(ledger), total)
		}
		stored := cl.replicas[a].waitActions("live", ob.Token, total, 30*time.Second)
		checkContiguous(t, "store", stored)
		if len(stored) != total {
			t.Errorf("store has %d actions, want %d (none lost, none duplicated)", len(stored), total)
		}
		for i := range stored {
			if stored[i].Action != ledger[i].Action || stored[i].Target != ledger[i].Target {
				t.Fatalf("store action %d = %s %s, ledger has %s %s", i+1, stored[i].Action, stored[i].Target, ledger[i].Action, ledger[i].Target)
			}
		}
		got := direct.waitActions(t, total, 30*time.Second)
		time.Sleep(300 * time.Millisecond)
		got = direct.actionEvents()
		checkContiguous(t, "viewer on replica A across the kill", got)
		if len(got) != total {
			t.Errorf("viewer on replica A got %d actions, want exactly %d", len(got), total)
		}
		for i := range got {
			if got[i].Action != ledger[i].Action || got[i].Target != ledger[i].Target {
				t.Fatalf("viewer action %d = %s %s, ledger has %s %s", i+1, got[i].Action, got[i].Target, ledger[i].Action, ledger[i].Target)
			}
		}
		// The viewer through nginx saw a gap-free prefix (its socket ends if
		// nginx had put it on the killed replica).
		lbGot := viaLB.actionEvents()
		checkContiguous(t, "viewer through nginx", lbGot)
		if len(lbGot) < len(first) {
			t.Errorf("viewer through nginx got %d actions, want at least %d", len(lbGot), len(first))
		}
		// The status endpoint answers through nginx with a replica down.
		for range 6 {
			cl.lb.mustCall(200, "GET", "/api/containers/live/status", ob.Token, nil, nil)
		}
	})
}
