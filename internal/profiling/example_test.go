package profiling_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"runtime/pprof"
	"time"

	"github.com/observekit/observe/internal/profiling"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// observe.Init does this when PYROSCOPE_SERVER_ADDRESS is set.
func ExampleStart() {
	p, err := profiling.Start(profiling.Config{
		ServerAddress:        "http://pyroscope:4040",
		ApplicationName:      "checkout",
		Tags:                 map[string]string{"service_version": "1.4.2", "deployment_environment": "prod"},
		MutexProfileFraction: profiling.DefaultMutexProfileFraction,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Stop(ctx) // pushes the last profiles
	}()

	// A CPU profile endpoint that works while profiles are pushed.
	http.Handle("/debug/pprof/profile", profiling.CPUProfileHandler())
}

func ExampleLinkSpans() {
	sdk := sdktrace.NewTracerProvider()
	defer func() { _ = sdk.Shutdown(context.Background()) }()
	tracer := profiling.LinkSpans(sdk).Tracer("checkout")

	ctx, span := tracer.Start(context.Background(), "GET /orders/{id}")
	endpoint, _ := pprof.Label(ctx, profiling.LabelEndpoint)
	name, _ := pprof.Label(ctx, profiling.LabelSpanName)
	fmt.Println(endpoint, "|", name)
	span.End() // the goroutine's labels are those of the context again

	// Output: /orders/{id} | GET /orders/{id}
}
