package docker_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"

	"github.com/berth/berth/internal/driver/docker"
)

// TestSubnetAllocationAcrossProcesses: two drivers (as two control planes
// would be: separate locks) create containers at once from one small pool;
// every network gets its own subnet, because the engine refuses overlaps
// and the loser moves to the next free one. All are removed with their
// containers.
func TestSubnetAllocationAcrossProcesses(t *testing.T) {
	t.Parallel()
	needDocker(t)
	pool := "10.213.240.0/26" // four /28s
	var ds []*docker.Driver
	for i := 0; i < 2; i++ {
		d, err := docker.New(t.Context(), docker.Options{Instance: randomInstance(), Version: "test", SubnetPool: pool})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = d.RemoveAll(ctx)
		})
		ds = append(ds, d)
	}
	ctx := ctxFor(t)
	var wg sync.WaitGroup
	names := make([]string, 4)
	errs := make([]error, 4)
	for i := range names {
		d := ds[i%2]
		s := spec(t, d, fmt.Sprintf("net%d", i))
		names[i] = s.Name
		wg.Go(func() { _, errs[i] = d.Create(ctx, s) })
	}
	wg.Wait()
	seen := map[netip.Prefix]string{}
	for i, n := range names {
		if errs[i] != nil {
			t.Errorf("Create %s: %v", n, errs[i])
			continue
		}
		ni, err := ds[0].Client().NetworkInspect(ctx, docker.NetworkName(n), network.InspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p := netip.MustParsePrefix(ni.IPAM.Config[0].Subnet)
		if other, dup := seen[p]; dup {
			t.Errorf("%s and %s share %s", other, n, p)
		}
		if !netip.MustParsePrefix(pool).Contains(p.Addr()) {
			t.Errorf("%s got %s outside the pool", n, p)
		}
		seen[p] = n
	}
	// The pool is full now: a fifth container is refused with a capacity error.
	if _, err := ds[0].Create(ctx, spec(t, ds[0], "net4")); err == nil {
		t.Error("a fifth network fitted into four /28s")
	}
	for i, n := range names {
		if err := ds[i%2].Remove(ctx, n, true); err != nil {
			t.Errorf("Remove %s: %v", n, err)
		}
		if _, err := ds[0].Client().NetworkInspect(ctx, docker.NetworkName(n), network.InspectOptions{}); err == nil {
			t.Errorf("network of %s outlived it", n)
		}
	}
}
