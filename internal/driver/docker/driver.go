// Package docker runs berth tenant containers on a Docker Engine (API 1.41
// and later) through the Docker Go SDK.
//
// Every object the driver makes (containers, volumes, the tenant network and
// the tenant image) is named with the instance prefix and labelled
// berth.instance=<instance>; objects without that label are invisible to it.
package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"

	"github.com/berth/berth"
)

var _ berth.Driver = (*Driver)(nil)

// Fixed parts of every tenant container.
const (
	dataDir      = "/data"
	tenantUser   = "65534:65534"
	tmpfsOptions = "rw,nosuid,nodev,size=64m,mode=1777"
	maxLogBytes  = 8 << 20 // Logs keeps at most this much text
	statsGap     = 100 * time.Millisecond
	minMemory    = 6 << 20 // the engine refuses less
)

var agentPort = nat.Port(strconv.Itoa(berth.AgentPort) + "/tcp")

// Options configure a Driver.
type Options struct {
	// Instance prefixes every object name and is the berth.instance label.
	// Lowercase letters, digits and single dashes, at most 40 characters.
	Instance string
	// Version is recorded as the berth.version label on containers.
	Version string
	// Client talks to the engine; nil means one built from the environment
	// (DOCKER_HOST etc.) with API version negotiation.
	Client *client.Client
	// SubnetPool is the IPv4 range per-container networks take their
	// subnets from (DefaultSubnetPool when empty), carved into /SubnetBits
	// (DefaultSubnetBits when 0).
	SubnetPool string
	SubnetBits int
}

// Driver implements berth.Driver on Docker. It is safe for concurrent use.
type Driver struct {
	cli      *client.Client
	instance string
	version  string

	netMu sync.Mutex // serialises creation of the tenant network
	imgMu sync.Mutex // serialises image builds

	hostMu sync.Mutex
	ncpu   int // cached Info().NCPU, 0 until first asked

	pool subnetPool // per-container network subnets
}

// New returns a driver for the given instance. It does not require the
// engine to be up: calls made while it is down fail with berth.ErrUnavailable.
func New(ctx context.Context, o Options) (*Driver, error) {
	if err := validateInstance(o.Instance); err != nil {
		return nil, err
	}
	cli := o.Client
	if cli == nil {
		var err error
		cli, err = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, berth.Wrap(berth.ErrInvalid, err, "docker: configure client from environment")
		}
	}
	pool, err := parsePool(o.SubnetPool, o.SubnetBits)
	if err != nil {
		return nil, err
	}
	// Best effort: negotiation is retried on the first call if the engine is down.
	cli.NegotiateAPIVersion(ctx)
	return &Driver{cli: cli, instance: o.Instance, version: o.Version, pool: pool}, nil
}

// validateInstance keeps the instance usable in container, volume and
// network names and in an image repository name, which must be lowercase.
func validateInstance(s string) error {
	bad := len(s) == 0 || len(s) > 40 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--")
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			bad = true
		}
	}
	if bad {
		return berth.Errorf(berth.ErrInvalid, "docker: instance %q must be 1-40 of [a-z0-9-], not starting or ending with '-'", s)
	}
	return nil
}

// Instance returns the driver's instance name.
func (d *Driver) Instance() string { return d.instance }

// Client returns the SDK client the driver uses.
func (d *Driver) Client() *client.Client { return d.cli }

func volumeName(container string) string { return container + "-data" }
func (d *Driver) instanceFilter() filters.Args {
	return filters.NewArgs(filters.Arg("label", berth.LabelInstance+"="+d.instance))
}

// Ping reports whether the engine answers; ErrUnavailable when it does not.
func (d *Driver) Ping(ctx context.Context) error {
	_, err := d.cli.Ping(ctx)
	return d.classify(err, "ping docker engine")
}

