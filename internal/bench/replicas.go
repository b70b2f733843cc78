package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"

	"github.com/berth/berth/api"
	"github.com/berth/berth/internal/testenv"
)

// lockedBuffer collects a replica's log lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runReplicas measures, in one run:
//   - GET /api/containers/{id}/status requests per second through nginx in
//     front of 1 replica and in front of 3 replicas (the same three
//     processes; the 1-replica balancer only knows the first), interleaved;
//   - action → viewer latency with the viewer on a replica that does not
//     ingest the stream (PostgreSQL + Redis), beside a viewer on the
//     ingesting replica and beside a lone control plane (SQLite, in-process
//     bus), each against a viewer on the agent itself.
func runReplicas(bin string, cli *client.Client) (err error) {
	fmt.Printf("berth bench (replicas): %s\n\n", time.Now().UTC().Format(time.RFC3339))
	var rows [][]string
	row := func(c ...string) { rows = append(rows, c) }

	pg, err := testenv.StartPostgres()
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer pg.Stop()
	rd, err := testenv.StartRedis()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	defer rd.Stop()

	instance := "bench-rep-" + randHex(3)
	env := []string{"BERTH_DATABASE_URL=" + pg.URL("postgres"), "BERTH_REDIS_URL=" + rd.URL(), "BERTH_LOG_LEVEL=info",
		// The benchmark is one client address: the per-address rate limit (a
		// defence, not what is measured) would refuse it.
		"BERTH_RATE_LIMIT=off", "BERTH_RATE_LIMIT_ADDR=off"}
	reps := make([]*bench, 3)
	logs := make([]*lockedBuffer, 3)
	for i := range reps {
		logs[i] = &lockedBuffer{}
		reps[i] = &bench{bin: bin, docker: cli, instance: instance, extraEnv: env, logOut: logs[i], skipWarmup: i > 0}
		defer reps[i].cleanup()
	}
	fmt.Println("-- starting 3 replicas …")
	if err := reps[0].start(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := 1; i < 3; i++ {
		wg.Go(func() { errs[i] = reps[i].start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var ups []string
	for _, r := range reps {
		ups = append(ups, strings.TrimPrefix(r.url, "http://"))
	}
	lb1, err := testenv.StartNginx(ups[:1])
	if err != nil {
		return err
	}
	defer lb1.Stop()
	lb3, err := testenv.StartNginx(ups)
	if err != nil {
		return err
	}
	defer lb3.Stop()

	// Status requests per second.
	fmt.Println("-- status requests/s through nginx …")
	var ob api.OnboardResponse
	if err := reps[0].call("POST", "/api/users/onboard", admin, api.OnboardRequest{UserID: "st", Email: "st@example.com", Plan: "bench"}, &ob); err != nil {
		return err
	}
	get := func(path string) func(base string) func(*http.Client) error {
		return func(base string) func(*http.Client) error {
			return func(c *http.Client) error {
				req, _ := http.NewRequest("GET", base+path, nil)
				req.Header.Set("Authorization", "Bearer "+ob.Token)
				resp, err := c.Do(req)
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			}
		}
	}
	const clients, span = 16, 4 * time.Second
	for _, ep := range []struct{ name, path string }{
		{"GET /api/containers/{id}/status", "/api/containers/st/status"},
		{"GET /api/automation/{id}/actions?limit=1 (store only, reference)", "/api/automation/st/actions?limit=1"},
	} {
		var one, three float64
		for range 2 { // interleaved: 1, 3, 1, 3
			one += hammer(clients, span, get(ep.path)(lb1.URL())) / 2
			three += hammer(clients, span, get(ep.path)(lb3.URL())) / 2
		}
		row(fmt.Sprintf("%s req/s through nginx (%d clients, 2×%s each)", ep.name, clients, span),
			fmt.Sprintf("%.0f/s with 3 replicas", three), fmt.Sprintf("%.0f/s with 1 replica", one), fmt.Sprintf("%.2f×", three/one))
	}

	// Action → viewer latency across replicas.
	fmt.Println("-- action → viewer latency across replicas …")
	const user = "lat"
	var lob api.OnboardResponse
	if err := reps[0].call("POST", "/api/users/onboard", admin, api.OnboardRequest{UserID: user, Email: "l@example.com", Plan: "bench"}, &lob); err != nil {
		return err
	}
	cname := instance + "-" + user
	holder := -1
	for deadline := time.Now().Add(20 * time.Second); holder < 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for i, l := range logs {
			if strings.Contains(l.String(), `"ingest: holding the stream lease" container=`+cname) {
				holder = i
			}
		}
	}
	if holder < 0 {
		return errors.New("no replica took the ingestion lease")
	}
	other := reps[(holder+1)%3]
	cross, same, agent, err := latency(reps[0], other, reps[holder], user, lob.Token, cname)
	if err != nil {
		return err
	}

	fmt.Println("-- the same on a lone control plane (SQLite, in-process bus) …")
	single := &bench{bin: bin, docker: cli, instance: "bench-one-" + randHex(3)}
	defer single.cleanup()
	if err := single.start(); err != nil {
		return err
	}
	var sob api.OnboardResponse
	if err := single.call("POST", "/api/users/onboard", admin, api.OnboardRequest{UserID: user, Email: "l@example.com", Plan: "bench"}, &sob); err != nil {
		return err
	}
	alone, _, agent1, err := latency(single, single, single, user, sob.Token, single.instance+"-"+user)
	if err != nil {
		return err
	}
	for _, p := range []int{50, 99} {
		row(fmt.Sprintf("action → viewer p%d, viewer on a non-ingesting replica (3 replicas, PostgreSQL + Redis)", p),
			ms(pct(cross, p)), ms(pct(alone, p))+" lone control plane (SQLite, in-process bus)", "+"+ms(pct(cross, p)-pct(alone, p)))
		row(fmt.Sprintf("action → viewer p%d, viewer on the ingesting replica", p),
			ms(pct(same, p)), ms(pct(agent, p))+" from the agent (same run)", "+"+ms(pct(same, p)-pct(agent, p)))
		row(fmt.Sprintf("action → viewer p%d, lone control plane", p),
			ms(pct(alone, p)), ms(pct(agent1, p))+" from the agent", "+"+ms(pct(alone, p)-pct(agent1, p)))
	}

	fmt.Println()
	fmt.Println("| figure | berth | baseline | ratio |")
	fmt.Println("|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s |\n", strings.Join(r, " | "))
	}
	return nil
}

// latency runs 300 actions at pace 0 and returns the action → viewer
// latencies of a viewer on viewerA, one on viewerB and one on the agent.
func latency(api0, viewerA, viewerB *bench, user, token, cname string) (a, b, agent []time.Duration, err error) {
	const actions = 300
	agentURL, secret, err := api0.agentOf(cname)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ws := func(base string) string {
		return strings.Replace(base, "http://", "ws://", 1) + "/ws/" + user + "?token=" + token
	}
	ca, err := dial(ctx, ws(viewerA.url), nil)
	if err != nil {
		return nil, nil, nil, err
	}
	cb, err := dial(ctx, ws(viewerB.url), nil)
	if err != nil {
		return nil, nil, nil, err
	}
	cd, err := dial(ctx, strings.Replace(agentURL, "http://", "ws://", 1)+"/ws", http.Header{"Authorization": []string{"Bearer " + secret}})
	if err != nil {
		return nil, nil, nil, err
	}
	var wg sync.WaitGroup
	for _, c := range []*collector{ca, cb, cd} {
		wg.Go(func() { c.collect(ctx, actions) })
	}
	time.Sleep(300 * time.Millisecond) // let the ingester connect
	if err := api0.call("POST", "/api/automation/"+user+"/start", token,
		json.RawMessage(fmt.Sprintf(`{"workflow":"engagement","config":{"pace_ms":0,"loop":true,"max_actions":%d}}`, actions)), nil); err != nil {
		return nil, nil, nil, err
	}
	wg.Wait()
	if ca.n < actions || cb.n < actions || cd.n < actions {
		return nil, nil, nil, fmt.Errorf("viewers got %d, %d and %d of %d actions", ca.n, cb.n, cd.n, actions)
	}
	return ca.lat, cb.lat, cd.lat, nil
}
