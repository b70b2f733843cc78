package redis

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/bus/bustest"
	"github.com/berth/berth/internal/testenv"
)

// The suite runs against a redis-server started here. Without one it
// skips, unless BERTH_TEST_REDIS=1 (make test).
var (
	server    *testenv.Redis
	serverErr error
)

func TestMain(m *testing.M) {
	server, serverErr = testenv.StartRedis()
	if serverErr != nil && testenv.Required("BERTH_TEST_REDIS") {
		fmt.Fprintf(os.Stderr, "FAIL: BERTH_TEST_REDIS=1 but no redis-server could be started: %v\n", serverErr)
		os.Exit(1)
	}
	code := m.Run()
	if server != nil {
		_ = server.Stop()
	}
	os.Exit(code)
}

func newBus(t *testing.T) *Bus {
	t.Helper()
	if server == nil {
		t.Skipf("no redis-server (%v); make test sets BERTH_TEST_REDIS=1 to make this a failure", serverErr)
	}
	b, err := New(context.Background(), Options{URL: server.URL(), Prefix: "test:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) berth.Bus { return newBus(t) })
}

// Two buses stand for two replicas: what one publishes, the other's
// subscribers get, in order.
func TestAcrossReplicas(t *testing.T) {
	t.Parallel()
	a, b := newBus(t), newBus(t)
	ctx := context.Background()
	s, err := b.Subscribe(ctx, "x", 100)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 50 {
		if err := a.Publish(ctx, "x", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		select {
		case m := <-s.C():
			if string(m.Data) != fmt.Sprint(i) {
				t.Fatalf("message %d = %q", i, m.Data)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d did not arrive", i)
		}
	}
}

// Resubscribing to a topic right after its last subscriber left still
// delivers (the UNSUBSCRIBE and SUBSCRIBE confirmations are told apart).
func TestResubscribe(t *testing.T) {
	t.Parallel()
	b := newBus(t)
	ctx := context.Background()
	for i := range 20 {
		s, err := b.Subscribe(ctx, "again", 10)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, "again", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-s.C():
			if string(m.Data) != fmt.Sprint(i) {
				t.Fatalf("round %d: got %q", i, m.Data)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: nothing delivered", i)
		}
		s.Close()
	}
}

func TestPrefixSeparatesInstances(t *testing.T) {
	t.Parallel()
	if server == nil {
		t.Skip("no redis-server")
	}
	ctx := context.Background()
	other, err := New(ctx, Options{URL: server.URL(), Prefix: "other:"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	b := newBus(t)
	s, err := b.Subscribe(ctx, "p", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_ = other.Publish(ctx, "p", []byte("other instance"))
	_ = b.Publish(ctx, "p", []byte("mine"))
	if m := <-s.C(); string(m.Data) != "mine" {
		t.Fatalf("got %q from another instance's prefix", m.Data)
	}
}
