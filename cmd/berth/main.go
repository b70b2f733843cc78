// Command berth is the Berth control plane, the in-container agent and the
// operator's CLI in one binary.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/berth/berth/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if err != errUsage && !silent(err) {
			fmt.Fprintln(os.Stderr, "berth:", err)
		}
		os.Exit(exitCode(err))
	}
}

const usage = `berth — multi-tenant container-as-a-service

Usage:
  berth serve     run the control plane (API on :8000)
  berth agent     run the agent inside a tenant container (API on :9000)
  berth workload  run a bundled workload (the engagement simulation)
  berth firewall  install, remove or check the host firewall rules
  berth secrets   rotate the master key of the encrypted secrets
  berth version   print the version

Operator CLI (talks to a control plane's API; exit codes: 0 ok, 1 error,
2 usage, 3 auth, 4 not found, 5 unavailable):
` + cli.Usage + `
Run "berth <command> --help" for a command's flags.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "agent":
		return agentCmd(ctx, rest, getenv, stdout, stderr)
	case "workload":
		return workloadCmd(ctx, rest, getenv, stdout, stderr)
	case "login", "users", "containers", "automation", "admin":
		return cli.Run(ctx, args, cli.Env{Getenv: getenv, Stdout: stdout, Stderr: stderr})
	case "firewall":
		return firewallCmd(ctx, rest, getenv, stdout, stderr)
	case "secrets":
		return secretsCmd(ctx, rest, getenv, stdout, stderr)
	case "version", "--version", "-v":
		if len(rest) > 0 && (rest[0] == "--help" || rest[0] == "-h") {
			fmt.Fprintln(stdout, "Usage: berth version\n\nPrint the berth version, commit, platform and Go version.")
			return nil
		}
		return versionCmd(stdout)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "berth: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}
