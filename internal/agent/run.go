package agent

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/api"
)

// run is one execution of a workflow. Its fields are guarded by Agent.mu.
type run struct {
	workflow   string
	config     json.RawMessage
	token      string
	pid        int
	startedAt  time.Time
	finishedAt time.Time
	state      string
	exitCode   *int
	errText    string
	stopAsked  bool
	done       chan struct{} // closed once the run is final
}

func (r *run) status() api.AutomationStatus {
	st := api.AutomationStatus{State: r.state, Workflow: r.workflow, Config: r.config, ExitCode: r.exitCode, Error: r.errText}
	started := r.startedAt.UTC()
	st.StartedAt = &started
	if !r.finishedAt.IsZero() {
		f := r.finishedAt.UTC()
		st.FinishedAt = &f
	}
	return st
}

func (r *run) active() bool { return r.state == api.StateRunning || r.state == api.StateStopping }

// mergeConfig overlays the request's config object on the workflow defaults.
// The defaults come from YAML (ints, not JSON numbers), so they are passed
// through JSON first: every value then has the type a request's would.
func mergeConfig(defaults map[string]any, raw json.RawMessage) (map[string]any, error) {
	out := make(map[string]any, len(defaults))
	if len(defaults) > 0 {
		b, err := json.Marshal(defaults)
		if err != nil {
			return nil, berth.Errorf(berth.ErrInvalid, "workflow default config is not representable as JSON: %v", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&out); err != nil {
			return nil, berth.Errorf(berth.ErrInvalid, "workflow default config: %v", err)
		}
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return out, nil
	}
	var req map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		return nil, berth.Errorf(berth.ErrInvalid, "config must be a JSON object: %v", err)
	}
	for k, v := range req {
		out[k] = v
	}
	return out, nil
}

