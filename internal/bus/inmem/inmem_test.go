package inmem

import (
	"testing"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/bus/bustest"
)

func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) berth.Bus {
		b := New()
		t.Cleanup(func() { b.Close() })
		return b
	})
}
