package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// A Jaeger sampling endpoint answering every service with samplingRate.
type strategyServer struct {
	mu       sync.Mutex
	services []string
	rate     string
}

func (s *strategyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.services = append(s.services, r.URL.Query().Get("service"))
	rate := s.rate
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"strategyType":"PROBABILISTIC","probabilisticSampling":{"samplingRate":` + rate + `}}`))
}

func TestJaegerRemoteSampler(t *testing.T) {
	ss := &strategyServer{rate: "1"}
	srv := httptest.NewServer(ss)
	defer srv.Close()
	for _, name := range []string{"jaeger_remote", "parentbased_jaeger_remote"} {
		if !IsSamplerName(name) {
			t.Fatalf("%s not accepted", name)
		}
		s, err := NewSampler(name, "endpoint="+srv.URL+"/sampling, pollingIntervalMs=20, initialSamplingRate=0")
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(context.Background(), Config{
			Sampler:  s,
			Resource: resource.NewSchemaless(semconv.ServiceName("checkout")),
		})
		if err != nil {
			t.Fatal(err)
		}
		// Initially nothing is sampled (initialSamplingRate=0); once the
		// strategy (rate 1) is fetched, everything is.
		waitFor(t, func() bool {
			_, sp := p.Tracer().Start(context.Background(), "op")
			defer sp.End()
			return sp.SpanContext().IsSampled()
		})
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		ss.mu.Lock()
		if len(ss.services) == 0 || ss.services[0] != "checkout" {
			t.Errorf("strategy requests for %v", ss.services)
		}
		ss.services = nil
		ss.mu.Unlock()
	}
	// Polling stopped with Shutdown (goleak in TestMain checks the rest).
	ss.mu.Lock()
	n := len(ss.services)
	ss.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.services) != n {
		t.Error("the sampler kept polling after Shutdown")
	}
}

func TestJaegerRemoteSamplerArgErrors(t *testing.T) {
	for _, arg := range []string{"endpoint=ftp://x", "pollingIntervalMs=0", "initialSamplingRate=2", "color=blue", "endpoint"} {
		if _, err := NewSampler("jaeger_remote", arg); err == nil {
			t.Errorf("arg %q accepted", arg)
		}
	}
	if got := SamplerArgAccepted("jaeger_remote"); !strings.Contains(got, "endpoint=") {
		t.Errorf("help %q", got)
	}
	if _, err := NewSampler("xray", ""); err == nil {
		t.Error("xray accepted though not supported")
	}
}
