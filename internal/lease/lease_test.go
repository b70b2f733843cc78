package lease_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/lease"
	"github.com/berth/berth/internal/lease/leasetest"
)

func TestMemory(t *testing.T) {
	shared := lease.NewMemory() // one process: every "replica" shares it
	leasetest.Run(t, func(t *testing.T) berth.Locker { return shared })
}

func TestAcquireWaits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := lease.NewMemory()
	held, err := m.TryAcquire(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(100 * time.Millisecond); held.Release(ctx) }()
	got, err := lease.Acquire(ctx, m, "x", 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	_ = got.Release(ctx)

	held, _ = m.TryAcquire(ctx, "y")
	defer held.Release(ctx)
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := lease.Acquire(cctx, m, "y", 10*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
}
