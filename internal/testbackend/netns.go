package testbackend

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

var netnsSeq atomic.Int32

// NetNS is a network namespace the test made itself, linked to the test's
// own namespace by a private veth pair: a real non-loopback client.
type NetNS struct {
	Name   string
	HostIP string // the test process's end of the link: bind servers here
	PeerIP string // the namespace's end: the client's address
}

// Exec runs a command inside the namespace.
func (n *NetNS) Exec(args ...string) ([]byte, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
	return cmd.CombinedOutput()
}

// NewNetNS creates a namespace and a veth pair (10.213.<k>.1 ↔ .2/30), removed
// at cleanup. It needs root and iproute2; without them the test is skipped on
// a laptop and fails in CI.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root (for a network namespace)", "run the test as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		Missing(t, "iproute2", "apt-get install -y iproute2")
	}
	k := int(netnsSeq.Add(1))%200 + os.Getpid()%50
	n := &NetNS{
		Name:   fmt.Sprintf("obs-test-%d-%d", os.Getpid(), k),
		HostIP: fmt.Sprintf("10.213.%d.1", k),
		PeerIP: fmt.Sprintf("10.213.%d.2", k),
	}
	hostIf := fmt.Sprintf("obsh%d", k)
	peerIf := fmt.Sprintf("obsp%d", k)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			Missing(t, "network namespaces", fmt.Sprintf("ip %s: %v: %s", strings.Join(args, " "), err, out))
		}
	}
	_ = exec.Command("ip", "link", "del", hostIf).Run()
	_ = exec.Command("ip", "netns", "del", n.Name).Run()
	run("netns", "add", n.Name)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", hostIf).Run()
		_ = exec.Command("ip", "netns", "del", n.Name).Run()
	})
	run("link", "add", hostIf, "type", "veth", "peer", "name", peerIf)
	run("link", "set", peerIf, "netns", n.Name)
	run("addr", "add", n.HostIP+"/30", "dev", hostIf)
	run("link", "set", hostIf, "up")
	run("netns", "exec", n.Name, "ip", "addr", "add", n.PeerIP+"/30", "dev", peerIf)
	run("netns", "exec", n.Name, "ip", "link", "set", peerIf, "up")
	run("netns", "exec", n.Name, "ip", "link", "set", "lo", "up")
	return n
}
