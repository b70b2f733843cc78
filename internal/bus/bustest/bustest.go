// Package bustest is the conformance suite every berth.Bus passes.
package bustest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/berth/berth"
)

// Run runs the suite. newBus returns a fresh bus; topics are unique per
// subtest so a shared backend may be reused.
func Run(t *testing.T, newBus func(t *testing.T) berth.Bus) {
	t.Run("DeliversInOrderToEverySubscriber", func(t *testing.T) {
		t.Parallel()
		b := newBus(t)
		ctx := context.Background()
		topic := uniqueTopic(t)
		s1 := subscribe(t, b, topic, 100)
		s2 := subscribe(t, b, topic, 100)
		for i := range 50 {
			if err := b.Publish(ctx, topic, []byte(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range []berth.Subscription{s1, s2} {
			for i := range 50 {
				m := recv(t, s)
				if string(m.Data) != fmt.Sprint(i) || m.Dropped != 0 {
					t.Fatalf("message %d = %q (dropped %d)", i, m.Data, m.Dropped)
				}
			}
		}
	})
	t.Run("TopicsAreSeparate", func(t *testing.T) {
		t.Parallel()
		b := newBus(t)
		a, other := uniqueTopic(t), uniqueTopic(t)+"-other"
		sa := subscribe(t, b, a, 10)
		if err := b.Publish(context.Background(), other, []byte("not for a")); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(context.Background(), a, []byte("for a")); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, sa); string(m.Data) != "for a" {
			t.Fatalf("got %q", m.Data)
		}
	})
	t.Run("SlowSubscriberIsToldAndDoesNotBlock", func(t *testing.T) {
		t.Parallel()
		b := newBus(t)
		topic := uniqueTopic(t)
		slow := subscribe(t, b, topic, 4)
		fast := subscribe(t, b, topic, 1000)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range 200 {
				_ = b.Publish(context.Background(), topic, []byte(fmt.Sprint(i)))
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Publish blocked on a slow subscriber")
		}
		for i := range 200 {
			if m := recv(t, fast); string(m.Data) != fmt.Sprint(i) {
				t.Fatalf("fast subscriber: message %d = %q", i, m.Data)
			}
		}
		// The slow one got some, then learns how many it missed with the
		// next message delivered after it catches up.
		got := 0
		for range 4 {
			recv(t, slow)
			got++
		}
		if err := b.Publish(context.Background(), topic, []byte("after")); err != nil {
			t.Fatal(err)
		}
		var m berth.Message
		for {
			m = recv(t, slow)
			got++
			if string(m.Data) == "after" {
				break
			}
		}
		if m.Dropped == 0 && got < 201 {
			t.Fatalf("slow subscriber received %d of 201 without a drop signal", got)
		}
	})
	t.Run("CloseEndsSubscription", func(t *testing.T) {
		t.Parallel()
		b := newBus(t)
		topic := uniqueTopic(t)
		s := subscribe(t, b, topic, 10)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		_ = b.Publish(context.Background(), topic, []byte("x"))
		drain(t, s)
	})
	t.Run("ContextEndsSubscription", func(t *testing.T) {
		t.Parallel()
		b := newBus(t)
		ctx, cancel := context.WithCancel(context.Background())
		s, err := b.Subscribe(ctx, uniqueTopic(t), 10)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		drain(t, s)
	})
	t.Run("ConcurrentPublishers", func(t *testing.T) {
		t.Parallel()
		b := newBus(t)
		topic := uniqueTopic(t)
		s := subscribe(t, b, topic, 2000)
		var wg sync.WaitGroup
		for p := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 100 {
					_ = b.Publish(context.Background(), topic, []byte(fmt.Sprintf("%d-%d", p, i)))
				}
			}()
		}
		wg.Wait()
		last := map[string]int{}
		for range 1000 {
			m := recv(t, s)
			var p, i int
			if _, err := fmt.Sscanf(string(m.Data), "%d-%d", &p, &i); err != nil {
				t.Fatal(err)
			}
			if prev, ok := last[fmt.Sprint(p)]; ok && i <= prev {
				t.Fatalf("publisher %d out of order: %d after %d", p, i, prev)
			}
			last[fmt.Sprint(p)] = i
		}
	})
}

var topicSeq struct {
	sync.Mutex
	n int
}

func uniqueTopic(t *testing.T) string {
	topicSeq.Lock()
	defer topicSeq.Unlock()
	topicSeq.n++
	return fmt.Sprintf("bustest:%s:%d:%d", t.Name(), time.Now().UnixNano(), topicSeq.n)
}

func subscribe(t *testing.T, b berth.Bus, topic string, buf int) berth.Subscription {
	t.Helper()
	s, err := b.Subscribe(context.Background(), topic, buf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func recv(t *testing.T, s berth.Subscription) berth.Message {
	t.Helper()
	select {
	case m, ok := <-s.C():
		if !ok {
			t.Fatal("subscription closed early")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	return berth.Message{}
}

func drain(t *testing.T, s berth.Subscription) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-s.C():
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("subscription did not end")
		}
	}
}
