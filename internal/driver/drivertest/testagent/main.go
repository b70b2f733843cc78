// Command testagent stands in for the berth agent in driver tests: a tiny
// static HTTP server on :9000 that answers GET /health with 200.
//
// On start it increments a counter in $BERTH_AGENT_DATA/boots (default
// /data) and prints "testagent listening boots=N", so tests can see through
// the logs that the data volume is writable and survives re-creation.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testagent:", err)
		os.Exit(1)
	}
}

func run() error {
	// As PID 1 the kernel ignores SIGTERM unless we handle it.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	dir := os.Getenv("BERTH_AGENT_DATA")
	if dir == "" {
		dir = "/data"
	}
	boots, err := bump(filepath.Join(dir, "boots"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testagent: data volume:", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"ok","boots":%d}`+"\n", boots)
	})
	srv := &http.Server{Addr: ":9000", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Printf("testagent listening boots=%d\n", boots)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// bump increments the counter in path and returns the new value.
func bump(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return 0, err
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	n++
	return n, os.WriteFile(path, []byte(strconv.Itoa(n)+"\n"), 0o644)
}