// Host returns the engine host's CPUs, memory and versions.
func (d *Driver) Host(ctx context.Context) (berth.HostInfo, error) {
	info, err := d.cli.Info(ctx)
	if err != nil {
		return berth.HostInfo{}, d.classify(err, "query docker engine info")
	}
	d.hostMu.Lock()
	d.ncpu = info.NCPU
	d.hostMu.Unlock()
	return berth.HostInfo{
		CPUs:          info.NCPU,
		MemoryBytes:   info.MemTotal,
		EngineVersion: info.ServerVersion,
		APIVersion:    d.cli.ClientVersion(),
	}, nil
}

// hostCPUs returns the engine's CPU count, asking it once.
func (d *Driver) hostCPUs(ctx context.Context) (int, error) {
	d.hostMu.Lock()
	n := d.ncpu
	d.hostMu.Unlock()
	if n > 0 {
		return n, nil
	}
	h, err := d.Host(ctx)
	return h.CPUs, err
}

// checkLimits refuses limits the engine would refuse obscurely, or that
// would leave a tenant unlimited.
func (d *Driver) checkLimits(ctx context.Context, name string, l berth.Limits) error {
	switch {
	case l.MemoryBytes < minMemory:
		return berth.Errorf(berth.ErrInvalid, "container %s: memory limit must be at least 6 MiB", name)
	case l.CPUs < 0.01:
		return berth.Errorf(berth.ErrInvalid, "container %s: cpus must be at least 0.01", name)
	case l.PidsLimit <= 0:
		return berth.Errorf(berth.ErrInvalid, "container %s: pids limit must be positive", name)
	}
	ncpu, err := d.hostCPUs(ctx)
	if err != nil {
		return err
	}
	if l.CPUs > float64(ncpu) {
		return berth.Errorf(berth.ErrInvalid, "container %s: cpus %g exceeds the host's %d CPUs", name, l.CPUs, ncpu)
	}
	return nil
}

func resources(l berth.Limits) container.Resources {
	pids := l.PidsLimit
	return container.Resources{
		Memory:     l.MemoryBytes,
		MemorySwap: l.MemoryBytes, // equal to Memory: no swap
		NanoCPUs:   int64(math.Round(l.CPUs * 1e9)),
		PidsLimit:  &pids,
	}
}

// ensureVolume makes the container's data volume if it does not exist and
// reports whether this call made it.
func (d *Driver) ensureVolume(ctx context.Context, spec berth.ContainerSpec) (created bool, err error) {
	name := volumeName(spec.Name)
	v, err := d.cli.VolumeInspect(ctx, name)
	if err == nil {
		if v.Labels[berth.LabelInstance] != d.instance {
			return false, berth.Errorf(berth.ErrConflict, "volume %s exists but does not belong to instance %s", name, d.instance)
		}
		return false, nil
	}
	if !isNotFound(err) {
		return false, d.classify(err, "inspect volume "+name)
	}
	_, err = d.cli.VolumeCreate(ctx, volume.CreateOptions{
		Name:   name,
		Driver: "local",
		Labels: map[string]string{
			berth.LabelInstance: d.instance,
			berth.LabelUser:     spec.UserID,
			berth.LabelName:     spec.Name,
		},
	})
	if err != nil {
		return false, d.classify(err, "create volume "+name)
	}
	return true, nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func envList(env map[string]string) ([]string, error) {
	out := make([]string, 0, len(env))
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			// Name the key only: values are secrets.
			return nil, berth.Errorf(berth.ErrInvalid, "environment variable %q is not valid", k)
		}
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out, nil
}

