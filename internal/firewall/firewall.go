// Package firewall installs and removes the host firewall rules that keep
// tenant containers away from the host, from each other and from private
// networks, with iptables.
//
// Docker's own rules only filter forwarded traffic between its bridges; a
// tenant can still reach every service the host listens on through its
// network's gateway (INPUT), and every private or link-local address the
// host can route to (169.254.169.254 metadata, the LAN, other VPCs). Berth
// adds, per instance, two chains:
//
//	BERTH-<instance>-IN  hooked from INPUT for "-i <bridge prefix>+":
//	                     replies to connections the host opened pass
//	                     (ESTABLISHED,RELATED: the control plane's calls to
//	                     the agents), everything else from a tenant to the
//	                     host is dropped.
//	BERTH-<instance>-FW  hooked from DOCKER-USER (FORWARD when Docker's
//	                     iptables integration is off) for the same bridges:
//	                     replies pass, new connections to private, shared,
//	                     link-local, multicast and reserved ranges and to
//	                     the subnet pool are dropped; the rest (internet)
//	                     continues to Docker's rules.
//	BERTH-<instance>-NO  hooked the same way for the bridges of egress-off
//	                     networks ("-i <no-egress prefix>+", also hooked
//	                     into -IN): replies pass, everything else is dropped.
//
// Every tenant bridge of an instance is named <prefix><8 hex> (see
// docker.BridgePrefix), so the rules never change as containers come and go.
// IPv6 is not configured on tenant networks, so only iptables (IPv4) is used.
package firewall

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Blocked are the destination ranges tenants may never open connections to.
var Blocked = []string{
	"0.0.0.0/8",      // "this" network
	"10.0.0.0/8",     // RFC 1918
	"100.64.0.0/10",  // carrier-grade NAT, cloud internal ranges
	"127.0.0.0/8",    // loopback (never routed, listed for clarity)
	"169.254.0.0/16", // link-local: 169.254.169.254 cloud metadata
	"172.16.0.0/12",  // RFC 1918
	"192.0.0.0/24",   // IETF protocol assignments
	"192.168.0.0/16", // RFC 1918
	"198.18.0.0/15",  // benchmarking
	"224.0.0.0/4",    // multicast
	"240.0.0.0/4",    // reserved, broadcast
}

// Config describes one instance's rules.
type Config struct {
	Instance     string // the berth instance
	BridgePrefix string // every tenant bridge's name starts with it (at most 14 characters)
	// NoEgressPrefix starts the bridge names of egress-off networks; none
	// when empty.
	NoEgressPrefix string
	Pool           netip.Prefix // the tenant subnet pool, blocked as a destination too
	// DNS are resolvers tenants with egress may query on port 53 even when
	// they are in a blocked range (Docker's embedded DNS forwards a
	// container's queries to the host's resolvers from the container).
	DNS []netip.Addr
	// Command is the iptables executable; "iptables" when empty.
	Command string
}

// HostResolvers returns the IPv4 nameservers of a resolv.conf that are not
// loopback (Docker does not forward to those).
func HostResolvers(resolvConf string) []netip.Addr {
	var out []netip.Addr
	for _, line := range strings.Split(resolvConf, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && a.Is4() && !a.IsLoopback() {
				out = append(out, a)
			}
		}
	}
	return out
}

// Firewall manages the rules of one instance.
type Firewall struct {
	cfg                 Config
	inChain, fwCh, noCh string
}

// New checks cfg.
func New(cfg Config) (*Firewall, error) {
	if cfg.Instance == "" || cfg.BridgePrefix == "" || len(cfg.BridgePrefix) > 14 {
		return nil, errors.New("firewall: Instance and a BridgePrefix of 1-14 characters are required")
	}
	if len(cfg.NoEgressPrefix) > 14 || cfg.NoEgressPrefix == cfg.BridgePrefix {
		return nil, errors.New("firewall: NoEgressPrefix must differ from BridgePrefix and have at most 14 characters")
	}
	for _, r := range cfg.BridgePrefix + cfg.NoEgressPrefix {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return nil, fmt.Errorf("firewall: bridge prefixes %q, %q must be [a-z0-9]", cfg.BridgePrefix, cfg.NoEgressPrefix)
		}
	}
	if cfg.Command == "" {
		cfg.Command = "iptables"
	}
	base := ChainBase(cfg.Instance)
	return &Firewall{cfg: cfg, inChain: base + "-IN", fwCh: base + "-FW", noCh: base + "-NO"}, nil
}

// ChainBase returns BERTH-<instance>, or BERTH-<8 hex of its sha256> when
// the instance is too long for iptables' 28-character chain names.
func ChainBase(instance string) string {
	if len(instance) <= 18 && !strings.ContainsAny(instance, " \t!") {
		return "BERTH-" + instance
	}
	sum := sha256.Sum256([]byte(instance))
	return "BERTH-" + hex.EncodeToString(sum[:4])
}

// Chains returns the names of the instance's INPUT and FORWARD chains.
func (f *Firewall) Chains() (in, fw string) { return f.inChain, f.fwCh }

// NoEgressChain returns the name of the chain of egress-off bridges.
func (f *Firewall) NoEgressChain() string { return f.noCh }

// Available reports whether the iptables command can be run.
func Available(command string) bool {
	if command == "" {
		command = "iptables"
	}
	_, err := exec.LookPath(command)
	return err == nil
}

