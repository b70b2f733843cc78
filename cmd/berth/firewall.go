package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/driver/docker"
	"github.com/berth/berth/internal/firewall"
)

// newFirewall returns the host firewall of an instance's tenant networks.
func newFirewall(instance string, drv *docker.Driver) (*firewall.Firewall, error) {
	rc, _ := os.ReadFile("/etc/resolv.conf")
	return firewall.New(firewall.Config{Instance: instance, BridgePrefix: docker.BridgePrefix(instance), NoEgressPrefix: docker.NoEgressBridgePrefix(instance), Pool: drv.Pool(), DNS: firewall.HostResolvers(string(rc))})
}

// setupFirewall installs the instance's host firewall rules according to
// BERTH_FIREWALL: "on" (fail when it cannot), "off" (warn), or "auto" (the
// default: install when running as root with iptables, warn otherwise).
// The rules stay when berth stops (tenant containers keep running);
// `berth firewall remove` deletes them when an instance is decommissioned.
// A plan with egress off is enforced only by these rules, so without them
// berth refuses to start rather than silently give such plans the internet.
func setupFirewall(ctx context.Context, mode, instance string, drv *docker.Driver, plans berth.Plans, stdout io.Writer) error {
	switch mode {
	case "", "auto", "on", "off":
	default:
		return fmt.Errorf("BERTH_FIREWALL must be on, off or auto, got %q", mode)
	}
	for _, p := range plans {
		if !p.EgressAllowed() && mode == "off" {
			return fmt.Errorf("plan %s has egress off, which the host firewall enforces: BERTH_FIREWALL=off is not allowed with it", p.Name)
		}
		if !p.EgressAllowed() && (os.Geteuid() != 0 || !firewall.Available("")) {
			mode = "on" // fail below, naming what is missing
		}
	}
	if mode == "off" {
		fmt.Fprintln(stdout, "WARNING: BERTH_FIREWALL=off: tenants can reach the host's services and private networks")
		return nil
	}
	if os.Geteuid() != 0 || !firewall.Available("") {
		if mode == "on" {
			return fmt.Errorf("BERTH_FIREWALL=on needs root and iptables (apt-get install iptables)")
		}
		fmt.Fprintln(stdout, "WARNING: not root or no iptables: host firewall rules NOT installed; tenants can reach the host's services and private networks (set BERTH_FIREWALL=on to make this fatal)")
		return nil
	}
	fw, err := newFirewall(instance, drv)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := fw.Install(ctx); err != nil {
		return err
	}
	in, fwd := fw.Chains()
	fmt.Fprintf(stdout, "Host firewall: chains %s, %s for bridges %s+ (tenant subnets from %s)\n", in, fwd, docker.BridgePrefix(instance), drv.Pool())
	return nil
}

const firewallUsage = `Usage: berth firewall install|remove|status [--instance NAME]

Installs, removes or checks the host firewall rules of an instance's tenant
networks (iptables chains BERTH-<instance>-IN and -FW). berth serve installs
them at start; remove them only when the instance is decommissioned.
`

func firewallCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "install" && args[0] != "remove" && args[0] != "status") {
		fmt.Fprint(stderr, firewallUsage)
		return errUsage
	}
	verb := args[0]
	fs := newFlags("firewall "+verb, "Manage the host firewall rules of an instance.", stderr)
	instance := fs.String("instance", envOr(getenv, "BERTH_INSTANCE", "berth"), "instance name (BERTH_INSTANCE)")
	pool := fs.String("subnet-pool", getenv("BERTH_SUBNET_POOL"), "tenant subnet pool (BERTH_SUBNET_POOL)")
	if err := parse(fs, args[1:]); err != nil {
		if err == errHelp {
			return nil
		}
		return err
	}
	drv, err := docker.New(ctx, docker.Options{Instance: *instance, SubnetPool: *pool})
	if err != nil {
		return err
	}
	fw, err := newFirewall(*instance, drv)
	if err != nil {
		return err
	}
	switch verb {
	case "install":
		return fw.Install(ctx)
	case "remove":
		return fw.Remove(ctx)
	}
	if fw.Installed(ctx) {
		fmt.Fprintln(stdout, "installed")
		return nil
	}
	fmt.Fprintln(stdout, "not installed")
	return fmt.Errorf("firewall of instance %s is not installed", *instance)
}
