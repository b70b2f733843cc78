package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Nginx is a throwaway nginx load balancer in front of several upstreams.
type Nginx struct {
	Dir  string
	Port int
	cmd  *exec.Cmd
	done chan struct{}
	out  *bytes.Buffer
}

// URL returns the balancer's base URL.
func (n *Nginx) URL() string { return "http://127.0.0.1:" + strconv.Itoa(n.Port) }

// NginxConfig returns a WebSocket-aware load-balancer configuration for
// upstreams (host:port), listening on 127.0.0.1:port, with every path under
// dir. It is what deploy/ documents for operators, minus TLS.
func NginxConfig(dir string, port int, upstreams []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `daemon off;
master_process on;
worker_processes 1;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    upstream berth {
`, dir)
	for _, u := range upstreams {
		fmt.Fprintf(&b, "        server %s max_fails=1 fail_timeout=2s;\n", u)
	}
	fmt.Fprintf(&b, `        keepalive 64;
    }
    server {
        listen 127.0.0.1:%d;
        client_max_body_size 2m;
        location / {
            proxy_pass http://berth;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_buffering off;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
        }
    }
}
`, port)
	return b.String()
}

// StartNginx runs nginx (from PATH or /usr/sbin) in the foreground with a
// generated configuration and waits until it accepts connections.
func StartNginx(upstreams []string) (*Nginx, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			return nil, errors.New("no nginx; apt-get install nginx-light")
		}
		bin = "/usr/sbin/nginx"
	}
	dir, err := os.MkdirTemp("", "berth-nginx-")
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		port, err := FreePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(NginxConfig(dir, port, upstreams)), 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		n := &Nginx{Dir: dir, Port: port, done: make(chan struct{}), out: &bytes.Buffer{}}
		n.cmd = exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
		n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
		if err := n.cmd.Start(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		go func() { _ = n.cmd.Wait(); close(n.done) }()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-n.done:
				deadline = time.Time{}
				continue
			default:
			}
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
			if err == nil {
				c.Close()
				return n, nil
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = n.cmd.Process.Kill()
		<-n.done
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			os.RemoveAll(dir)
			return nil, fmt.Errorf("nginx did not start: %s\n%s", n.out.String(), log)
		}
	}
}

// Stop ends nginx (SIGQUIT is graceful; it is killed after 5 s) and removes
// its directory.
func (n *Nginx) Stop() error {
	_ = n.cmd.Process.Signal(os.Interrupt) // SIGINT: fast shutdown
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
	return os.RemoveAll(n.Dir)
}
