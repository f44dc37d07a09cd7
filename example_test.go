package observe_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/observekit/observe"
	"github.com/observekit/observe/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// Init once at startup, Shutdown on the way out; wrap the handler.
func ExampleInit() {
	ctx := context.Background()
	obs, err := observe.Init(ctx,
		observe.WithServiceName("checkout"),
		observe.WithServiceVersion("1.4.2"),
		observe.WithAdminAddr("off"), // the example serves no admin port
		observe.WithLogWriter(io.Discard),
	)
	if err != nil {
		log.Fatal(err) // invalid configuration only
	}
	defer obs.Shutdown(ctx)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		slog.InfoContext(r.Context(), "loading order", "order.id", r.PathValue("id"))
		fmt.Fprintln(w, "ok")
	})
	h := middleware.HTTP(mux)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/orders/7", nil))
	fmt.Println(obs.ServiceName(), rec.Code)
	// Output: checkout 200
}

// Mount the admin endpoints on a server of your own.
func ExampleObserver_AdminHandler() {
	obs, err := observe.Init(context.Background(), observe.WithAdminAddr("off"), observe.WithLogWriter(io.Discard))
	if err != nil {
		log.Fatal(err)
	}
	defer obs.Shutdown(context.Background())

	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", obs.AdminHandler()))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/admin/livez", nil))
	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output: 200 {"status":"ok"}
}

// A metric of your own, served on the admin /metrics next to observe's.
func ExampleObserver_Registerer() {
	obs, err := observe.Init(context.Background(), observe.WithAdminAddr("off"), observe.WithLogWriter(io.Discard))
	if err != nil {
		log.Fatal(err)
	}
	defer obs.Shutdown(context.Background())

	orders := prometheus.NewCounter(prometheus.CounterOpts{Name: "shop_orders_total", Help: "Orders placed."})
	obs.Registerer().MustRegister(orders)
	orders.Inc()

	rec := httptest.NewRecorder()
	obs.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "shop_orders_total ") {
			fmt.Println(line)
		}
	}
	// Output: shop_orders_total 1
}
