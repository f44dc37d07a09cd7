package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// roleEnv tells a re-executed copy of this program which service to be.
const roleEnv = "EXAMPLE_SERVICES_ROLE"

// proc is one service process.
type proc struct {
	role, addr, admin string
	cmd               *exec.Cmd
	stdin             io.WriteCloser
	done              chan struct{}
}

// stack is the three services, started in dependency order.
type stack struct{ procs []*proc }

// GatewayURL is where requests enter.
func (s *stack) GatewayURL() string { return "http://" + s.procs[len(s.procs)-1].addr }

// start runs inventory, then orders, then the gateway (on gatewayAddr),
// each a copy of this executable, and waits until each serves. Admin
// listeners take adminPort, +1, +2 (any free port when 0).
func start(gatewayAddr string, adminPort int) (*stack, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	admin := func(i int) string {
		if adminPort == 0 {
			return "127.0.0.1:0"
		}
		return fmt.Sprintf("127.0.0.1:%d", adminPort+i)
	}
	st := &stack{}
	roles := []struct {
		role, addr string
		env        func() []string
	}{
		{"inventory", "127.0.0.1:0", func() []string { return nil }},
		{"orders", "127.0.0.1:0", func() []string { return []string{"INVENTORY_ADDR=" + st.procs[0].addr} }},
		{"gateway", gatewayAddr, func() []string { return []string{"ORDERS_URL=http://" + st.procs[1].addr} }},
	}
	for i, r := range roles {
		env := append(os.Environ(), r.env()...)
		env = append(env, roleEnv+"="+r.role, "LISTEN_ADDR="+r.addr, "OTEL_SERVICE_NAME="+r.role)
		// Three admin listeners, one each: the gateway gets the first port.
		env = append(env, "OBSERVE_ADMIN_ADDR="+admin(2-i))
		p, err := startProc(exe, r.role, env)
		if err != nil {
			st.stop()
			return nil, err
		}
		st.procs = append(st.procs, p)
	}
	return st, nil
}

// startProc starts one service and reads its "READY <addr> <admin>" line.
func startProc(exe, role string, env []string) (*proc, error) {
	cmd := exec.Command(exe)
	cmd.Env = env
	cmd.Stderr = os.Stderr // its JSON log lines
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{role: role, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- line
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	select {
	case line := <-ready:
		f := strings.Fields(line)
		p.addr, p.admin = f[0], f[1]
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready", role)
	case <-time.After(30 * time.Second):
		p.kill()
		return nil, fmt.Errorf("%s not ready after 30s", role)
	}
}

// stop shuts the services down in reverse order: closing a service's stdin
// asks it to drain and flush its telemetry; one still running after 10s is
// killed.
func (s *stack) stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.kill()
		}
	}
	s.procs = nil
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}