// Create makes the container, its volume and its network attachment but
// does not start it. The volume is kept if it already exists. ErrConflict if
// a container of that name exists. On error nothing Create made is left.
func (d *Driver) Create(ctx context.Context, spec berth.ContainerSpec) (berth.Instance, error) {
	switch {
	case !validName(spec.Name) || !strings.HasPrefix(spec.Name, d.instance+"-"):
		return berth.Instance{}, berth.Errorf(berth.ErrInvalid, "container name %q must be %s-<[A-Za-z0-9_.-]>", spec.Name, d.instance)
	case spec.Image == "":
		return berth.Instance{}, berth.Errorf(berth.ErrInvalid, "container %s: image is required", spec.Name)
	case spec.AgentPort <= 0 || spec.AgentPort > 65535:
		return berth.Instance{}, berth.Errorf(berth.ErrInvalid, "container %s: agent port %d out of range", spec.Name, spec.AgentPort)
	}
	if err := d.checkLimits(ctx, spec.Name, spec.Limits); err != nil {
		return berth.Instance{}, err
	}
	env, err := envList(spec.Env)
	if err != nil {
		return berth.Instance{}, err
	}

	labels := make(map[string]string, len(spec.Labels)+5)
	for k, v := range spec.Labels {
		labels[k] = v
	}
	labels[berth.LabelInstance] = d.instance
	labels[berth.LabelUser] = spec.UserID
	labels[berth.LabelPlan] = spec.Plan
	labels[berth.LabelVersion] = d.version
	labels[berth.LabelName] = spec.Name

	// Each container gets its own bridge network: tenants share no L2
	// segment, name resolution or subnet.
	netName, netID, err := d.ensureTenantNetwork(ctx, spec)
	if err != nil {
		return berth.Instance{}, err
	}
	madeVolume, err := d.ensureVolume(ctx, spec)
	if err != nil {
		d.dropNetwork(ctx, spec.Name)
		return berth.Instance{}, err
	}
	nofile := spec.Nofile
	if nofile <= 0 {
		nofile = berth.DefaultNofile
	}

	cfg := &container.Config{
		Image:        spec.Image,
		User:         tenantUser,
		Env:          env,
		Labels:       labels,
		ExposedPorts: nat.PortSet{agentPort: {}},
		WorkingDir:   dataDir,
	}
	res := resources(spec.Limits)
	res.Ulimits = []*container.Ulimit{{Name: "nofile", Soft: nofile, Hard: nofile}}
	noInit := false // the agent is PID 1 and reaps its children
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode(netName),
		Runtime:     spec.Runtime, // "" is the engine's default (runc)
		PortBindings: nat.PortMap{agentPort: {{
			HostIP:   "127.0.0.1", // never 0.0.0.0: only the control plane reaches the agent
			HostPort: strconv.Itoa(spec.AgentPort),
		}}},
		// "no": the control plane's reconciler owns restarts, so it sees and
		// records every crash instead of the engine hiding restart loops.
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Mounts:         []mount.Mount{{Type: mount.TypeVolume, Source: volumeName(spec.Name), Target: dataDir}},
		Tmpfs:          map[string]string{"/tmp": tmpfsOptions},
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		ReadonlyRootfs: true,
		Privileged:     false,
		Init:           &noInit,
		IpcMode:        container.IPCModePrivate,
		CgroupnsMode:   container.CgroupnsModePrivate, // cgroup v1 engines default to the host's
		LogConfig: container.LogConfig{
			Type:   "json-file",
			Config: map[string]string{"max-size": "10m", "max-file": "3"},
		},
		Resources: res,
	}
	netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		netName: {NetworkID: netID},
	}}

	resp, err := d.cli.ContainerCreate(ctx, cfg, host, netCfg, nil, spec.Name)
	if err != nil {
		err = d.classify(err, "create container "+spec.Name)
		if madeVolume {
			// Use a fresh context: ctx may be the reason for the failure.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if rerr := d.cli.VolumeRemove(cctx, volumeName(spec.Name), false); rerr != nil && !isNotFound(rerr) {
				err = errors.Join(err, d.classify(rerr, "remove volume "+volumeName(spec.Name)))
			}
		}
		d.dropNetwork(ctx, spec.Name)
		return berth.Instance{}, err
	}
	inst, err := d.inspectID(ctx, resp.ID)
	if err != nil {
		return berth.Instance{}, err
	}
	return inst, nil
}

