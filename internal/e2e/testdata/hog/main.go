// Command hog is a test helper for the OOM-kill end-to-end test (it lives
// under testdata, so `go test ./...` never builds it on its own). Copied into
// a tenant container's /data and run with `docker exec`, it makes the
// container's main process the OOM killer's first choice (raising
// /proc/1/oom_score_adj needs no privilege) and then allocates memory until
// the container's memory limit is hit, so the kernel kills PID 1 and the
// engine records the container as OOM-killed.
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	if err := os.WriteFile("/proc/1/oom_score_adj", []byte("1000"), 0); err != nil {
		fmt.Fprintln(os.Stderr, "hog: raise oom_score_adj of pid 1:", err)
	}
	var keep [][]byte
	for i := 0; i < 4096; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		keep = append(keep, b)
		time.Sleep(time.Millisecond)
	}
	fmt.Println("hog: allocated", len(keep), "MiB without being killed")
}
