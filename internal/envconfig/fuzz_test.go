package envconfig

import (
	"regexp"
	"strings"
	"testing"
)

// headerErrors matches every message ParseHeaders may return once the
// quoted header key is taken out: fixed texts, so none carries a value.
var headerErrors = regexp.MustCompile(`^(an entry is not key=value|value of header  is not percent-encoded correctly)$`)

// FuzzParseHeaders: OTEL_EXPORTER_OTLP_HEADERS never panics the
// parser; what it accepts is a valid header set; its errors never carry a
// value (they are credentials).
func FuzzParseHeaders(f *testing.F) {
	for _, s := range []string{
		"Authorization=Bearer%20abc", "a=b,c=d", " a = b , , c=d ", "api-key=x%2Cy", "k=",
		"novalue", "=v", "a b=c", "k=%zz", "k=v%0d%0aInjected: 1", "x:y=z", "k=v=w", ",,,", "k=\xff\xfe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHeaders(s)
		if err != nil {
			msg := err.Error()
			// Take the quoted key out (%q of the key), then the message is
			// one of the fixed ones.
			if i := strings.Index(msg, `"`); i >= 0 {
				if j := strings.LastIndex(msg, `"`); j > i {
					msg = msg[:i] + msg[j+1:]
				}
			}
			if !headerErrors.MatchString(msg) {
				t.Fatalf("error %q is not one of the fixed messages (it may carry a value)", err)
			}
			return
		}
		for k, v := range h {
			if k == "" || strings.ContainsAny(k, " \t\r\n:") || k != strings.TrimSpace(k) {
				t.Fatalf("accepted header name %q", k)
			}
			if strings.ContainsAny(v, "\r\n") {
				t.Fatalf("accepted header value %q (header injection)", v)
			}
		}
	})
}
