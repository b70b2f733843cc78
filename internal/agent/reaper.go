package agent

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
)

// exitStatus is what waiting for a child produced.
type exitStatus struct {
	ws  syscall.WaitStatus
	err error
}

// Child waiting.
//
// Normally each workflow process is waited for by its own goroutine with
// wait4(pid). When the agent is PID 1 (or a subreaper) it must also reap
// orphans re-parented to it, and a wait4(-1) loop would steal the workflow's
// status from a per-pid waiter. So in reaper mode a single goroutine owns all
// waiting: on SIGCHLD it calls wait4(-1, WNOHANG) until nothing is left and
// hands the status of a registered pid to its run; other pids are discarded.
// Starting a child holds the same lock as the reaper, so a child that exits
// at once cannot be reaped before it is registered.
//
// The reaper is process-wide by nature (there is one set of children), so
// it is a package-level singleton started on first use in reaper mode; once
// it runs, every child the package starts is waited for through it. Nothing
// else in the process may wait for children while it runs.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan exitStatus
}

var (
	reaperOnce sync.Once
	theReaper  atomic.Pointer[reaper]
)

func startReaper() *reaper {
	reaperOnce.Do(func() {
		r := &reaper{waiters: map[int]chan exitStatus{}}
		sigs := make(chan os.Signal, 16)
		signal.Notify(sigs, syscall.SIGCHLD)
		go func() { // lives as long as the process: it is the process's reaper
			for range sigs {
				r.reap()
			}
		}()
		theReaper.Store(r)
	})
	return theReaper.Load()
}

func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if ch, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			ch <- exitStatus{ws: ws}
		}
	}
}

// startChild starts cmd and returns a channel that receives its exit status
// exactly once. It never calls cmd.Wait; the caller closes any pipes.
func startChild(cmd *exec.Cmd, reap bool) (<-chan exitStatus, error) {
	ch := make(chan exitStatus, 1)
	r := theReaper.Load()
	if reap {
		r = startReaper()
	}
	if r != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		r.waiters[cmd.Process.Pid] = ch
		// A SIGCHLD delivered before registration would have found nothing
		// to hand over; reap again once the lock is released.
		go r.reap()
		return ch, nil
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	go func() { // exits when the child does
		var ws syscall.WaitStatus
		for {
			_, err := syscall.Wait4(pid, &ws, 0, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			ch <- exitStatus{ws: ws, err: err}
			return
		}
	}()
	return ch, nil
}
