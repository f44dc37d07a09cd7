package bench

// Redaction: observe's redact.Policy against github.com/m-mizutani/masq, the
// slog ReplaceAttr redactor, on the same records in the same run.
//
//	go test -run=XXX -bench=Redact -benchmem -count=5
//
// masq is configured to catch what the policy catches in these records: the
// sensitive field and attribute names, and the value shapes (e-mail, card,
// JWT, bearer token, AWS key, key=value secrets, URL passwords) as regular
// expressions that replace only the match, as the policy does.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/m-mizutani/masq"
	"github.com/observekit/observe/redact"
)

type redactUser struct {
	ID       int    `json:"id"`
	Name     string `json:"name"`
	Email    string `json:"email"`
	Password string `json:"password"`
	Card     string `json:"card" redact:"true" masq:"secret"`
}

// redactSecretRecord carries a secret of most kinds, as services log them.
func redactSecretRecord() []slog.Attr {
	return []slog.Attr{
		slog.String("http.method", "POST"),
		slog.String("password", "hunter2"),
		slog.String("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2hlcmU"),
		slog.String("note", "card 4111 1111 1111 1111 from jane.doe@example.com"),
		slog.String("query", "user=bob&api_key=s3cr3tK3y&page=2"),
		slog.String("dsn", "postgres://app:pa55w0rd@db.internal:5432/orders"),
		slog.Any("user", redactUser{ID: 7, Name: "Jane", Email: "jane@example.com", Password: "x", Card: "4242424242424242"}),
		slog.Any("err", errors.New("login failed for jane@example.com with key AKIAIOSFODNN7EXAMPLE")),
		slog.Int("status", 401),
		slog.Duration("duration", 3*time.Millisecond),
	}
}

// redactCleanRecord is what a service logs all day: ten attributes, no secrets.
func redactCleanRecord() []slog.Attr {
	return []slog.Attr{
		slog.String("http.method", "GET"),
		slog.String("http.route", "/api/v1/users/{id}"),
		slog.Int("http.status_code", 200),
		slog.Duration("duration", 1532*time.Microsecond),
		slog.String("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
		slog.String("span_id", "00f067aa0ba902b7"),
		slog.String("user_agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"),
		slog.Int64("bytes", 18342),
		slog.Bool("cache_hit", true),
		slog.Group("peer", slog.String("addr", "10.1.2.3:54012"), slog.String("region", "eu-west-1")),
	}
}

// masqReplaceAttr builds masq's ReplaceAttr, configured for the same secrets.
func masqReplaceAttr() func([]string, slog.Attr) slog.Attr {
	var opts []masq.Option
	for _, name := range []string{"password", "Password", "authorization", "api_key", "token", "secret", "Card"} {
		opts = append(opts, masq.WithFieldName(name))
	}
	opts = append(opts, masq.WithTag("secret"))
	// One alternation: masq applies the first matching filter only, so
	// separate regular expressions would leave all but one kind in a string.
	re := regexp.MustCompile(strings.Join([]string{
		`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`, // e-mail
		`\b[2-6]\d{3}(?:[ \-]?\d{3,6}){2,4}\b`,                                 // card
		`eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{2,}\.[A-Za-z0-9_\-]*`,           // JWT
		`(?i)\b(?:bearer|basic) [A-Za-z0-9\-._~+/]{8,}=*`,                      // bearer
		`\b(?:AKIA|ASIA)[A-Z0-9]{16}\b`,                                        // AWS key id
		`(?i)(?:password|api_key|token|secret)=[^&;\s]+`,                       // key=value
		`://[^:/@\s]*:[^@/\s]+@`,                                               // URL password
	}, "|"))
	opts = append(opts, masq.WithRegex(re, masq.RedactString(func(s string) string {
		return re.ReplaceAllString(s, "[REDACTED]")
	})))
	return masq.New(opts...)
}

// replaceAll applies a ReplaceAttr to every attribute, as a handler would.
func replaceAll(replace func([]string, slog.Attr) slog.Attr, as []slog.Attr) {
	for _, a := range as {
		_ = replace(nil, a)
	}
}

// BenchmarkRedactSecretsReplaceAttr compares the redaction alone: each
// attribute of a record with secrets through ReplaceAttr.
func BenchmarkRedactSecretsReplaceAttr(b *testing.B) {
	as := redactSecretRecord()
	p, _ := redact.New()
	for _, c := range []struct {
		name    string
		replace func([]string, slog.Attr) slog.Attr
	}{
		{"observe", p.ReplaceAttr},
		{"masq", masqReplaceAttr()},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				replaceAll(c.replace, as)
			}
		})
	}
}

// BenchmarkRedactSecretsLogger compares whole log calls through slog's JSON
// handler: the handler's own cost included, as users pay it.
func BenchmarkRedactSecretsLogger(b *testing.B) {
	as := redactSecretRecord()
	ctx := context.Background()
	p, _ := redact.New()
	for _, c := range []struct {
		name string
		h    slog.Handler
	}{
		{"none", slog.NewJSONHandler(io.Discard, nil)},
		{"observe", redact.NewHandler(slog.NewJSONHandler(io.Discard, nil), p)},
		{"masq", slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{ReplaceAttr: masqReplaceAttr()})},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := slog.New(c.h)
			b.ReportAllocs()
			for b.Loop() {
				l.LogAttrs(ctx, slog.LevelInfo, "login failed", as...)
			}
		})
	}
}

// BenchmarkRedactCleanRecord measures what redaction adds to a clean
// ten-attribute record: the Attrs call alone, and a log call through a JSON
// handler with and without the redacting handler.
func BenchmarkRedactCleanRecord(b *testing.B) {
	as := redactCleanRecord()
	ctx := context.Background()
	p, _ := redact.New()
	b.Run("attrs", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = p.Attrs(as)
		}
	})
	for _, c := range []struct {
		name string
		h    slog.Handler
	}{
		{"logger_none", slog.NewJSONHandler(io.Discard, nil)},
		{"logger_observe", redact.NewHandler(slog.NewJSONHandler(io.Discard, nil), p)},
		{"logger_masq", slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{ReplaceAttr: masqReplaceAttr()})},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := slog.New(c.h)
			b.ReportAllocs()
			for b.Loop() {
				l.LogAttrs(ctx, slog.LevelInfo, "request completed", as...)
			}
		})
	}
}

// TestRedactComparableOutput checks that both redactors hide the secrets of
// the benchmark record, so that the benchmark compares like with like.
func TestRedactComparableOutput(t *testing.T) {
	as := redactSecretRecord()
	secrets := []string{"hunter2", "c2lnbmF0dXJlX2hlcmU", "4111 1111 1111 1111", "jane.doe@example.com",
		"s3cr3tK3y", "pa55w0rd", "jane@example.com", "4242424242424242", "AKIAIOSFODNN7EXAMPLE"}
	p, _ := redact.New()
	for _, c := range []struct {
		name string
		h    func(io.Writer) slog.Handler
	}{
		{"observe", func(w io.Writer) slog.Handler { return redact.NewHandler(slog.NewJSONHandler(w, nil), p) }},
		{"masq", func(w io.Writer) slog.Handler {
			return slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: masqReplaceAttr()})
		}},
	} {
		var buf bytes.Buffer
		slog.New(c.h(&buf)).LogAttrs(context.Background(), slog.LevelInfo, "login failed", as...)
		for _, s := range secrets {
			if strings.Contains(buf.String(), s) {
				t.Errorf("%s leaves %q in %s", c.name, s, buf.String())
			}
		}
	}
}
