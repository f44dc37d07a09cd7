package middleware

import (
	"io"
	"net/http"
	"sync/atomic"
)

// RouteFrom returns a middleware for a router's own middleware chain (chi's
// r.Use, gorilla/mux's r.Use, an OpenAPI router's) that reports the route
// template the router matched, through SetRoute, to the enclosing HTTP
// middleware. route is asked after the router has routed the request, also
// when the handler panics:
//
//	r := chi.NewRouter()
//	r.Use(middleware.RouteFrom(func(r *http.Request) string {
//		return chi.RouteContext(r.Context()).RoutePattern()
//	}))
//	http.ListenAndServe(addr, middleware.HTTP(r))
//
//	r := mux.NewRouter()
//	r.Use(middleware.RouteFrom(func(r *http.Request) string {
//		t, _ := mux.CurrentRoute(r).GetPathTemplate()
//		return t
//	}))
//
// route must return a template ("/users/{id}"), never the raw path; "" means
// nothing matched.
func RouteFrom(route func(*http.Request) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() { SetRoute(r.Context(), route(r)) }()
			next.ServeHTTP(w, r)
		})
	}
}

// RoutePattern wraps a ServeMux (or anything that sets Request.Pattern the
// way ServeMux does) so its pattern reaches the HTTP middleware even when a
// middleware in between hands the mux a copy of the request
// (r.WithContext), on which the mux then sets Pattern:
//
//	middleware.HTTP(auth(middleware.RoutePattern(mux)))
//
// Without it the route of such requests would be "" (never the raw path).
func RoutePattern(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if r.Pattern != "" {
				SetRoute(r.Context(), patternRoute(r, r.Pattern))
			}
		}()
		mux.ServeHTTP(w, r)
	})
}

// patternRoute is the route template of the ServeMux pattern matched for
// r, or "" when pattern is not a template. ServeMux reports one raw path as
// a pattern: a CONNECT request for "/a/b" that only "/a/{x}/" matches is
// redirected to "/a/b/", and that path is what Request.Pattern and
// ServeMux.Handler give. It must not become a label or a span name.
func patternRoute(r *http.Request, pattern string) string {
	if r.Method == http.MethodConnect && r.URL != nil {
		if path := r.URL.Path; len(pattern) == len(path)+1 && pattern[len(path)] == '/' && pattern[:len(path)] == path {
			return ""
		}
	}
	return routeFromPattern(pattern)
}

// countingBody counts the bytes a handler reads from a request body of
// unknown length (chunked, HTTP/2 without Content-Length), for
// http_server_request_body_size_bytes. Nothing is buffered.
type countingBody struct {
	rc io.ReadCloser
	n  atomic.Int64 // a handler may read from another goroutine
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// requestBodySize is the request body size to record: Content-Length when
// the client sent one, else what the handler read (body is nil when the
// request has no body).
func requestBodySize(r *http.Request, body *countingBody) int64 {
	if body != nil {
		return body.n.Load()
	}
	if r.ContentLength < 0 {
		return -1
	}
	return r.ContentLength
}

// countBody wraps r2's body when its length is unknown, so its size can be
// recorded; it returns nil when there is nothing to count.
func countBody(r, r2 *http.Request) *countingBody {
	if r.ContentLength >= 0 || r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	b := &countingBody{rc: r.Body}
	r2.Body = b
	return b
}
