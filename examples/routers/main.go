// Command routers shows observe with third-party routers: chi and
// gorilla/mux report the route template they matched ("/users/{id}") to
// observe's HTTP middleware through middleware.RouteFrom, so metrics and
// span names carry http_route="/chi/users/{id}", never the raw path.
//
// It is a module of its own, so observe does not depend on either router.
//
//	cd examples/routers && go run .                  # serve on 127.0.0.1:8080
//	cd examples/routers && go run . -duration 3s -traffic
//
// Then: curl http://127.0.0.1:9464/metrics | grep http_route
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/gorilla/mux"
	"github.com/observekit/observe"
	"github.com/observekit/observe/middleware"
)

// handler serves a chi router under /chi/ and a gorilla/mux router under
// /mux/, each reporting its matched template through middleware.RouteFrom,
// all inside middleware.HTTP.
func handler() http.Handler {
	cr := chi.NewRouter()
	cr.Use(middleware.RouteFrom(func(r *http.Request) string {
		if rc := chi.RouteContext(r.Context()); rc != nil {
			return rc.RoutePattern()
		}
		return ""
	}))
	cr.Get("/chi/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "chi user %s\n", chi.URLParam(r, "id"))
	})
	cr.Get("/chi/users/{id}/orders/{order}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "chi order %s of %s\n", chi.URLParam(r, "order"), chi.URLParam(r, "id"))
	})

	mr := mux.NewRouter()
	mr.Use(middleware.RouteFrom(func(r *http.Request) string {
		if route := mux.CurrentRoute(r); route != nil {
			t, _ := route.GetPathTemplate()
			return t
		}
		return ""
	}))
	mr.HandleFunc("/mux/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "mux user %s\n", mux.Vars(r)["id"])
	}).Methods(http.MethodGet)

	top := http.NewServeMux()
	top.Handle("/chi/", cr)
	top.Handle("/mux/", mr)
	return middleware.HTTP(top)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to serve on")
	traffic := flag.Bool("traffic", false, "send this service requests")
	duration := flag.Duration("duration", 0, "exit after this long (0: run until interrupted)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	obs, err := observe.Init(ctx, observe.WithServiceName("routers-example"))
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = obs.Shutdown(sctx)
	}()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Print(err)
		}
	}()
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(os.Stderr, "\nrouters example on %s: try %s/chi/users/42 and %s/mux/users/42\n", base, base, base)
	if a := obs.AdminAddr(); a != "" {
		fmt.Fprintf(os.Stderr, "  then: curl http://%s/metrics | grep http_route\n\n", a)
	}
	if *traffic {
		go func() {
			for i := 0; ctx.Err() == nil; i++ {
				for _, p := range []string{"/chi/users/%d", "/chi/users/%d/orders/7", "/mux/users/%d", "/nowhere/%d"} {
					if resp, err := http.Get(base + fmt.Sprintf(p, i)); err == nil {
						resp.Body.Close()
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
}
