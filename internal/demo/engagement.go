// Package demo holds the demo workload shipped in the tenant image.
//
// Engagement is a SIMULATION: it walks an embedded, offline sample feed of
// fictional accounts and posts and "performs" likes, comments and follows by
// printing them. It makes no network call except to the agent on loopback
// (BERTH_AGENT_URL), through which every action is reserved and reported.
package demo

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/berth/berth/workload"
)

//go:embed feed.json
var feedJSON []byte

type feed struct {
	Accounts []string `json:"accounts"`
	Posts    []struct {
		ID     string `json:"id"`
		Author string `json:"author"`
		Text   string `json:"text"`
	} `json:"posts"`
}

// EngagementConfig is the workflow's config (BERTH_CONFIG). The *_per_day
// caps are enforced by the agent; they are listed here for documentation.
type EngagementConfig struct {
	PaceMS         int  `json:"pace_ms"`     // pause per simulated action; default 200
	MaxActions     int  `json:"max_actions"` // stop after this many granted actions; 0: no limit
	Loop           bool `json:"loop"`        // walk the feed again and again until denied
	LikesPerDay    *int `json:"likes_per_day,omitempty"`
	CommentsPerDay *int `json:"comments_per_day,omitempty"`
	FollowsPerDay  *int `json:"follows_per_day,omitempty"`
}

var comments = []string{"Lovely (simulated) work!", "This made my fictional day.", "Great demo post.", "Bookmarked, pretend-style."}

// Engagement runs the simulation until the feed is walked, every action
// type is denied, max_actions is reached or ctx is cancelled (all exit 0).
func Engagement(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, "Usage: berth workload engagement\n\nSimulated likes/comments/follows over an offline fictional feed; run by berth agent (needs BERTH_AGENT_URL and BERTH_RUN_TOKEN).")
		return nil
	}
	c, err := workload.FromGetenv(getenv)
	if err != nil {
		return err
	}
	if u, err := url.Parse(getenv("BERTH_AGENT_URL")); err != nil || !isLoopback(u.Hostname()) {
		return fmt.Errorf("engagement: refusing non-loopback agent URL %q", getenv("BERTH_AGENT_URL"))
	}
	cfg := EngagementConfig{PaceMS: 200}
	if err := c.Config(&cfg); err != nil {
		return err
	}
	var f feed
	if err := json.Unmarshal(feedJSON, &f); err != nil {
		return fmt.Errorf("engagement: embedded feed: %w", err)
	}
	pace := time.Duration(max(cfg.PaceMS, 0)) * time.Millisecond
	denied := map[string]bool{}
	followed := map[string]bool{}
	granted := 0
	fmt.Fprintf(stdout, "engagement simulation: %d fictional posts, pace %s (no network calls; nothing real is liked)\n", len(f.Posts), pace)

	// act reserves, "performs" and reports one action; it returns false when
	// the run should end.
	act := func(action, target, what string) (bool, error) {
		if denied[action] {
			return true, nil
		}
		res, err := c.Reserve(ctx, action)
		var d *workload.DeniedError
		if errors.As(err, &d) {
			denied[action] = true
			fmt.Fprintf(stdout, "quota: %s denied (%s)\n", action, d.Reason)
			return true, nil
		}
		if err != nil {
			return false, err
		}
		fmt.Fprintf(stdout, "simulated %s: %s\n", action, what)
		select {
		case <-time.After(pace):
		case <-ctx.Done():
		}
		// Report even when cancelled meanwhile: the "action" happened.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := c.Report(rctx, res, target, true, map[string]string{"simulated": "true", "what": what}); err != nil {
			return false, err
		}
		granted++
		if cfg.MaxActions > 0 && granted >= cfg.MaxActions {
			fmt.Fprintf(stdout, "max_actions %d reached; done\n", cfg.MaxActions)
			return false, nil
		}
		return ctx.Err() == nil, nil
	}

	for pass := 0; pass == 0 || cfg.Loop; pass++ {
		for i, p := range f.Posts {
			steps := []struct{ action, target, what string }{
				{"like", p.Author, fmt.Sprintf("like %s by %s", p.ID, p.Author)},
			}
			if i%2 == 0 {
				steps = append(steps, struct{ action, target, what string }{"comment", p.Author,
					fmt.Sprintf("comment %q on %s by %s", comments[i%len(comments)], p.ID, p.Author)})
			}
			if !followed[p.Author] || cfg.Loop {
				followed[p.Author] = true
				steps = append(steps, struct{ action, target, what string }{"follow", p.Author, "follow " + p.Author})
			}
			for _, s := range steps {
				more, err := act(s.action, s.target, s.what)
				if err != nil {
					return fmt.Errorf("engagement: %w", err)
				}
				if !more {
					return nil
				}
			}
			if denied["like"] && denied["comment"] && denied["follow"] {
				fmt.Fprintln(stdout, "every action type is denied for today; exiting")
				return nil
			}
		}
	}
	fmt.Fprintf(stdout, "feed walked: %d simulated actions\n", granted)
	return nil
}

func isLoopback(host string) bool {
	return host == "127.0.0.1" || host == "localhost" || host == "::1"
}
