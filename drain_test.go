package observe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/observekit/observe"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// lbBackend is one backend behind the simulated load balancer.
type lbBackend struct {
	name    string
	ready   func(ctx context.Context) bool // the LB's health check
	send    func(ctx context.Context) error
	healthy atomic.Bool
	sent    atomic.Int64
}

type loadResult struct {
	sent, answered int64
	perBackend     map[string]int64
	errs           []string
}

// runThroughLB sends steady traffic (8 workers) through a load balancer
// that polls each backend's health every 100 ms and routes round-robin to
// the healthy ones, calls shutdown once backends[0] has served 30, and keeps sending until
// shutdown has returned and a little after. Every request is counted: sent,
// and answered with success.
func runThroughLB(t *testing.T, backends []*lbBackend, shutdown func()) loadResult {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, b := range backends {
		b.healthy.Store(b.ready(ctx))
		wg.Add(1)
		go func() { // the LB's health poller
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
					b.healthy.Store(b.ready(pctx))
					pcancel()
				}
			}
		}()
	}
	var (
		next, sent, answered atomic.Int64
		mu                   sync.Mutex
		errs                 []string
	)
	pick := func() *lbBackend {
		for range len(backends) {
			b := backends[int(next.Add(1))%len(backends)]
			if b.healthy.Load() {
				return b
			}
		}
		return nil
	}
	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	for range 8 {
		load.Add(1)
		go func() {
			defer load.Done()
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				b := pick()
				if b == nil {
					time.Sleep(time.Millisecond)
					continue
				}
				sent.Add(1)
				b.sent.Add(1)
				rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := b.send(rctx)
				rcancel()
				if err == nil {
					answered.Add(1)
				} else {
					mu.Lock()
					if len(errs) < 5 {
						errs = append(errs, b.name+": "+err.Error())
					}
					mu.Unlock()
				}
			}
		}()
	}
	// Steady traffic first: the backend to be shut down has served some.
	for deadline := time.Now().Add(10 * time.Second); backends[0].sent.Load() < 30 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	shutdown()
	time.Sleep(200 * time.Millisecond)
	close(stopLoad)
	load.Wait()
	cancel()
	wg.Wait()
	res := loadResult{sent: sent.Load(), answered: answered.Load(), perBackend: map[string]int64{}, errs: errs}
	for _, b := range backends {
		res.perBackend[b.name] = b.sent.Load()
	}
	return res
}

// readyzProbe is the LB's check of an observe backend: its /readyz.
func readyzProbe(client *http.Client, adminAddr string) func(context.Context) bool {
	return func(ctx context.Context) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+"/readyz", nil)
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

func alwaysReady(context.Context) bool { return true }

func okHandler(w http.ResponseWriter, r *http.Request) {
	time.Sleep(2 * time.Millisecond)
	_, _ = io.WriteString(w, "ok")
}

func serveHTTP(t *testing.T, h http.Handler) (*http.Server, string, chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	return srv, ln.Addr().String(), done
}

func httpSender(client *http.Client, addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/work", nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
}

// Zero lost requests over HTTP: a backend shut down during load, behind a
// load balancer polling /readyz every 100ms, loses nothing with a drain
// delay; without one the same setup loses requests.
func TestZeroLossDrainHTTP(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{{"drain delay 1s", time.Second}, {"no drain delay", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			obs, _ := initObs(t, observe.WithDrainDelay(tc.delay))
			a, aAddr, aDone := serveHTTP(t, http.HandlerFunc(okHandler))
			obs.AddServer(a)
			b, bAddr, bDone := serveHTTP(t, http.HandlerFunc(okHandler))
			client := newClient(t)
			probes := newClient(t)
			backends := []*lbBackend{
				{name: "a", ready: readyzProbe(probes, obs.AdminAddr()), send: httpSender(client, aAddr)},
				{name: "b", ready: alwaysReady, send: httpSender(client, bAddr)},
			}
			var shutErr error
			res := runThroughLB(t, backends, func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				shutErr = obs.Shutdown(ctx)
			})
			_ = b.Close()
			if err := <-aDone; !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("backend a Serve: %v", err)
			}
			<-bDone
			checkLoss(t, tc.delay > 0, res, shutErr)
		})
	}
}

func checkLoss(t *testing.T, wantZero bool, res loadResult, shutErr error) {
	t.Helper()
	lost := res.sent - res.answered
	t.Logf("sent %d, answered 2xx/OK %d, lost %d; per backend %v; first errors %q", res.sent, res.answered, lost, res.perBackend, res.errs)
	if res.perBackend["a"] < 30 || res.perBackend["b"] < 30 {
		t.Fatalf("too little traffic to judge: %v", res.perBackend)
	}
	switch {
	case wantZero && lost != 0:
		t.Errorf("lost %d of %d requests with a drain delay", lost, res.sent)
	case !wantZero && lost == 0:
		t.Errorf("no request lost without a drain delay: the test cannot tell drained from not")
	}
	if wantZero && shutErr != nil {
		t.Errorf("Shutdown: %v", shutErr)
	}
}

