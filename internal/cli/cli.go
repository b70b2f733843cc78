// Package cli is the operator's command line: `berth login`, `berth users`,
// `berth containers`, `berth automation` and `berth admin`, talking to the
// control plane's API through api.Client. It imports only api and the
// standard library.
//
// Exit codes (docs/OPERATIONS.md): 0 ok, 1 error, 2 usage (bad arguments, or
// the server's 400), 3 auth (401/403),
// 4 not found, 5 unavailable (the server cannot be reached, or answers 503).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berth/berth/api"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitAuth        = 3
	ExitNotFound    = 4
	ExitUnavailable = 5
)

// ExitError is an error with the process exit code it means. Its message
// has already been printed when Printed is set.
type ExitError struct {
	Code    int
	Err     error
	Printed bool
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode returns the process exit code.
func (e *ExitError) ExitCode() int { return e.Code }

// Silent reports whether the message was already printed.
func (e *ExitError) Silent() bool { return e.Printed }

// Commands are the top-level words this package handles.
var Commands = []string{"login", "users", "containers", "automation", "admin"}

// Usage is the CLI's part of `berth help`.
const Usage = `  berth login <url> --token T          store the server and token ($XDG_CONFIG_HOME/berth/config.json)
  berth users onboard <user_id> --email E --plan P
  berth containers ls | status|start|stop|restart|rm|logs [-f] <user_id>
  berth automation start <user_id> <workflow> [--config JSON] | stop|status|watch <user_id>
  berth admin usage [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--csv]
  (every CLI command takes -o json, --url and --token; BERTH_URL and BERTH_TOKEN override the config)
`

// Env is what a command sees of its process.
type Env struct {
	Getenv func(string) string
	Stdout io.Writer
	Stderr io.Writer
	HTTP   *http.Client // nil for the default
}

type cmd struct {
	env    Env
	fs     *flag.FlagSet
	output *string
	url    *string
	token  *string
	name   string
}

func usageErr(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// Run runs one CLI command: args start with the command word.
func Run(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 {
		return usageErr("no command")
	}
	word, rest := args[0], args[1:]
	sub := ""
	if word != "login" {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			fmt.Fprintf(env.Stderr, "usage:\n%s", Usage)
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("%s needs a subcommand", word), Printed: false}
		}
		sub, rest = rest[0], rest[1:]
	}
	c := &cmd{env: env, name: strings.TrimSpace(word + " " + sub)}
	c.fs = flag.NewFlagSet("berth "+c.name, flag.ContinueOnError)
	c.fs.SetOutput(env.Stderr)
	c.output = c.fs.String("o", "table", "output: table or json")
	c.url = c.fs.String("url", "", "server URL (default: from berth login, or BERTH_URL)")
	c.token = c.fs.String("token", "", "API token (default: from berth login, or BERTH_TOKEN)")
	err := c.dispatch(ctx, word, sub, rest)
	if err == nil {
		return nil
	}
	return classify(err)
}

// classify turns any error into an *ExitError with a clear message.
func classify(err error) error {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee
	}
	var ne *api.NetError
	if errors.As(err, &ne) {
		return &ExitError{Code: ExitUnavailable, Err: fmt.Errorf("%v (is the server running, and is the URL right? see `berth login`)", ne)}
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		switch {
		case ae.Status == http.StatusBadRequest:
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("invalid: %s", ae.Message)}
		case ae.Status == http.StatusUnauthorized:
			return &ExitError{Code: ExitAuth, Err: fmt.Errorf("not authenticated: %s (run `berth login <url> --token …`)", ae.Message)}
		case ae.Status == http.StatusForbidden:
			return &ExitError{Code: ExitAuth, Err: fmt.Errorf("not allowed: %s", ae.Message)}
		case ae.Status == http.StatusNotFound:
			return &ExitError{Code: ExitNotFound, Err: errors.New(ae.Message)}
		case ae.Status == http.StatusServiceUnavailable:
			return &ExitError{Code: ExitUnavailable, Err: fmt.Errorf("unavailable: %s", ae.Message)}
		}
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%s (%s)", ae.Message, ae.Code)}
	}
	if errors.Is(err, context.Canceled) {
		return &ExitError{Code: ExitFailure, Err: errors.New("interrupted")}
	}
	return &ExitError{Code: ExitFailure, Err: err}
}

