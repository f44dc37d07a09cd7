// Command services starts three services, each its own process with its own
// observe.Init, and one trace crosses all three:
//
//	HTTP gateway (:8080) → HTTP orders service → gRPC inventory service
//
//	go run ./examples/services              # start all three; Ctrl-C stops them
//	go run ./examples/services -traffic     # …and send the gateway requests
//
// Then: curl http://127.0.0.1:8080/orders/42, and follow its trace in each
// service's admin view (addresses printed at start) or, with
// OTEL_EXPORTER_OTLP_ENDPOINT set, in Jaeger (`make demo` does all of it).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	addr := flag.String("addr", "127.0.0.1:8080", "the gateway's address")
	adminPort := flag.Int("admin-port", 9464, "first admin port: the gateway's; orders and inventory take the next two (0: any free ports)")
	traffic := flag.Bool("traffic", false, "send the gateway a request every 200ms")
	duration := flag.Duration("duration", 0, "exit after this long (0: run until interrupted)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	st, err := start(*addr, *adminPort)
	if err != nil {
		log.Fatal(err)
	}
	defer st.stop()

	fmt.Fprintf(os.Stderr, "\nthree services are up:\n")
	for _, s := range st.procs {
		fmt.Fprintf(os.Stderr, "  %-9s %-22s admin http://%s (/metrics, /debug/traces)\n", s.role, s.addr, s.admin)
	}
	fmt.Fprintf(os.Stderr, "\n  try: curl -i %s/orders/42\n\n", st.GatewayURL())
	if *traffic {
		go sendTraffic(ctx, st.GatewayURL())
	}
	<-ctx.Done()
}

// sendTraffic asks the gateway for orders until ctx ends; one in ten is an
// order the inventory does not know (a 404 across all three services).
func sendTraffic(ctx context.Context, gateway string) {
	client := &http.Client{Timeout: 5 * time.Second}
	for i := 0; ctx.Err() == nil; i++ {
		id := fmt.Sprint(i % 50)
		if i%10 == 9 {
			id = "missing"
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gateway+"/orders/"+id, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
