package observe

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The status APIs' query parsing: any query string and trace ID path is a
// 200, 400 or 404, never a panic; what parses satisfies the bounds.
func FuzzStatusQuery(f *testing.F) {
	for _, s := range []string{
		"", "route=/users/{id}&status=5xx&error=true&min_duration=250ms&limit=10", "limit=0", "limit=1001",
		"status=NOT_FOUND", "status=%zz", "min_duration=-1s", "route=a&route=b", "trace_id=0af7651916cd43dd8448eb211c80319c",
		"trace_id=00000000000000000000000000000000", ";;&&==", "error=1&x=", "min_duration=9223372036854775807ns",
	} {
		f.Add(s, "0af7651916cd43dd8448eb211c80319c")
	}
	f.Add("", "zz")
	f.Add("", "0AF7651916CD43DD8448EB211C80319C")
	o, err := Init(context.Background(), WithAdminAddr("off"), WithLogWriter(io.Discard), WithServiceName("fuzz"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = o.Shutdown(context.Background()) })
	h := o.AdminHandler()
	f.Fuzz(func(t *testing.T, raw, id string) {
		if q, err := url.ParseQuery(raw); err == nil {
			if tf, err := parseTraceQuery(q); err == nil {
				if tf.Limit < 1 || tf.Limit > maxTraceLimit || tf.MinDuration < 0 || len(tf.Route) > maxRouteParam ||
					(tf.Status != "" && !validStatusFilter(tf.Status)) {
					t.Fatalf("%q parsed out of bounds: %+v", raw, tf)
				}
			} else if err.Error() == "" {
				t.Fatal("empty error")
			}
		}
		if tid, err := parseTraceID(id); err == nil && tid.String() != strings.ToLower(id) {
			t.Fatalf("%q parsed as %s", id, tid)
		}
		for _, target := range []string{"/debug/traces?" + raw, "/debug/logs?" + raw, "/debug/red?" + raw, "/debug/traces/" + url.PathEscape(id)} {
			req, err := http.NewRequest("GET", "http://127.0.0.1"+target, nil)
			if err != nil {
				continue
			}
			req.RemoteAddr = "127.0.0.1:1"
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			switch rec.Code {
			case 200, 400, 404, 301, 307, 308:
			default:
				t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
			}
		}
	})
}