// Zero lost RPCs over gRPC, the same way: GracefulStop after the drain delay.
func TestZeroLossDrainGRPC(t *testing.T) {
	serve := func(t *testing.T, register func(*grpc.Server)) (*grpc.Server, string, chan error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(s, &emptyService{delay: 2 * time.Millisecond})
		register(s) // before Serve, as grpc requires
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		return s, ln.Addr().String(), done
	}
	sender := func(t *testing.T, addr string) func(context.Context) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		c := testgrpc.NewTestServiceClient(conn)
		return func(ctx context.Context) error {
			_, err := c.EmptyCall(ctx, &testgrpc.Empty{})
			return err
		}
	}
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{{"drain delay 1s", time.Second}, {"no drain delay", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			obs, _ := initObs(t, observe.WithDrainDelay(tc.delay))
			a, aAddr, aDone := serve(t, func(s *grpc.Server) { obs.RegisterGRPCHealth(s) })
			obs.AddGRPCServer(a)
			b, bAddr, bDone := serve(t, func(*grpc.Server) {})
			probes := newClient(t)
			backends := []*lbBackend{
				{name: "a", ready: readyzProbe(probes, obs.AdminAddr()), send: sender(t, aAddr)},
				{name: "b", ready: alwaysReady, send: sender(t, bAddr)},
			}
			var shutErr error
			res := runThroughLB(t, backends, func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				shutErr = obs.Shutdown(ctx)
			})
			b.Stop()
			if err := <-aDone; err != nil {
				t.Errorf("backend a Serve: %v", err)
			}
			<-bDone
			checkLoss(t, tc.delay > 0, res, shutErr)
		})
	}
}

// A drain that cannot finish in time: the drain delay is shortened to half
// the time left, a request and an RPC that never end are cut at the
// deadline (Close, Stop), Shutdown returns by its deadline, and what was
// cut short is logged and in the error. Nothing is left running after.
func TestShutdownCutShort(t *testing.T) {
	cleanEnv(t)
	ignore := goleak.IgnoreCurrent()
	logs := &syncBuffer{}
	obs, err := observe.Init(context.Background(), observe.WithServiceName("svc"), observe.WithLogWriter(logs),
		observe.WithAccessLog(false), observe.WithDrainDelay(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	hs, hAddr, hDone := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release // ignores its context, as a stuck handler does
	}))
	obs.AddServer(hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, &stuckService{entered: entered, release: release})
	obs.RegisterGRPCHealth(gs)
	obs.AddGRPCServer(gs)
	gDone := make(chan error, 1)
	go func() { gDone <- gs.Serve(ln) }()

	client := newClient(t)
	go func() {
		if resp, err := client.Get("http://" + hAddr + "/stuck"); err == nil {
			resp.Body.Close()
		}
	}()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	rpcDone := make(chan error, 1)
	go func() {
		_, err := testgrpc.NewTestServiceClient(conn).EmptyCall(context.Background(), &testgrpc.Empty{})
		rpcDone <- err
	}()
	<-entered
	<-entered

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	begin := time.Now()
	err = obs.Shutdown(ctx)
	took := time.Since(begin)
	close(release)
	if took > 2200*time.Millisecond {
		t.Errorf("Shutdown took %v with a 2s deadline", took)
	}
	if err == nil || !strings.Contains(err.Error(), "http server") || !strings.Contains(err.Error(), "grpc server") {
		t.Errorf("Shutdown error %v; want the HTTP and gRPC servers cut short", err)
	}
	if !strings.Contains(logs.String(), `"shutdown cut short"`) || !strings.Contains(logs.String(), `"servers_forced_closed":2`) ||
		!strings.Contains(logs.String(), `"drain_delay_shortened":"5s to `) {
		t.Errorf("cut-short log line missing or incomplete:\n%s", logs.String())
	}
	if err := <-rpcDone; err == nil {
		t.Error("the stuck RPC succeeded; Stop should have ended it")
	}
	<-hDone
	<-gDone
	conn.Close()
	client.CloseIdleConnections()
	if err := goleak.Find(ignore, goleak.IgnoreTopFunction("internal/poll.runtime_pollWait")); err != nil {
		time.Sleep(500 * time.Millisecond) // handler goroutines end once released
		if err := goleak.Find(ignore, goleak.IgnoreTopFunction("internal/poll.runtime_pollWait")); err != nil {
			t.Errorf("goroutines left after Shutdown: %v", err)
		}
	}
}

type stuckService struct {
	testgrpc.UnimplementedTestServiceServer
	entered chan struct{}
	release chan struct{}
}

func (s *stuckService) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	s.entered <- struct{}{}
	<-s.release
	return &testgrpc.Empty{}, nil
}