func (f *Firewall) run(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, f.cfg.Command, append([]string{"-w", "5"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", f.cfg.Command, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// inRules and fwRules are the chains' contents, in order.
func (f *Firewall) inRules() [][]string {
	return [][]string{
		{"-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"},
		{"-j", "DROP"},
	}
}

func (f *Firewall) fwRules() [][]string {
	rules := [][]string{{"-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"}}
	for _, a := range f.cfg.DNS {
		for _, proto := range []string{"udp", "tcp"} {
			rules = append(rules, []string{"-d", a.String() + "/32", "-p", proto, "--dport", "53", "-j", "RETURN"})
		}
	}
	dst := append([]string(nil), Blocked...)
	if f.cfg.Pool.IsValid() {
		covered := false
		for _, b := range Blocked {
			if p := netip.MustParsePrefix(b); p.Bits() <= f.cfg.Pool.Bits() && p.Contains(f.cfg.Pool.Addr()) {
				covered = true
			}
		}
		if !covered {
			dst = append(dst, f.cfg.Pool.Masked().String())
		}
	}
	for _, d := range dst {
		rules = append(rules, []string{"-d", d, "-j", "DROP"})
	}
	return rules
}

func (f *Firewall) noRules() [][]string {
	return [][]string{
		{"-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"},
		{"-j", "DROP"},
	}
}

// hooks are the jumps into the chains: (chain, rule) pairs.
func (f *Firewall) hooks(ctx context.Context) [][]string {
	fwd := "DOCKER-USER"
	if f.run(ctx, "-n", "-L", "DOCKER-USER") != nil {
		fwd = "FORWARD"
	}
	return f.hooksVia(fwd)
}

func (f *Firewall) hooksVia(fwd string) [][]string {
	match := f.cfg.BridgePrefix + "+"
	hs := [][]string{
		{"INPUT", "-i", match, "-j", f.inChain},
		{fwd, "-i", match, "-j", f.fwCh},
	}
	if f.cfg.NoEgressPrefix != "" {
		no := f.cfg.NoEgressPrefix + "+"
		hs = append(hs, []string{"INPUT", "-i", no, "-j", f.inChain}, []string{fwd, "-i", no, "-j", f.noCh})
	}
	return hs
}

// hostLock serialises changes to the host's rules between processes:
// several control planes (replicas of one instance, or test packages) start
// at once on one host, and a flush of a chain interleaved with another
// process's appends would leave it holding, say, DROP before the
// ESTABLISHED rule — cutting the host off from every tenant.
func hostLock() (unlock func(), err error) {
	path := filepath.Join(os.TempDir(), "berth-firewall.lock")
	fd, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("firewall: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(fd.Fd()), syscall.LOCK_EX); err != nil {
		fd.Close()
		return nil, fmt.Errorf("firewall: lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(fd.Fd()), syscall.LOCK_UN)
		fd.Close()
	}, nil
}

// Install creates (or refreshes) the chains and hooks them first into INPUT
// and DOCKER-USER. Idempotent; safe while containers run, and between
// processes (see hostLock).
func (f *Firewall) Install(ctx context.Context) error {
	unlock, err := hostLock()
	if err != nil {
		return err
	}
	defer unlock()
	for chain, rules := range map[string][][]string{f.inChain: f.inRules(), f.fwCh: f.fwRules(), f.noCh: f.noRules()} {
		if f.run(ctx, "-n", "-L", chain) != nil {
			if err := f.run(ctx, "-N", chain); err != nil {
				return fmt.Errorf("firewall: %w", err)
			}
		}
		if err := f.run(ctx, "-F", chain); err != nil {
			return fmt.Errorf("firewall: %w", err)
		}
		for _, r := range rules {
			if err := f.run(ctx, append([]string{"-A", chain}, r...)...); err != nil {
				return fmt.Errorf("firewall: %w", err)
			}
		}
	}
	for _, h := range f.hooks(ctx) {
		if f.run(ctx, append([]string{"-C", h[0]}, h[1:]...)...) == nil {
			continue
		}
		if err := f.run(ctx, append([]string{"-I", h[0], "1"}, h[1:]...)...); err != nil {
			return fmt.Errorf("firewall: %w", err)
		}
	}
	return nil
}

// Remove deletes the hooks and the chains. Rules already gone are fine.
func (f *Firewall) Remove(ctx context.Context) error {
	unlock, err := hostLock()
	if err != nil {
		return err
	}
	defer unlock()
	var errs []error
	for _, h := range append(f.hooksVia("DOCKER-USER"), f.hooksVia("FORWARD")...) {
		for i := 0; i < 10 && f.run(ctx, append([]string{"-C", h[0]}, h[1:]...)...) == nil; i++ {
			if err := f.run(ctx, append([]string{"-D", h[0]}, h[1:]...)...); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	for _, chain := range []string{f.inChain, f.fwCh, f.noCh} {
		if f.run(ctx, "-n", "-L", chain) != nil {
			continue
		}
		if err := f.run(ctx, "-F", chain); err != nil {
			errs = append(errs, err)
		}
		if err := f.run(ctx, "-X", chain); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("firewall: %w", errors.Join(errs...))
	}
	return nil
}

// Installed reports whether both hooks are in place.
func (f *Firewall) Installed(ctx context.Context) bool {
	for _, h := range f.hooks(ctx) {
		if f.run(ctx, append([]string{"-C", h[0]}, h[1:]...)...) != nil {
			return false
		}
	}
	return true
}
