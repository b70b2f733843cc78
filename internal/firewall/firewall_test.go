package firewall

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestChainBase(t *testing.T) {
	t.Parallel()
	if got := ChainBase("berth"); got != "BERTH-berth" {
		t.Errorf("ChainBase(berth) = %q", got)
	}
	long := ChainBase("a-very-long-instance-name-of-forty-chars")
	if len(long+"-IN") > 28 || !strings.HasPrefix(long, "BERTH-") {
		t.Errorf("ChainBase(long) = %q: too long for iptables", long)
	}
}

func TestNewRefusesBadPrefix(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "b-x", "b+", "bbbbbbbbbbbbbbbb", "b x"} {
		if _, err := New(Config{Instance: "x", BridgePrefix: p}); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
}

func TestPoolOutsidePrivateRangesIsBlocked(t *testing.T) {
	t.Parallel()
	f, err := New(Config{Instance: "x", BridgePrefix: "babc", Pool: netip.MustParsePrefix("203.0.113.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range f.fwRules() {
		if strings.Join(r, " ") == "-d 203.0.113.0/24 -j DROP" {
			found = true
		}
	}
	if !found {
		t.Errorf("pool not blocked: %v", f.fwRules())
	}
}

// TestInstallRemoveReal installs and removes the rules with the real
// iptables (root only; always run by make test).
func TestInstallRemoveReal(t *testing.T) {
	if os.Geteuid() != 0 || !Available("") {
		if os.Getenv("BERTH_TEST_DOCKER") == "1" {
			t.Fatal("BERTH_TEST_DOCKER=1 but iptables cannot be run as root here")
		}
		t.Skip("needs root and iptables")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := New(Config{Instance: "fwtest-" + strings.ToLower(t.Name()[:4]), BridgePrefix: "bzzfw", NoEgressPrefix: "xzzfw", Pool: netip.MustParsePrefix("10.213.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Remove(context.Background()) })
	for i := 0; i < 2; i++ { // idempotent
		if err := f.Install(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rules := save(t)
	in, fw := f.Chains()
	if n := strings.Count(rules, "-A INPUT -i bzzfw+ -j "+in); n != 1 {
		t.Errorf("INPUT hook present %d times, want 1:\n%s", n, rules)
	}
	if !strings.Contains(rules, "-j "+fw) || !strings.Contains(rules, "-A "+fw+" -d 169.254.0.0/16 -j DROP") {
		t.Errorf("forward chain missing:\n%s", rules)
	}
	if !f.Installed(ctx) {
		t.Error("Installed = false after Install")
	}
	if err := f.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rules, "-A INPUT -i xzzfw+ -j "+in) || !strings.Contains(rules, "-i xzzfw+ -j "+f.NoEgressChain()) {
		t.Errorf("no-egress hooks missing:\n%s", rules)
	}
	if rules := save(t); strings.Contains(rules, in) || strings.Contains(rules, fw) || strings.Contains(rules, f.NoEgressChain()) {
		t.Errorf("rules left after Remove:\n%s", rules)
	}
	if err := f.Remove(ctx); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

func save(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("iptables", "-w", "5", "-S").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables -S: %v: %s", err, out)
	}
	return string(out)
}

// TestConcurrentInstallsKeepChainsWhole: replicas of one instance install
// the same chains at once; the result must be exactly the intended chain,
// never a flush interleaved with appends (which once left DROP before the
// ESTABLISHED rule and cut the host off from its tenants).
func TestConcurrentInstallsKeepChainsWhole(t *testing.T) {
	if os.Geteuid() != 0 || !Available("") {
		if os.Getenv("BERTH_TEST_DOCKER") == "1" {
			t.Fatal("BERTH_TEST_DOCKER=1 but iptables cannot be run as root here")
		}
		t.Skip("needs root and iptables")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{Instance: "fwrace", BridgePrefix: "bzzrc", NoEgressPrefix: "xzzrc", Pool: netip.MustParsePrefix("10.213.0.0/16")}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Remove(context.Background()) })
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, _ := New(cfg)
			for range 3 {
				if err := g.Install(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	in, _ := f.Chains()
	var got []string
	for _, l := range strings.Split(save(t), "\n") {
		if strings.HasPrefix(l, "-A "+in+" ") {
			got = append(got, l)
		}
	}
	want := []string{
		"-A " + in + " -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
		"-A " + in + " -j DROP",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("chain %s after concurrent installs:\n%s\nwant:\n%s", in, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