// parse parses flags anywhere among the arguments and checks the count of
// positional ones.
func (c *cmd) parse(args []string, positional ...string) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &ExitError{Code: ExitOK, Err: errors.New("help"), Printed: true}
			}
			return nil, &ExitError{Code: ExitUsage, Err: err, Printed: true}
		}
		args = c.fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != len(positional) {
		return nil, usageErr("usage: berth %s %s [flags]", c.name, strings.Join(positional, " "))
	}
	if *c.output != "table" && *c.output != "json" {
		return nil, usageErr("-o must be table or json, not %q", *c.output)
	}
	return pos, nil
}

// setup parses a verb's arguments and makes its API client: the first two
// steps of every verb that talks to the server.
func (c *cmd) setup(args []string, positional ...string) ([]string, *api.Client, error) {
	pos, err := c.parse(args, positional...)
	if err != nil {
		return nil, nil, err
	}
	cl, err := c.client()
	if err != nil {
		return nil, nil, err
	}
	return pos, cl, nil
}

func (c *cmd) client() (*api.Client, error) {
	cfg, _, err := loadConfig(c.env.Getenv)
	if err != nil {
		return nil, err
	}
	if v := c.env.Getenv("BERTH_URL"); v != "" {
		cfg.URL = v
	}
	if v := c.env.Getenv("BERTH_TOKEN"); v != "" {
		cfg.Token = v
	}
	if *c.url != "" {
		cfg.URL = *c.url
	}
	if *c.token != "" {
		cfg.Token = *c.token
	}
	if cfg.URL == "" {
		return nil, &ExitError{Code: ExitAuth, Err: errors.New("no server configured: run `berth login <url> --token …` (or set BERTH_URL and BERTH_TOKEN)")}
	}
	return &api.Client{BaseURL: cfg.URL, Token: cfg.Token, HTTP: c.env.HTTP}, nil
}

func (c *cmd) json(v any) error {
	enc := json.NewEncoder(c.env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c *cmd) table(header []string, rows [][]string) {
	tw := tabwriter.NewWriter(c.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func (c *cmd) dispatch(ctx context.Context, word, sub string, args []string) error {
	switch word {
	case "login":
		return c.login(ctx, args)
	case "users":
		if sub == "onboard" {
			return c.onboard(ctx, args)
		}
	case "containers":
		switch sub {
		case "ls", "list":
			return c.containersLs(ctx, args)
		case "status":
			return c.containerStatus(ctx, args)
		case "start", "stop", "restart", "rm":
			return c.containerAction(ctx, sub, args)
		case "logs":
			return c.containerLogs(ctx, args)
		}
	case "automation":
		switch sub {
		case "start":
			return c.automationStart(ctx, args)
		case "stop":
			return c.automationStop(ctx, args)
		case "status":
			return c.automationStatus(ctx, args)
		case "watch":
			return c.automationWatch(ctx, args)
		}
	case "admin":
		if sub == "usage" {
			return c.adminUsage(ctx, args)
		}
	}
	return usageErr("unknown command %q\nusage:\n%s", strings.TrimSpace(word+" "+sub), Usage)
}

// Config is what `berth login` stores.
type Config struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// ConfigPath is $XDG_CONFIG_HOME/berth/config.json, else ~/.config/berth/config.json.
func ConfigPath(getenv func(string) string) (string, error) {
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "berth", "config.json"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", errors.New("cannot find the config directory: set XDG_CONFIG_HOME or HOME")
		}
		home = h
	}
	return filepath.Join(home, ".config", "berth", "config.json"), nil
}

func loadConfig(getenv func(string) string) (Config, string, error) {
	p, err := ConfigPath(getenv)
	if err != nil {
		return Config{}, "", err
	}
	var cfg Config
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return cfg, p, nil
	}
	if err != nil {
		return cfg, p, fmt.Errorf("read %s: %w", p, err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, p, fmt.Errorf("%s is not valid JSON (%v): fix it or run `berth login` again", p, err)
	}
	return cfg, p, nil
}

func (c *cmd) login(ctx context.Context, args []string) error {
	pos, err := c.parse(args, "<url>")
	if err != nil {
		return err
	}
	u := strings.TrimRight(pos[0], "/")
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return usageErr("the URL must start with http:// or https://, got %q", u)
	}
	tok := *c.token
	if tok == "" {
		tok = c.env.Getenv("BERTH_TOKEN")
	}
	if tok == "" {
		return usageErr("usage: berth login <url> --token T")
	}
	cl := &api.Client{BaseURL: u, Token: tok, HTTP: c.env.HTTP}
	h, err := cl.Health(ctx)
	if err != nil {
		return err
	}
	// A user token may not list containers; only a 401 means the token is wrong.
	if _, err := cl.Containers(ctx); err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			return err
		}
	}
	p, err := ConfigPath(c.env.Getenv)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(p), err)
	}
	b, _ := json.MarshalIndent(Config{URL: u, Token: tok}, "", "  ")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if *c.output == "json" {
		return c.json(map[string]any{"url": u, "config": p, "server_version": h.Version, "status": h.Status})
	}
	fmt.Fprintf(c.env.Stdout, "Logged in to %s (server %s, %s). Config saved to %s\n", u, h.Version, h.Status, p)
	return nil
}

