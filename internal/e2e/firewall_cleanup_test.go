package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/berth/berth/internal/driver/docker"
	"github.com/berth/berth/internal/firewall"
)

// cleanupFirewall removes the host firewall rules berth serve installed for
// an instance (they outlive the process by design).
func cleanupFirewall(t testing.TB, instance string) {
	if os.Geteuid() != 0 || !firewall.Available("") {
		return
	}
	fw, err := firewall.New(firewall.Config{Instance: instance, BridgePrefix: docker.BridgePrefix(instance), NoEgressPrefix: docker.NoEgressBridgePrefix(instance)})
	if err != nil {
		t.Errorf("cleanup firewall: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fw.Remove(ctx); err != nil {
		t.Errorf("cleanup firewall: %v", err)
	}
}
