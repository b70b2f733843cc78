package main

import (
	"context"
	"fmt"
	"io"

	"github.com/berth/berth/internal/agent"
	"github.com/berth/berth/internal/demo"
)

func agentCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return agent.Command(ctx, args, getenv, stdout, stderr)
}

const workloadUsage = `Usage: berth workload <name> [flags]

Bundled workloads, run by the agent as workflows:
  engagement   a simulation of social engagement (like, comment, follow) over an
               offline feed of fictional accounts; it contacts no real service
`

func workloadCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" {
		fmt.Fprint(stdout, workloadUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "engagement":
		return demo.Engagement(ctx, args[1:], getenv, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "berth workload: unknown workload %q\n\n%s", args[0], workloadUsage)
		return errUsage
	}
}