// lookup returns the inspected container of that exact name if it belongs to
// this instance, and ErrNotFound otherwise.
func (d *Driver) lookup(ctx context.Context, name string) (container.InspectResponse, error) {
	if !validName(name) {
		return container.InspectResponse{}, berth.Errorf(berth.ErrNotFound, "container %q not found", name)
	}
	c, err := d.cli.ContainerInspect(ctx, name)
	if err != nil {
		return c, d.classify(err, "inspect container "+name)
	}
	// The engine also resolves IDs and ID prefixes: insist on the name and the label.
	if c.ContainerJSONBase == nil || c.Config == nil || strings.TrimPrefix(c.Name, "/") != name || c.Config.Labels[berth.LabelInstance] != d.instance {
		return container.InspectResponse{}, berth.Errorf(berth.ErrNotFound, "container %s not found", name)
	}
	return c, nil
}

func (d *Driver) inspectID(ctx context.Context, id string) (berth.Instance, error) {
	c, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return berth.Instance{}, d.classify(err, "inspect container "+id)
	}
	return toInstance(c), nil
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

func toInstance(c container.InspectResponse) berth.Instance {
	in := berth.Instance{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/"), CreatedAt: parseTime(c.Created)}
	if c.Config != nil {
		in.Image = c.Config.Image
		in.Labels = c.Config.Labels
		in.UserID = c.Config.Labels[berth.LabelUser]
		in.Plan = c.Config.Labels[berth.LabelPlan]
	}
	if s := c.State; s != nil {
		in.State = string(s.Status)
		in.Running = s.Running
		in.ExitCode = s.ExitCode
		in.OOMKilled = s.OOMKilled
		if s.Running {
			in.OOMKills = oomKills(c.ID)
		}
		in.Error = s.Error
		in.StartedAt = parseTime(s.StartedAt)
		in.FinishedAt = parseTime(s.FinishedAt)
	}
	if h := c.HostConfig; h != nil {
		in.Limits.MemoryBytes = h.Memory
		in.Limits.CPUs = float64(h.NanoCPUs) / 1e9
		if h.PidsLimit != nil {
			in.Limits.PidsLimit = *h.PidsLimit
		}
		for _, b := range h.PortBindings[agentPort] {
			in.AgentAddr = b.HostIP + ":" + b.HostPort
			break
		}
		in.Network = string(h.NetworkMode)
		in.Runtime = h.Runtime
	}
	if in.Runtime == "" {
		in.Runtime = berth.RuntimeRunc
	}
	for _, m := range c.Mounts {
		if m.Destination == dataDir {
			in.Volume = m.Name
		}
	}
	return in
}

// Inspect returns the container's current state.
func (d *Driver) Inspect(ctx context.Context, name string) (berth.Instance, error) {
	c, err := d.lookup(ctx, name)
	if err != nil {
		return berth.Instance{}, err
	}
	return toInstance(c), nil
}

// List returns every container of this instance, sorted by name. It
// inspects each one; a container removed meanwhile is left out.
func (d *Driver) List(ctx context.Context) ([]berth.Instance, error) {
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: d.instanceFilter()})
	if err != nil {
		return nil, d.classify(err, "list containers")
	}
	out := make([]berth.Instance, 0, len(cs))
	for _, s := range cs {
		c, err := d.cli.ContainerInspect(ctx, s.ID)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, d.classify(err, "inspect container "+s.ID)
		}
		out = append(out, toInstance(c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Start starts the container. It returns nil if it is already running.
func (d *Driver) Start(ctx context.Context, name string) error {
	c, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	if c.State != nil && c.State.Running {
		return nil
	}
	// The engine answers 304 (no error) when it is already started.
	return d.classify(d.cli.ContainerStart(ctx, c.ID, container.StartOptions{}), "start container "+name)
}

func stopOptions(timeout time.Duration) container.StopOptions {
	secs := int(math.Ceil(timeout.Seconds()))
	if secs < 0 {
		secs = 0
	}
	return container.StopOptions{Timeout: &secs}
}

// Stop signals the container and kills it after timeout (rounded up to whole
// seconds). It returns nil if it is already stopped or does not exist.
func (d *Driver) Stop(ctx context.Context, name string, timeout time.Duration) error {
	c, err := d.lookup(ctx, name)
	if errors.Is(err, berth.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.State != nil && !c.State.Running && !c.State.Restarting {
		return nil
	}
	err = d.cli.ContainerStop(ctx, c.ID, stopOptions(timeout))
	if isNotFound(err) {
		return nil
	}
	return d.classify(err, "stop container "+name)
}

// Restart stops (with timeout) and starts the container.
func (d *Driver) Restart(ctx context.Context, name string, timeout time.Duration) error {
	c, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	return d.classify(d.cli.ContainerRestart(ctx, c.ID, stopOptions(timeout)), "restart container "+name)
}

// Remove force-removes the container, and its volume when removeVolume is
// set. It returns nil if they do not exist.
func (d *Driver) Remove(ctx context.Context, name string, removeVolume bool) error {
	c, err := d.lookup(ctx, name)
	switch {
	case err == nil:
		err = d.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		if err != nil && !isNotFound(err) && !isRemovalInProgress(err) {
			return d.classify(err, "remove container "+name)
		}
	case !errors.Is(err, berth.ErrNotFound):
		return err
	}
	if !validName(name) {
		return nil
	}
	if err := d.removeTenantNetwork(ctx, name); err != nil {
		return err
	}
	if !removeVolume {
		return nil
	}
	vname := volumeName(name)
	v, err := d.cli.VolumeInspect(ctx, vname)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return d.classify(err, "inspect volume "+vname)
	}
	if v.Labels[berth.LabelInstance] != d.instance {
		return nil // not ours: invisible
	}
	return d.removeVolumeRetry(ctx, vname)
}

// limitedBuffer keeps the first max bytes written and drops the rest, so a
// chatty container cannot make Logs allocate without bound.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}

// Logs returns the last tail lines of stdout and stderr interleaved (all
// when tail <= 0), at most 8 MiB.
func (d *Driver) Logs(ctx context.Context, name string, tail int) (string, error) {
	c, err := d.lookup(ctx, name)
	if err != nil {
		return "", err
	}
	t := "all"
	if tail > 0 {
		t = strconv.Itoa(tail)
	}
	rc, err := d.cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: t})
	if err != nil {
		return "", d.classify(err, "read logs of container "+name)
	}
	defer rc.Close()
	buf := &limitedBuffer{max: maxLogBytes}
	if c.Config != nil && c.Config.Tty {
		_, err = io.Copy(buf, rc)
	} else {
		_, err = stdcopy.StdCopy(buf, buf, rc)
	}
	if err != nil {
		return "", fmt.Errorf("read logs of container %s: %w", name, err)
	}
	return buf.String(), nil
}

