package docker

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/docker/docker/api/types/network"

	"github.com/berth/berth"
)

// DefaultSubnetPool is where per-container networks take their subnets from
// when Options.SubnetPool is not set: 4096 /28s (11 usable addresses each;
// one container per network needs two: the gateway and itself).
const (
	DefaultSubnetPool = "10.213.0.0/16"
	DefaultSubnetBits = 28
)

// labelNetwork marks a per-container network; labelEgress says "on" or "off".
const (
	labelNetwork = "berth.network"
	LabelEgress  = "berth.egress"
)

// BridgePrefix returns the prefix of the Linux bridge names of an instance's
// tenant networks: "b" + 6 hex of sha256(instance). Every tenant bridge is
// BridgePrefix + 8 hex (15 characters, the kernel's limit), so a host
// firewall can match them all with one iptables interface wildcard
// ("-i <prefix>+") without knowing the networks.
func BridgePrefix(instance string) string {
	sum := sha256.Sum256([]byte(instance))
	return "b" + hex.EncodeToString(sum[:])[:6]
}

// NoEgressBridgePrefix is the prefix of the bridges of egress-off networks
// ("x" instead of "b"): the host firewall drops every connection they open
// through the host. (Docker's --internal networks cannot be used: the engine
// does not publish ports on them, so the control plane could not reach the
// agent on 127.0.0.1.)
func NoEgressBridgePrefix(instance string) string {
	return "x" + BridgePrefix(instance)[1:]
}

func (d *Driver) bridgeName(netName string, noEgress bool) string {
	sum := sha256.Sum256([]byte(netName))
	prefix := BridgePrefix(d.instance)
	if noEgress {
		prefix = NoEgressBridgePrefix(d.instance)
	}
	return prefix + hex.EncodeToString(sum[:])[:8]
}

// NetworkName returns the name of a tenant container's own network.
func NetworkName(containerName string) string { return containerName + "-net" }

// subnets enumerates the pool's /bits subnets.
type subnetPool struct {
	base netip.Prefix
	bits int
}

func parsePool(pool string, bits int) (subnetPool, error) {
	if pool == "" {
		pool = DefaultSubnetPool
	}
	if bits == 0 {
		bits = DefaultSubnetBits
	}
	p, err := netip.ParsePrefix(pool)
	if err != nil || !p.Addr().Is4() {
		return subnetPool{}, berth.Errorf(berth.ErrInvalid, "docker: subnet pool %q must be an IPv4 CIDR like %s", pool, DefaultSubnetPool)
	}
	p = p.Masked()
	if bits < p.Bits() || bits > 29 || p.Bits() < 8 {
		return subnetPool{}, berth.Errorf(berth.ErrInvalid, "docker: subnet pool %s cannot be carved into /%d (need /8../%d pool, /%d..29 subnets)", pool, bits, bits, p.Bits())
	}
	return subnetPool{base: p, bits: bits}, nil
}

func (s subnetPool) size() int { return 1 << (s.bits - s.base.Bits()) }

func (s subnetPool) at(i int) netip.Prefix {
	a := s.base.Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) + uint32(i)<<(32-s.bits)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.PrefixFrom(netip.AddrFrom4(a), s.bits)
}

// Pool returns the subnet pool the driver carves tenant networks from.
func (d *Driver) Pool() netip.Prefix { return d.pool.base }

// usedSubnets returns the IPv4 subnets of every network on the engine, of
// any instance or tool, so a new network never overlaps one.
func (d *Driver) usedSubnets(ctx context.Context) ([]netip.Prefix, error) {
	ns, err := d.cli.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, d.classify(err, "list networks")
	}
	var out []netip.Prefix
	for _, n := range ns {
		for _, c := range n.IPAM.Config {
			if p, err := netip.ParsePrefix(c.Subnet); err == nil {
				out = append(out, p.Masked())
			}
		}
	}
	return out, nil
}

