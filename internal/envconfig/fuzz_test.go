package envconfig

import (
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// headerErrors matches every message parseHeaders may return once the
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
		h, err := parseHeaders(s)
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

// FuzzEnv: every typed reader, given any value, never panics; what it
// accepts is well formed; what it refuses is one *Error naming the variable,
// which never carries the password of a URL or a header value.
func FuzzEnv(f *testing.F) {
	for _, s := range []string{
		"", " ", "true", "FALSE", "1", "maybe", "on", "Off", "250", "0", "-5", "1e3", "9999999999999999999",
		"5s", "-1m", "1h30m", "http://collector:4318", "https://u:s3cret@c:4318/v1/traces", "ftp://x", "http://",
		"gzip", "none", "grpc", "http/json", "a=b,c=d", "novalue", "k=%zz", "Authorization=Bearer%20s3cret,broken",
	} {
		f.Add(s, uint8(0))
	}
	otlpVars := []string{"PROTOCOL", "ENDPOINT", "HEADERS", "INSECURE", "TIMEOUT", "COMPRESSION", "CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"}
	f.Fuzz(func(t *testing.T, v string, which uint8) {
		const name = "OBSERVE_FUZZ"
		newEnv := func(vars map[string]string) *Env { return New(func(k string) string { return vars[k] }) }
		trimmed := strings.TrimSpace(v)
		// check: a refused value is reported once, naming the variable; an
		// accepted or empty one is not reported.
		check := func(reader string, e *Env, ok bool) {
			t.Helper()
			err := e.Err()
			switch {
			case ok && err != nil, trimmed == "" && err != nil:
				t.Fatalf("%s(%q): accepted or empty, yet %v", reader, v, err)
			case !ok && trimmed != "" && err == nil:
				t.Fatalf("%s(%q): refused without an error", reader, v)
			case err != nil:
				var ce *Error
				if !errors.As(err, &ce) || ce.Variable != name || strings.Count(err.Error(), name+"=") != 1 {
					t.Fatalf("%s(%q): error %v does not name %s once", reader, v, err, name)
				}
				if u, perr := url.Parse(trimmed); perr == nil && u.User != nil {
					if pw, set := u.User.Password(); set && len(pw) >= 4 && strings.Contains(err.Error(), pw) {
						t.Fatalf("%s(%q): error %v carries the URL's password", reader, v, err)
					}
				}
			}
		}
		vars := map[string]string{name: v}

		var b bool
		e := newEnv(vars)
		ok := e.Bool(name, &b)
		if want, err := strconv.ParseBool(trimmed); ok && (err != nil || b != want) {
			t.Fatalf("Bool(%q) = %v", v, b)
		}
		check("Bool", e, ok)

		e = newEnv(vars)
		ok = e.Switch(name, &b)
		check("Switch", e, ok)

		var d time.Duration
		e = newEnv(vars)
		if ok = e.Millis(name, &d); ok && d <= 0 {
			t.Fatalf("Millis(%q) = %v", v, d)
		}
		check("Millis", e, ok)

		e = newEnv(vars)
		if ok = e.Duration(name, "a positive duration", func(d time.Duration) bool { return d > 0 }, &d); ok && d <= 0 {
			t.Fatalf("Duration(%q) = %v", v, d)
		}
		check("Duration", e, ok)

		var n int
		e = newEnv(vars)
		if ok = e.PositiveInt(name, &n); ok && n <= 0 {
			t.Fatalf("PositiveInt(%q) = %d", v, n)
		}
		check("PositiveInt", e, ok)

		var s string
		e = newEnv(vars)
		if ok = e.URL(name, "a URL", &s); ok && CheckEndpoint(s) != nil {
			t.Fatalf("URL(%q) = %q", v, s)
		}
		check("URL", e, ok)

		e = newEnv(vars)
		if ok = e.Enum(name, &s, "gzip", "none"); ok && s != "gzip" && s != "none" {
			t.Fatalf("Enum(%q) = %q", v, s)
		}
		check("Enum", e, ok)

		var h map[string]string
		e = newEnv(vars)
		ok = e.headers(name, &h)
		if err := e.Err(); err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Variable != name || ce.Value != "<redacted>" || ok {
				t.Fatalf("headers(%q): error %v (accepted %v)", v, err, ok)
			}
		}

		// The OTLP section, with the value in one of its variables (general
		// or a signal's): whatever it reports names that variable.
		x := otlpVars[int(which)%len(otlpVars)]
		signal := []string{Traces, Metrics, Logs}[int(which/16)%3]
		varName := "OTEL_EXPORTER_OTLP_" + x
		if which&8 != 0 {
			varName = "OTEL_EXPORTER_OTLP_" + signal + "_" + x
		}
		e = newEnv(map[string]string{varName: v})
		c := e.OTLP(signal, false)
		if err := e.Err(); err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Variable != varName {
				t.Fatalf("OTLP with %s=%q: error %v", varName, v, err)
			}
		}
		if c.Protocol != "grpc" && c.Protocol != "http/protobuf" || c.Timeout <= 0 || (c.Endpoint != "" && CheckEndpoint(c.Endpoint) != nil) {
			t.Fatalf("OTLP with %s=%q: %+v", varName, v, c)
		}
	})
}
