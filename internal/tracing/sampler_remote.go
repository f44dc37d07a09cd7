package tracing

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/samplers/jaegerremote"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// defaultJaegerRemoteEndpoint is where jaeger_remote asks for sampling
// strategies when OTEL_TRACES_SAMPLER_ARG names no endpoint: the HTTP
// sampling endpoint of a Jaeger agent, collector or Jaeger v2
// (remote_sampling extension).
const defaultJaegerRemoteEndpoint = "http://localhost:5778/sampling"

// jaegerRemote is the jaeger_remote sampler as NewSampler makes it: the
// parsed argument, and, once New has started it (it needs the service name
// and a goroutine that Shutdown stops), the polling sampler. Until then, or
// while no strategy has been fetched, the initial sampling rate decides.
type jaegerRemote struct {
	endpoint string
	interval time.Duration
	initial  sdktrace.Sampler
	started  atomic.Pointer[jaegerremote.Sampler]
}

// parseJaegerRemoteArg reads the spec's
// "endpoint=URL,pollingIntervalMs=N,initialSamplingRate=R" (each optional).
func parseJaegerRemoteArg(arg string) (*jaegerRemote, error) {
	j := &jaegerRemote{endpoint: defaultJaegerRemoteEndpoint, interval: time.Minute, initial: sdktrace.TraceIDRatioBased(0.001)}
	for _, part := range strings.Split(arg, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok {
			return nil, fmt.Errorf("sampler argument %q is not key=value", part)
		}
		switch k {
		case "endpoint":
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("jaeger_remote endpoint %q is not an http(s) URL", v)
			}
			j.endpoint = v
		case "pollingIntervalMs":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("jaeger_remote pollingIntervalMs %q is not a positive integer", v)
			}
			j.interval = time.Duration(n) * time.Millisecond
		case "initialSamplingRate":
			r, err := strconv.ParseFloat(v, 64)
			if err != nil || r < 0 || r > 1 {
				return nil, fmt.Errorf("jaeger_remote initialSamplingRate %q is not a ratio between 0 and 1", v)
			}
			j.initial = sdktrace.TraceIDRatioBased(r)
		default:
			return nil, fmt.Errorf("unknown jaeger_remote argument %q (accepted: endpoint, pollingIntervalMs, initialSamplingRate)", k)
		}
	}
	return j, nil
}

// ShouldSample implements sdktrace.Sampler.
func (j *jaegerRemote) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if s := j.started.Load(); s != nil {
		return s.ShouldSample(p)
	}
	return j.initial.ShouldSample(p)
}

// Description implements sdktrace.Sampler.
func (j *jaegerRemote) Description() string {
	return "JaegerRemoteSampler{" + j.endpoint + "}"
}

// start begins polling for the service's strategies; the returned func
// stops it by ctx's deadline.
func (j *jaegerRemote) start(res *resource.Resource) func(context.Context) error {
	service := "unknown_service:go"
	if res != nil {
		if v, ok := res.Set().Value(semconv.ServiceNameKey); ok && v.AsString() != "" {
			service = v.AsString()
		}
	}
	s := jaegerremote.New(service,
		jaegerremote.WithSamplingServerURL(j.endpoint),
		jaegerremote.WithSamplingRefreshInterval(j.interval),
		jaegerremote.WithInitialSampler(j.initial),
	)
	j.started.Store(s)
	return func(ctx context.Context) error {
		done := make(chan struct{})
		go func() { s.Close(); close(done) }()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("jaeger_remote sampler: %w", ctx.Err())
		}
	}
}