// ensureTenantNetwork returns the container's own bridge network, creating
// it with a free subnet of the pool. Egress-off networks get a bridge name
// the host firewall recognises (NoEgressBridgePrefix).
// Race-safe: creations in this process are serialised, and the engine
// refuses a subnet that overlaps an existing network (another process got
// it first), in which case the next free one is tried.
func (d *Driver) ensureTenantNetwork(ctx context.Context, spec berth.ContainerSpec) (name, id string, err error) {
	d.netMu.Lock()
	defer d.netMu.Unlock()
	name = NetworkName(spec.Name)
	n, err := d.cli.NetworkInspect(ctx, name, network.InspectOptions{})
	switch {
	case err == nil:
		if n.Labels[berth.LabelInstance] != d.instance {
			return "", "", berth.Errorf(berth.ErrConflict, "network %s exists but does not belong to instance %s", name, d.instance)
		}
		if (n.Labels[LabelEgress] == berth.EgressOff) == spec.NoEgress {
			return name, n.ID, nil
		}
		// The plan's egress changed: make the network again.
		if err := d.cli.NetworkRemove(ctx, n.ID); err != nil && !isNotFound(err) {
			return "", "", d.classify(err, "remove network "+name)
		}
	case !isNotFound(err):
		return "", "", d.classify(err, "inspect network "+name)
	}
	used, err := d.usedSubnets(ctx)
	if err != nil {
		return "", "", err
	}
	overlaps := func(p netip.Prefix) bool {
		for _, u := range used {
			if u.Overlaps(p) {
				return true
			}
		}
		return false
	}
	tries := 0
	for i := 0; i < d.pool.size(); i++ {
		sub := d.pool.at(i)
		if overlaps(sub) {
			continue
		}
		gw := sub.Addr().Next()
		egress := berth.EgressOn
		if spec.NoEgress {
			egress = berth.EgressOff
		}
		resp, err := d.cli.NetworkCreate(ctx, name, network.CreateOptions{
			Driver: "bridge",
			Labels: map[string]string{
				LabelEgress:         egress,
				berth.LabelInstance: d.instance,
				berth.LabelUser:     spec.UserID,
				berth.LabelName:     spec.Name,
				labelNetwork:        "tenant",
			},
			Options: map[string]string{
				"com.docker.network.bridge.name":       d.bridgeName(name, spec.NoEgress),
				"com.docker.network.bridge.enable_icc": "false",
			},
			IPAM: &network.IPAM{Driver: "default", Config: []network.IPAMConfig{{Subnet: sub.String(), Gateway: gw.String()}}},
		})
		if err == nil {
			return name, resp.ID, nil
		}
		msg := err.Error()
		if strings.Contains(msg, "overlap") && tries < 64 {
			tries++
			used = append(used, sub) // taken meanwhile: try the next one
			continue
		}
		return "", "", d.classify(err, "create network "+name+" ("+sub.String()+")")
	}
	return "", "", berth.Errorf(berth.ErrCapacity, "insufficient capacity: no free /%d subnet left in %s", d.pool.bits, d.pool.base)
}

// removeTenantNetwork removes the container's network if it is ours. Gone
// already is success; an endpoint that is still being released is retried.
func (d *Driver) removeTenantNetwork(ctx context.Context, containerName string) error {
	name := NetworkName(containerName)
	for attempt := 0; ; attempt++ {
		n, err := d.cli.NetworkInspect(ctx, name, network.InspectOptions{})
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return d.classify(err, "inspect network "+name)
		}
		if n.Labels[berth.LabelInstance] != d.instance {
			return nil
		}
		err = d.cli.NetworkRemove(ctx, n.ID)
		if err == nil || isNotFound(err) {
			return nil
		}
		if attempt >= 20 {
			return d.classify(err, "remove network "+name)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove network %s: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// dropNetwork removes a network Create made before it failed, with a fresh
// context (ctx may be why it failed).
func (d *Driver) dropNetwork(ctx context.Context, containerName string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = d.removeTenantNetwork(cctx, containerName)
}