// start launches workflow name with the request config.
func (a *Agent) start(name string, reqConfig json.RawMessage) (api.AutomationStatus, error) {
	spec, ok := a.cfg.Manifest[name]
	if !ok {
		return api.AutomationStatus{}, berth.Errorf(berth.ErrNotFound, "unknown workflow %q (known: %s)", name, strings.Join(a.cfg.Manifest.Names(), ", "))
	}
	cfg, err := mergeConfig(spec.Config, reqConfig)
	if err != nil {
		return api.AutomationStatus{}, err
	}
	caps, err := capsFromConfig(cfg)
	if err != nil {
		return api.AutomationStatus{}, err
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return api.AutomationStatus{}, berth.Errorf(berth.ErrInvalid, "config is not encodable: %v", err)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil {
		return api.AutomationStatus{}, berth.Errorf(berth.ErrUnavailable, "agent is shutting down")
	}
	if a.run != nil && a.run.active() {
		return api.AutomationStatus{}, berth.Errorf(berth.ErrConflict, "workflow %s is already %s; stop it first", a.run.workflow, a.run.state)
	}

	token := randomToken()
	cfgFile := filepath.Join(a.runDir, "config-"+token[:12]+".json")
	if err := writeFileSync(cfgFile, cfgJSON, 0o600); err != nil {
		return api.AutomationStatus{}, fmt.Errorf("write run config: %w", err)
	}
	if c := a.cfg.Credential; c != nil {
		if err := os.Chown(cfgFile, int(c.Uid), int(c.Gid)); err != nil {
			os.Remove(cfgFile)
			return api.AutomationStatus{}, fmt.Errorf("write run config: %w", err)
		}
	}

	cmd := exec.Command(spec.Command[0], spec.Command[1:]...)
	cmd.Dir = spec.Dir
	cmd.Env = a.childEnv(spec, name, token, cfgFile, cfgJSON)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: a.cfg.Credential}
	outR, outW, err := os.Pipe()
	if err != nil {
		os.Remove(cfgFile)
		return api.AutomationStatus{}, fmt.Errorf("create stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		os.Remove(cfgFile)
		return api.AutomationStatus{}, fmt.Errorf("create stderr pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	// Swap the caps in before the child can reserve anything.
	a.quota.setCaps(caps)
	exited, err := startChild(cmd, a.cfg.Reap)
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		os.Remove(cfgFile)
		return api.AutomationStatus{}, berth.Wrap(berth.ErrInvalid, err, fmt.Sprintf("workflow %s could not be started: %v", name, err))
	}

	r := &run{workflow: name, config: cfgJSON, token: token, pid: cmd.Process.Pid, startedAt: a.cfg.Now(), state: api.StateRunning, done: make(chan struct{})}
	a.run = r
	a.logger.Info("workflow started", "workflow", name, "pid", r.pid)
	a.publishStatus(r, "")

	var pipes sync.WaitGroup
	pipes.Add(2)
	a.wg.Add(3)
	go func() { defer a.wg.Done(); defer pipes.Done(); a.capture(r, "stdout", outR) }()
	go func() { defer a.wg.Done(); defer pipes.Done(); a.capture(r, "stderr", errR) }()
	go func() {
		defer a.wg.Done()
		st := <-exited
		cmd.Process.Release()
		// Anything left in the run's process group dies with the run.
		syscall.Kill(-r.pid, syscall.SIGKILL)
		drained := make(chan struct{})
		go func() { pipes.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(2 * time.Second): // a process outside the group holds the pipes
			outR.Close()
			errR.Close()
			<-drained
		}
		outR.Close()
		errR.Close()
		os.Remove(cfgFile)
		a.finish(r, st)
	}()
	return r.status(), nil
}

func (a *Agent) childEnv(spec WorkflowSpec, name, token, cfgFile string, cfgJSON []byte) []string {
	drop := map[string]bool{api.EnvAgentSecret: true, api.EnvAgentURL: true, api.EnvRunToken: true,
		api.EnvConfigFile: true, api.EnvConfigJSON: true, api.EnvWorkflow: true}
	for k := range spec.Env {
		drop[k] = true
	}
	env := make([]string, 0, len(a.cfg.Environ)+8)
	for _, kv := range a.cfg.Environ {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	return append(env,
		api.EnvAgentURL+"="+a.cfg.AgentURL,
		api.EnvRunToken+"="+token,
		api.EnvConfigFile+"="+cfgFile,
		api.EnvConfigJSON+"="+string(cfgJSON),
		api.EnvWorkflow+"="+name,
	)
}

// finish records the final state of r.
func (a *Agent) finish(r *run, st exitStatus) {
	a.mu.Lock()
	r.finishedAt = a.cfg.Now()
	ws := st.ws
	switch {
	case st.err != nil:
		r.state, r.errText = api.StateFailed, "wait: "+st.err.Error()
	case ws.Exited():
		code := ws.ExitStatus()
		r.exitCode = &code
		switch {
		case r.stopAsked:
			r.state = api.StateIdle
		case code == 0:
			r.state = api.StateCompleted
		default:
			r.state, r.errText = api.StateFailed, fmt.Sprintf("exited with status %d", code)
		}
	case ws.Signaled():
		code := 128 + int(ws.Signal())
		r.exitCode = &code
		if r.stopAsked {
			r.state = api.StateIdle
			r.errText = "stopped by request (" + ws.Signal().String() + ")"
		} else {
			r.state, r.errText = api.StateFailed, "killed by signal "+ws.Signal().String()
		}
	default:
		r.state, r.errText = api.StateFailed, "unexpected wait status"
	}
	a.logger.Info("workflow finished", "workflow", r.workflow, "state", r.state, "error", r.errText)
	a.publishStatus(r, r.errText)
	close(r.done)
	a.mu.Unlock()
}

// stop asks the current run to stop: SIGTERM to its process group, SIGKILL
// after the grace period. It returns at once.
func (a *Agent) stopRun(r *run) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.state != api.StateRunning {
		return
	}
	r.state, r.stopAsked = api.StateStopping, true
	a.publishStatus(r, "stop requested")
	syscall.Kill(-r.pid, syscall.SIGTERM)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		t := time.NewTimer(a.cfg.Grace)
		defer t.Stop()
		select {
		case <-r.done:
		case <-t.C:
			a.logger.Warn("workflow ignored SIGTERM; killing", "workflow", r.workflow, "grace", a.cfg.Grace)
			syscall.Kill(-r.pid, syscall.SIGKILL)
		}
	}()
}

const maxLogLine = 16 << 10

// capture reads lines from one of the child's streams.
func (a *Agent) capture(r *run, stream string, f io.ReadCloser) {
	br := bufio.NewReaderSize(f, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			a.line(r, stream, string(bytes.TrimRight(line, "\r\n")))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// stdoutAction is an action line a workflow may print instead of using the
// protocol; it is recorded after the fact.
type stdoutAction struct {
	Action  *string         `json:"action"`
	Target  string          `json:"target"`
	Success *bool           `json:"success"`
	Detail  json.RawMessage `json:"detail"`
	Details json.RawMessage `json:"details"`
}

func (a *Agent) line(r *run, stream, text string) {
	ev := api.Event{Type: api.EventLog, Timestamp: a.cfg.Now().UTC(), Workflow: r.workflow, Stream: stream, Line: text}
	a.logs.add(ev)
	a.hub.publish(ev)
	if a.cfg.Output != nil {
		a.outMu.Lock()
		fmt.Fprintf(a.cfg.Output, "[%s %s] %s\n", r.workflow, stream, text)
		a.outMu.Unlock()
	}
	if stream != "stdout" || !strings.HasPrefix(strings.TrimSpace(text), "{") {
		return
	}
	var sa stdoutAction
	if json.Unmarshal([]byte(text), &sa) != nil || sa.Action == nil || !validAction(*sa.Action) {
		return
	}
	success := true
	if sa.Success != nil {
		success = *sa.Success
	}
	details := sa.Details
	if len(details) == 0 {
		details = sa.Detail
	}
	a.quota.record(*sa.Action)
	rec := record{Kind: kindAction, Action: *sa.Action, Target: sa.Target, Success: success, Time: a.cfg.Now().UTC(),
		Details: details, Workflow: r.workflow, Source: "stdout"}
	if _, err := a.ledger.append(rec); err != nil {
		a.logger.Error("record stdout action", "err", err)
	}
}

func validAction(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// logRing keeps the last n log events.
type logRing struct {
	mu   sync.Mutex
	buf  []api.Event
	next int
	full bool
}

func newLogRing(n int) *logRing { return &logRing{buf: make([]api.Event, n)} }

func (l *logRing) add(ev api.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf[l.next] = ev
	l.next = (l.next + 1) % len(l.buf)
	if l.next == 0 {
		l.full = true
	}
}

// tail returns up to n of the newest lines, oldest first.
func (l *logRing) tail(n int) []api.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var all []api.Event
	if l.full {
		all = append(append(all, l.buf[l.next:]...), l.buf[:l.next]...)
	} else {
		all = append(all, l.buf[:l.next]...)
	}
	if n > 0 && n < len(all) {
		all = all[len(all)-n:]
	}
	return all
}