func (c *cmd) onboard(ctx context.Context, args []string) error {
	email := c.fs.String("email", "", "the user's email (required)")
	plan := c.fs.String("plan", "free", "plan name")
	pos, err := c.parse(args, "<user_id>")
	if err != nil {
		return err
	}
	if *email == "" {
		return usageErr("usage: berth users onboard <user_id> --email E [--plan P]")
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	out, err := cl.Onboard(ctx, api.OnboardRequest{UserID: pos[0], Email: *email, Plan: *plan})
	if err != nil {
		return err
	}
	if *c.output == "json" {
		return c.json(out)
	}
	verb := "Onboarded"
	if !out.Created {
		verb = "Already onboarded"
	}
	fmt.Fprintf(c.env.Stdout, "%s %s (%s, plan %s)\n", verb, out.User.UserID, out.User.Email, out.User.Plan)
	c.table([]string{"CONTAINER", "STATUS", "HEALTH", "WEBSOCKET"},
		[][]string{{out.Container.ContainerName, out.Container.Status, out.Container.Health, out.Container.WebsocketURL}})
	fmt.Fprintf(c.env.Stdout, "User token (shown once): %s\n", out.Token)
	return nil
}

func containerRow(ct api.Container) []string {
	mem, cpu := "-", "-"
	if ct.Usage != nil {
		mem = bytesHuman(ct.Usage.MemoryBytes)
		cpu = strconv.FormatFloat(ct.Usage.CPUPercent, 'f', 1, 64) + "%"
	}
	uptime := "-"
	if ct.UptimeSeconds > 0 {
		uptime = (time.Duration(ct.UptimeSeconds) * time.Second).String()
	}
	return []string{ct.UserID, ct.ContainerName, ct.Status, ct.Health, ct.Plan, uptime, cpu, mem, strconv.FormatInt(ct.TotalActions, 10)}
}

var containerHeader = []string{"USER", "CONTAINER", "STATUS", "HEALTH", "PLAN", "UPTIME", "CPU", "MEMORY", "ACTIONS"}

func (c *cmd) containersLs(ctx context.Context, args []string) error {
	if _, err := c.parse(args); err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	out, err := cl.Containers(ctx)
	if err != nil {
		return err
	}
	if *c.output == "json" {
		return c.json(out)
	}
	rows := make([][]string, len(out.Containers))
	for i, ct := range out.Containers {
		rows[i] = containerRow(ct)
	}
	c.table(containerHeader, rows)
	return nil
}

func (c *cmd) containerStatus(ctx context.Context, args []string) error {
	pos, cl, err := c.setup(args, "<user_id>")
	if err != nil {
		return err
	}
	out, err := cl.Status(ctx, pos[0])
	if err != nil {
		return err
	}
	if *c.output == "json" {
		return c.json(out)
	}
	if !out.Exists {
		return &ExitError{Code: ExitNotFound, Err: fmt.Errorf("user %s has no container", pos[0])}
	}
	c.table(containerHeader, [][]string{containerRow(out)})
	if out.LastError != "" {
		fmt.Fprintf(c.env.Stdout, "last error: %s\n", out.LastError)
	}
	return nil
}

func (c *cmd) containerAction(ctx context.Context, sub string, args []string) error {
	pos, err := c.parse(args, "<user_id>")
	if err != nil {
		return err
	}
	action := sub
	if sub == "rm" {
		action = "remove"
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	out, err := cl.ContainerAction(ctx, pos[0], action)
	if err != nil {
		return err
	}
	if *c.output == "json" {
		return c.json(out)
	}
	fmt.Fprintf(c.env.Stdout, "%s %s: %s\n", action, pos[0], out.Status)
	return nil
}

func (c *cmd) containerLogs(ctx context.Context, args []string) error {
	follow := c.fs.Bool("f", false, "follow: keep printing new lines")
	tail := c.fs.Int("tail", 100, "lines to show first")
	interval := c.fs.Duration("interval", 2*time.Second, "with -f, how often to poll")
	pos, cl, err := c.setup(args, "<user_id>")
	if err != nil {
		return err
	}
	out, err := cl.Logs(ctx, pos[0], *tail)
	if err != nil {
		return err
	}
	if *c.output == "json" && !*follow {
		return c.json(out)
	}
	lines := splitLines(out.Logs)
	for _, l := range lines {
		fmt.Fprintln(c.env.Stdout, l)
	}
	if !*follow {
		return nil
	}
	// Follow by polling: print what is new after the last lines seen.
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
		out, err := cl.Logs(ctx, pos[0], 1000)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := splitLines(out.Logs)
		for _, l := range newLines(lines, now) {
			fmt.Fprintln(c.env.Stdout, l)
		}
		lines = now
	}
}

func splitLines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// newLines returns the lines of now that follow the last lines seen before
// (up to 20 of them, fewer when not all are still in now, found at their
// latest position); all of now when none is found (the log rolled over).
func newLines(before, now []string) []string {
	for k := min(len(before), 20); k > 0; k-- {
		anchor := before[len(before)-k:]
		for start := len(now) - k; start >= 0; start-- {
			if equal(now[start:start+k], anchor) {
				return now[start+k:]
			}
		}
	}
	return now
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (c *cmd) automationStart(ctx context.Context, args []string) error {
	config := c.fs.String("config", "", "workflow configuration, a JSON object")
	pos, err := c.parse(args, "<user_id>", "<workflow>")
	if err != nil {
		return err
	}
	req := api.StartRequest{Workflow: pos[1]}
	if *config != "" {
		if !json.Valid([]byte(*config)) {
			return usageErr("--config must be JSON, e.g. '{\"pace_ms\": 100}'")
		}
		req.Config = json.RawMessage(*config)
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	out, err := cl.AutomationStart(ctx, pos[0], req)
	if err != nil {
		return err
	}
	if *c.output == "json" {
		return c.json(out)
	}
	fmt.Fprintf(c.env.Stdout, "started %s for %s: %s\n", pos[1], pos[0], out.State)
	return nil
}

func (c *cmd) automationStop(ctx context.Context, args []string) error {
	pos, cl, err := c.setup(args, "<user_id>")
	if err != nil {
		return err
	}
	out, err := cl.AutomationStop(ctx, pos[0])
	if err != nil {
		return err
	}
	if *c.output == "json" {
		return c.json(out)
	}
	fmt.Fprintf(c.env.Stdout, "stopped automation of %s: %s\n", pos[0], out.State)
	return nil
}

func (c *cmd) automationStatus(ctx context.Context, args []string) error {
	pos, cl, err := c.setup(args, "<user_id>")
	if err != nil {
		return err
	}
	out, err := cl.AutomationStatus(ctx, pos[0])
	if err != nil {
		return err
	}
	if *c.output == "json" {
		return c.json(out)
	}
	started := "-"
	if out.StartedAt != nil {
		started = out.StartedAt.Format(time.RFC3339)
	}
	wf := out.Workflow
	if wf == "" {
		wf = "-"
	}
	c.table([]string{"STATE", "WORKFLOW", "STARTED", "TODAY", "REMAINING"},
		[][]string{{out.State, wf, started, counts(out.Today), counts(out.Remaining)}})
	if out.Error != "" {
		fmt.Fprintf(c.env.Stdout, "error: %s\n", out.Error)
	}
	return nil
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Itoa(m[k])
	}
	return strings.Join(parts, " ")
}

func (c *cmd) automationWatch(ctx context.Context, args []string) error {
	after := c.fs.Int64("after-seq", -1, "first replay the stored actions after this seq")
	count := c.fs.Int("n", 0, "exit after this many action events (0: until interrupted)")
	pos, cl, err := c.setup(args, "<user_id>")
	if err != nil {
		return err
	}
	seen := 0
	errDone := errors.New("done")
	err = cl.Watch(ctx, pos[0], *after, func(ev api.Event) error {
		if *c.output == "json" {
			b, _ := json.Marshal(ev)
			fmt.Fprintln(c.env.Stdout, string(b))
		} else {
			fmt.Fprintln(c.env.Stdout, eventLine(ev))
		}
		if ev.Type == api.EventAction {
			seen++
			if *count > 0 && seen >= *count {
				return errDone
			}
		}
		return nil
	})
	if errors.Is(err, errDone) {
		return nil
	}
	return err
}

func eventLine(ev api.Event) string {
	ts := ev.Timestamp.Local().Format("15:04:05")
	switch ev.Type {
	case api.EventAction:
		ok := "ok"
		if ev.Success == nil || !*ev.Success {
			ok = "FAILED"
		}
		return fmt.Sprintf("%s  #%-5d %-10s %-24s %s", ts, ev.Seq, ev.Action, ev.Target, ok)
	case api.EventStatus:
		s := fmt.Sprintf("%s  status %s %s", ts, ev.State, ev.Workflow)
		if ev.Reason != "" {
			s += " (" + ev.Reason + ")"
		}
		return s
	case api.EventLog:
		return fmt.Sprintf("%s  %s | %s", ts, ev.Stream, ev.Line)
	case api.EventQuotaDenied:
		return fmt.Sprintf("%s  quota denied: %s %s", ts, ev.Action, ev.Reason)
	case api.EventDropped:
		return fmt.Sprintf("%s  (%d events dropped: this viewer fell behind)", ts, ev.Count)
	}
	return fmt.Sprintf("%s  %s", ts, ev.Type)
}

func (c *cmd) adminUsage(ctx context.Context, args []string) error {
	from := c.fs.String("from", "", "first day, YYYY-MM-DD (UTC; default the 1st of this month)")
	to := c.fs.String("to", "", "last day, YYYY-MM-DD (UTC; default today)")
	asCSV := c.fs.Bool("csv", false, "print the server's CSV export")
	if _, err := c.parse(args); err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	if *asCSV {
		b, err := cl.UsageCSV(ctx, *from, *to)
		if err != nil {
			return err
		}
		_, err = c.env.Stdout.Write(b)
		return err
	}
	out, err := cl.Usage(ctx, *from, *to)
	if err != nil {
		return err
	}
	if *c.output == "json" {
		return c.json(out)
	}
	rows := make([][]string, len(out.Rows))
	for i, r := range out.Rows {
		rows[i] = []string{r.Day, r.UserID, r.Plan, r.Runtime, strconv.FormatFloat(r.RunningSeconds, 'f', 1, 64),
			bytesHuman(r.PeakMemory), strconv.Itoa(r.ActionsTotal), counts(r.Actions)}
	}
	c.table([]string{"DAY", "USER", "PLAN", "RUNTIME", "RUNNING_S", "PEAK_MEM", "ACTIONS", "BY_TYPE"}, rows)
	return nil
}

func bytesHuman(n int64) string {
	switch {
	case n <= 0:
		return "-"
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + "GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + "MiB"
	default:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + "KiB"
	}
}