// Stats returns one resource-usage sample.
//
// It takes two one-shot samples (stream=false, one-shot=true: the engine
// answers at once, with empty precpu) statsGap apart and derives CPU percent
// from the CPU time used between the engine's two read timestamps, so 100
// means one full CPU. A plain stream=false call would make the engine wait
// about a second for its own second sample. Memory is usage minus inactive
// page cache (as `docker stats` reports it). A stopped container yields zeros.
func (d *Driver) Stats(ctx context.Context, name string) (berth.Usage, error) {
	c, err := d.lookup(ctx, name)
	if err != nil {
		return berth.Usage{}, err
	}
	a, err := d.sample(ctx, c.ID, name)
	if err != nil {
		return berth.Usage{}, err
	}
	select {
	case <-ctx.Done():
		return berth.Usage{}, fmt.Errorf("stats of container %s: %w", name, ctx.Err())
	case <-time.After(statsGap):
	}
	b, err := d.sample(ctx, c.ID, name)
	if err != nil {
		return berth.Usage{}, err
	}
	u := berth.Usage{
		MemoryBytes:      memoryUsage(b.MemoryStats),
		MemoryLimitBytes: int64(b.MemoryStats.Limit),
		Pids:             int64(b.PidsStats.Current),
		Time:             b.Read,
	}
	if u.Time.IsZero() {
		u.Time = time.Now()
	}
	wall := b.Read.Sub(a.Read)
	used := b.CPUStats.CPUUsage.TotalUsage
	if wall > 0 && used >= a.CPUStats.CPUUsage.TotalUsage && a.CPUStats.CPUUsage.TotalUsage > 0 {
		u.CPUPercent = float64(used-a.CPUStats.CPUUsage.TotalUsage) / float64(wall.Nanoseconds()) * 100
	}
	return u, nil
}

