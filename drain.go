package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/observekit/observe/internal/envconfig"
	"google.golang.org/grpc"
)

// healthSettings is the health and drain part of config.
type healthSettings struct {
	startupGate   bool
	drainDelay    time.Duration // OBSERVE_DRAIN_DELAY / WithDrainDelay
	drainDelaySet bool
	kubernetes    bool // KUBERNETES_SERVICE_HOST is set
}

// kubernetesDrainDelay is the drain delay when running in Kubernetes and
// nothing says otherwise: long enough for the endpoints controller and
// kube-proxy (or an ingress) to stop sending after readiness fails.
const kubernetesDrainDelay = 5 * time.Second

// DefaultShutdownTimeout is ShutdownOnSignal's deadline when given none:
// inside Kubernetes' default terminationGracePeriodSeconds (30s), with
// room to spare.
const DefaultShutdownTimeout = 25 * time.Second

// WithDrainDelay sets how long Shutdown waits, after readiness turns 503 and
// gRPC health NOT_SERVING, before it stops the servers handed to AddServer
// and AddGRPCServer: the time load balancers take to stop sending. It
// overrides OBSERVE_DRAIN_DELAY (default 0, or 5s when KUBERNETES_SERVICE_HOST
// is set and servers were added).
func WithDrainDelay(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			d = 0
		}
		c.health.drainDelay, c.health.drainDelaySet = d, true
	}
}

func loadHealthEnv(env *envconfig.Env, c *config) {
	c.health.kubernetes = env.Get("KUBERNETES_SERVICE_HOST") != ""
	if env.Duration("OBSERVE_DRAIN_DELAY", `a Go duration from "0" to "10m", such as "5s"`,
		func(d time.Duration) bool { return d >= 0 && d <= 10*time.Minute }, &c.health.drainDelay) {
		c.health.drainDelaySet = true
	}
}

// drainDelay is the delay Shutdown applies: the configured one, else 5s in
// Kubernetes (as the contract says: readiness turns 503 for the endpoints
// controller to notice, whether the servers are ours to stop or the
// caller's, stopped after Shutdown returns), else none.
func (c *config) drainDelay() time.Duration {
	switch {
	case c.health.drainDelaySet:
		return c.health.drainDelay
	case c.health.kubernetes:
		return kubernetesDrainDelay
	}
	return 0
}

// servers are what Shutdown drains.
type servers struct {
	mu   sync.Mutex
	http []*http.Server
	grpc []*grpc.Server
}

// AddServer hands srv to Shutdown, which drains it: readiness 503, the
// drain delay, then srv.Shutdown (srv.Close at the deadline), then the
// telemetry flush. Serve it as usual; Serve returns http.ErrServerClosed.
func (o *Observer) AddServer(srv *http.Server) {
	if srv == nil {
		return
	}
	o.servers.mu.Lock()
	o.servers.http = append(o.servers.http, srv)
	o.servers.mu.Unlock()
}

// AddGRPCServer hands s to Shutdown, which drains it like AddServer's,
// with GracefulStop (Stop at the deadline). gRPC health Watch streams
// registered by RegisterGRPCHealth end first, so they do not hold it.
func (o *Observer) AddGRPCServer(s *grpc.Server) {
	if s == nil {
		return
	}
	o.servers.mu.Lock()
	o.servers.grpc = append(o.servers.grpc, s)
	o.servers.mu.Unlock()
}

