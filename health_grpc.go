package observe

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// RegisterGRPCHealth registers grpc.health.v1.Health (Check, Watch, List)
// on s, answering from the same state as /readyz: SERVING when ready and
// every critical check passes, NOT_SERVING while starting, draining, after
// SetReady(false) or while a critical check fails. It answers for the whole
// server ("") and for each service registered on s (when s is a
// *grpc.Server, or anything with GetServiceInfo) or on a server given to
// AddGRPCServer; any other name is NOT_FOUND (Watch: SERVICE_UNKNOWN).
// Watch sends every change and ends when Shutdown stops the servers (a
// server stopped by hand with GracefulStop before Shutdown would wait for
// its Watch clients: hand it to AddGRPCServer instead).
func (o *Observer) RegisterGRPCHealth(s grpc.ServiceRegistrar) {
	healthpb.RegisterHealthServer(s, &grpcHealth{o: o, reg: s})
}

type serviceInfoer interface {
	GetServiceInfo() map[string]grpc.ServiceInfo
}

type grpcHealth struct {
	healthpb.UnimplementedHealthServer
	o   *Observer
	reg grpc.ServiceRegistrar
}

// services lists the service names health answers for ("" included),
// read at each call so services registered after health count too.
func (g *grpcHealth) services() map[string]bool {
	names := map[string]bool{"": true}
	add := func(si serviceInfoer) {
		for name := range si.GetServiceInfo() {
			names[name] = true
		}
	}
	if si, ok := g.reg.(serviceInfoer); ok {
		add(si)
	}
	g.o.servers.mu.Lock()
	srvs := append([]*grpc.Server(nil), g.o.servers.grpc...)
	g.o.servers.mu.Unlock()
	for _, s := range srvs {
		add(s)
	}
	return names
}

func (g *grpcHealth) serving(ctx context.Context) healthpb.HealthCheckResponse_ServingStatus {
	if _, ready, _ := g.o.healthStatus(ctx); ready {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}

func (g *grpcHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if !g.services()[req.GetService()] {
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	return &healthpb.HealthCheckResponse{Status: g.serving(ctx)}, nil
}

func (g *grpcHealth) List(ctx context.Context, _ *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	st := g.serving(ctx)
	names := g.services()
	out := &healthpb.HealthListResponse{Statuses: make(map[string]*healthpb.HealthCheckResponse, len(names))}
	for name := range names {
		out.Statuses[name] = &healthpb.HealthCheckResponse{Status: st}
	}
	return out, nil
}

// Watch sends the status now and at every change: of the lifecycle or
// SetReady at once, of check results within the check TTL.
func (g *grpcHealth) Watch(req *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	h := g.o.health
	ctx := stream.Context()
	h.mu.Lock()
	closing := h.closing
	h.mu.Unlock()
	poll := time.NewTicker(h.ttl) // check results change without a broadcast
	defer poll.Stop()
	last := healthpb.HealthCheckResponse_ServingStatus(-1)
	send := func(st healthpb.HealthCheckResponse_ServingStatus) error {
		if st == last {
			return nil
		}
		last = st
		return stream.Send(&healthpb.HealthCheckResponse{Status: st})
	}
	for {
		_, _, changed := h.snapshot()
		st := healthpb.HealthCheckResponse_SERVICE_UNKNOWN
		if g.services()[req.GetService()] {
			st = g.serving(ctx)
		}
		if err := send(st); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-closing:
			if st != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
				_ = send(healthpb.HealthCheckResponse_NOT_SERVING)
			}
			return status.Error(codes.Unavailable, "server is shutting down")
		case <-changed:
		case <-poll.C:
		}
	}
}