func (d *Driver) sample(ctx context.Context, id, name string) (container.StatsResponse, error) {
	var s container.StatsResponse
	r, err := d.cli.ContainerStatsOneShot(ctx, id)
	if err != nil {
		return s, d.classify(err, "stats of container "+name)
	}
	defer r.Body.Close()
	if err := jsonDecode(r.Body, &s); err != nil {
		return s, fmt.Errorf("stats of container %s: decode: %w", name, err)
	}
	return s, nil
}

func memoryUsage(m container.MemoryStats) int64 {
	usage := m.Usage
	// cgroup v1 reports total_inactive_file, v2 inactive_file; older
	// engines only "cache".
	for _, k := range []string{"total_inactive_file", "inactive_file", "cache"} {
		if v, ok := m.Stats[k]; ok {
			if v < usage {
				usage -= v
			}
			break
		}
	}
	return int64(usage)
}

// Update changes memory (with swap equal to it), CPU and pids limits live.
func (d *Driver) Update(ctx context.Context, name string, limits berth.Limits) error {
	c, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	if err := d.checkLimits(ctx, name, limits); err != nil {
		return err
	}
	_, err = d.cli.ContainerUpdate(ctx, c.ID, container.UpdateConfig{Resources: resources(limits)})
	return d.classify(err, "update limits of container "+name)
}

// RemoveAll removes every container, volume, network and image labelled with
// this instance. It keeps going past errors and returns them joined. It is
// meant for tests and for decommissioning an instance: it destroys tenant data.
func (d *Driver) RemoveAll(ctx context.Context) error {
	var errs []error
	f := d.instanceFilter()
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return d.classify(err, "list containers")
	}
	for _, c := range cs {
		if err := d.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !isNotFound(err) && !isRemovalInProgress(err) {
			errs = append(errs, d.classify(err, "remove container "+c.ID))
		}
	}
	vs, err := d.cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		errs = append(errs, d.classify(err, "list volumes"))
	}
	for _, v := range vs.Volumes {
		if err := d.removeVolumeRetry(ctx, v.Name); err != nil {
			errs = append(errs, err)
		}
	}
	ns, err := d.cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		errs = append(errs, d.classify(err, "list networks"))
	}
	for _, n := range ns {
		if err := d.cli.NetworkRemove(ctx, n.ID); err != nil && !isNotFound(err) {
			errs = append(errs, d.classify(err, "remove network "+n.Name))
		}
	}
	is, err := d.cli.ImageList(ctx, image.ListOptions{All: true, Filters: f})
	if err != nil {
		errs = append(errs, d.classify(err, "list images"))
	}
	for _, im := range is {
		if _, err := d.cli.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !isNotFound(err) {
			errs = append(errs, d.classify(err, "remove image "+im.ID))
		}
	}
	return errors.Join(errs...)
}

// removeVolumeRetry removes a volume, retrying while a container that was
// just force-removed still holds it. Gone already is success.
func (d *Driver) removeVolumeRetry(ctx context.Context, name string) error {
	for attempt := 0; ; attempt++ {
		err := d.cli.VolumeRemove(ctx, name, false)
		if err == nil || isNotFound(err) {
			return nil
		}
		if !isConflict(err) || attempt >= 20 {
			return d.classify(err, "remove volume "+name)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove volume %s: %w", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
