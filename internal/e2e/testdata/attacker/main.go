// Command attacker runs one hostile action from inside a tenant container
// and prints the outcome as one JSON object on stdout:
//
//	{"attack":"connect","target":"10.213.0.2:9000","ok":false,"err":"i/o timeout"}
//
// "ok" is whether the action succeeded (for an attack, success is a
// failure of Berth's isolation). The e2e tests copy it into a tenant's /data
// and run it with docker exec, which inherits the container's user,
// capabilities, seccomp profile, no-new-privileges, namespaces and cgroups.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type result struct {
	Attack string `json:"attack"`
	Target string `json:"target,omitempty"`
	OK     bool   `json:"ok"`
	Err    string `json:"err,omitempty"`
	N      int    `json:"n,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: attacker <attack> [args]")
		os.Exit(2)
	}
	r := run(os.Args[1], os.Args[2:])
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func arg(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

func run(attack string, args []string) result {
	r := result{Attack: attack, Target: arg(args, 0)}
	switch attack {
	case "connect": // connect host:port
		c, err := net.DialTimeout("tcp", r.Target, 2*time.Second)
		if err == nil {
			c.Close()
		}
		r.OK, r.Err = err == nil, errText(err)
	case "resolve": // resolve name
		addrs, err := net.LookupHost(r.Target)
		r.OK, r.Err = err == nil && len(addrs) > 0, errText(err)
		r.N = len(addrs)
	case "write": // write path
		err := os.WriteFile(r.Target, []byte("x"), 0o644)
		r.OK, r.Err = err == nil, errText(err)
	case "mount":
		err := syscall.Mount("tmpfs", r.Target, "tmpfs", 0, "")
		r.OK, r.Err = err == nil, errText(err)
	case "chroot":
		err := syscall.Chroot(r.Target)
		r.OK, r.Err = err == nil, errText(err)
	case "setuid":
		// Raw syscall: Go's syscall.Setuid affects all threads; either way
		// the kernel must refuse without CAP_SETUID.
		_, _, errno := syscall.RawSyscall(syscall.SYS_SETUID, 0, 0, 0)
		r.OK = errno == 0
		if errno != 0 {
			r.Err = errno.Error()
		}
	case "rawsocket":
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP)
		if err == nil {
			syscall.Close(fd)
		}
		r.OK, r.Err = err == nil, errText(err)
	case "packetsocket":
		fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, 0x0300)
		if err == nil {
			syscall.Close(fd)
		}
		r.OK, r.Err = err == nil, errText(err)
	case "forkbomb": // forkbomb N: start up to N sleeping children
		n, _ := strconv.Atoi(arg(args, 0))
		var procs []*os.Process
		var err error
		for i := 0; i < n; i++ {
			cmd := exec.Command("/proc/self/exe", "sleep")
			if err = cmd.Start(); err != nil {
				break
			}
			procs = append(procs, cmd.Process)
		}
		r.N, r.OK, r.Err = len(procs), err == nil, errText(err)
		for _, p := range procs {
			_ = p.Kill()
			_, _ = p.Wait()
		}
	case "procstatus": // the kernel's view of this process's confinement
		b, err := os.ReadFile("/proc/self/status")
		r.OK, r.Err = err == nil, errText(err)
		for _, line := range strings.Split(string(b), "\n") {
			for _, k := range []string{"Uid:", "CapEff:", "CapBnd:", "NoNewPrivs:", "Seccomp:"} {
				if strings.HasPrefix(line, k) {
					r.Target += strings.Join(strings.Fields(line), " ") + "; "
				}
			}
		}
	case "sleep":
		time.Sleep(60 * time.Second)
	case "memhog": // memhog MiB: allocate and touch until done or killed
		n, _ := strconv.Atoi(arg(args, 0))
		var keep [][]byte
		for i := 0; i < n; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
		}
		r.N, r.OK = len(keep), true
	default:
		r.Err = "unknown attack"
	}
	return r
}
