package profiling_test

import (
	"context"
	"runtime/pprof"
	"testing"

	iprofiling "github.com/observekit/observe/internal/profiling"
	"github.com/observekit/observe/profiling"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The public names are the labels observe really puts on a request's
// goroutine, and the attribute its spans carry.
func TestNamesAreTheLabelsObservePuts(t *testing.T) {
	if profiling.ProfileIDAttribute != iprofiling.ProfileIDAttribute {
		t.Errorf("ProfileIDAttribute %q, observe's %q", profiling.ProfileIDAttribute, iprofiling.ProfileIDAttribute)
	}
	sdk := sdktrace.NewTracerProvider()
	defer func() { _ = sdk.Shutdown(context.Background()) }()
	ctx, span := iprofiling.LinkSpans(sdk).Tracer("t").Start(context.Background(), "GET /orders/{id}")
	defer span.End()
	if v, ok := pprof.Label(ctx, profiling.LabelEndpoint); !ok || v != "/orders/{id}" {
		t.Errorf("label %s = %q, %v", profiling.LabelEndpoint, v, ok)
	}
	if v, ok := pprof.Label(ctx, profiling.LabelSpanName); !ok || v != "GET /orders/{id}" {
		t.Errorf("label %s = %q, %v", profiling.LabelSpanName, v, ok)
	}
}
