package berth

import "context"

// Message is one delivery to a subscriber. Dropped > 0 tells the subscriber
// that it fell behind and that many messages before this one were dropped.
type Message struct {
	Data    []byte
	Dropped int
}

// Bus carries live events between the parts of the control plane (and,
// with a distributed implementation, between replicas). It is best-effort:
// the store is the system of record, the bus only makes things prompt.
//
// A slow subscriber never blocks Publish or other subscribers: its buffer
// is bounded, messages that do not fit are dropped and counted, and the
// count arrives with its next delivered message.
type Bus interface {
	// Publish sends data to every current subscriber of topic. It does not
	// block on subscribers.
	Publish(ctx context.Context, topic string, data []byte) error
	// Subscribe starts a subscription to topic with a buffer of the given
	// size (0 for the default). Messages published after Subscribe returns
	// are delivered in publish order. The subscription ends when ctx is done
	// or Close is called; then C is closed.
	Subscribe(ctx context.Context, topic string, buffer int) (Subscription, error)
}

// Subscription is one subscriber of a Bus topic.
type Subscription interface {
	// C delivers messages; it is closed when the subscription ends.
	C() <-chan Message
	// Close ends the subscription. It is safe to call more than once.
	Close() error
}

// Bus topics.
const (
	TopicAll = "all" // every event, for the admin stream
)

// UserTopic returns the topic of one user's events.
func UserTopic(userID string) string { return "user:" + userID }