// drain is Shutdown's first part: readiness off at once, the drain delay,
// the servers stopped gracefully, all leaving part of ctx's time for the
// telemetry flush that follows. It logs what it had to cut short.
func (o *Observer) drain(ctx context.Context) []error {
	if o.health == nil {
		return nil
	}
	o.health.setState(stateDraining)
	o.servers.mu.Lock()
	httpSrvs := append([]*http.Server(nil), o.servers.http...)
	grpcSrvs := append([]*grpc.Server(nil), o.servers.grpc...)
	o.servers.mu.Unlock()

	var (
		errs []error
		cut  []slog.Attr
	)
	delay := o.cfg.drainDelay()
	if deadline, ok := ctx.Deadline(); ok && delay > 0 {
		// Never more than half the time left: the servers and the flush
		// need the rest.
		if half := time.Until(deadline) / 2; delay > half {
			cut = append(cut, slog.String("drain_delay_shortened", fmt.Sprintf("%v to %v", delay, half.Round(time.Millisecond))))
			delay = max(half, 0)
		}
	}
	if delay > 0 {
		o.health.log.Info("draining: readiness off, waiting for load balancers", slog.String("drain_delay", delay.String()))
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			cut = append(cut, slog.String("drain_delay", "cut short by the shutdown deadline"))
		}
	}
	o.health.closeWatchers()

	if len(httpSrvs)+len(grpcSrvs) > 0 {
		sctx, cancel := serverContext(ctx)
		defer cancel()
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			forced int
		)
		for _, srv := range httpSrvs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := srv.Shutdown(sctx); err != nil {
					_ = srv.Close()
					mu.Lock()
					forced++
					errs = append(errs, fmt.Errorf("observe: shutdown http server %s: %w", srv.Addr, err))
					mu.Unlock()
				}
			}()
		}
		for _, s := range grpcSrvs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				done := make(chan struct{})
				go func() { s.GracefulStop(); close(done) }()
				select {
				case <-done:
				case <-sctx.Done():
					// Stop closes every connection at once; GracefulStop
					// still returns only when the handlers have (a stuck one
					// may never), so wait for it no longer than ctx allows.
					s.Stop()
					select {
					case <-done:
					case <-ctx.Done():
					}
					mu.Lock()
					forced++
					errs = append(errs, fmt.Errorf("observe: shutdown grpc server: graceful stop: %w", sctx.Err()))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if forced > 0 {
			cut = append(cut, slog.Int("servers_forced_closed", forced), slog.Int("servers", len(httpSrvs)+len(grpcSrvs)))
		}
	}
	o.health.setState(stateStopped)
	if len(cut) > 0 {
		o.health.log.Warn("shutdown cut short", attrsAny(cut)...)
	}
	return errs
}

func attrsAny(as []slog.Attr) []any {
	out := make([]any, len(as))
	for i, a := range as {
		out[i] = a
	}
	return out
}

// serverContext is ctx with a deadline that leaves a quarter of the time
// left (at most 2s) for the telemetry flush after the servers.
func serverContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	reserve := min(time.Until(deadline)/4, 2*time.Second)
	return context.WithDeadline(ctx, deadline.Add(-max(reserve, 0)))
}

// ShutdownOnSignal blocks until SIGTERM or SIGINT arrives (or ctx is
// done), then runs Shutdown with timeout as its deadline
// (DefaultShutdownTimeout when timeout <= 0) and returns its error. A
// second signal during Shutdown cuts it short. It is the end of a main:
//
//	obs.AddServer(srv)
//	go srv.ListenAndServe()
//	if err := obs.ShutdownOnSignal(context.Background(), 0); err != nil {
//		log.Print(err)
//	}
func (o *Observer) ShutdownOnSignal(ctx context.Context, timeout time.Duration) error {
	return o.shutdownOnSignal(ctx, timeout, nil)
}

// shutdownOnSignal is ShutdownOnSignal; listening, if not nil, is called
// once the signals are caught (tests send theirs after it).
func (o *Observer) shutdownOnSignal(ctx context.Context, timeout time.Duration, listening func()) error {
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	if listening != nil {
		listening()
	}
	var why slog.Attr
	select {
	case s := <-sigs:
		why = slog.String("signal", s.String())
	case <-ctx.Done():
		why = slog.String("cause", "context done")
	}
	if o.health != nil {
		o.health.log.Info("shutting down", why, slog.String("timeout", timeout.String()))
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a second signal cuts Shutdown short
		defer wg.Done()
		select {
		case <-sigs:
			cancel()
		case <-done:
		}
	}()
	err := o.Shutdown(sctx)
	close(done)
	wg.Wait()
	if errors.Is(err, context.Canceled) && sctx.Err() != nil {
		return fmt.Errorf("observe: shutdown cut short by a second signal: %w", err)
	}
	return err
}
