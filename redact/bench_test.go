package redact

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// cleanRecord is what a service logs all day: ten attributes, no secrets.
func cleanRecord() []slog.Attr {
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

// secretRecord carries a secret of most kinds.
type benchUser struct {
	ID       int
	Name     string
	Email    string
	Password string
	Card     string `redact:"true"`
}

func secretRecord() []slog.Attr {
	return []slog.Attr{
		slog.String("http.method", "POST"),
		slog.String("password", "hunter2"),
		slog.String("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2hlcmU"),
		slog.String("note", "card 4111 1111 1111 1111 from jane.doe@example.com"),
		slog.String("query", "user=bob&api_key=s3cr3tK3y&page=2"),
		slog.String("dsn", "postgres://app:pa55w0rd@db.internal:5432/orders"),
		slog.Any("user", benchUser{ID: 7, Name: "Jane", Email: "jane@example.com", Password: "x", Card: "4242424242424242"}),
		slog.Any("err", errors.New("login failed for jane@example.com")),
		slog.Int("status", 401),
		slog.Duration("duration", 3*time.Millisecond),
	}
}

func BenchmarkAttrsClean(b *testing.B) {
	p := Default()
	as := cleanRecord()
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Attrs(as)
	}
}

func BenchmarkAttrsSecrets(b *testing.B) {
	p := Default()
	as := secretRecord()
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Attrs(as)
	}
}

func BenchmarkString(b *testing.B) {
	p := Default()
	for _, c := range []struct{ name, s string }{
		{"clean_short", "user-service"},
		{"clean_msg", "request completed in 12ms with status 200 for GET /api/v1/users/42"},
		{"clean_timestamp", "2024-01-15T10:30:00.123456789Z"},
		{"secret_msg", "login by jane.doe@example.com with password=hunter2"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.s)))
			for b.Loop() {
				_ = p.String(c.s)
			}
		})
	}
}

// BenchmarkCleanRecordParts splits the clean record into its strings and
// keys, to see which of them costs what.
func BenchmarkCleanRecordParts(b *testing.B) {
	p := Default()
	for _, s := range []string{"/api/v1/users/{id}", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36", "10.1.2.3:54012", "eu-west-1"} {
		b.Run("value="+s[:min(len(s), 12)], func(b *testing.B) {
			for b.Loop() {
				p.String(s)
			}
		})
	}
	for _, k := range []string{"http.method", "http.status_code", "duration", "trace_id", "user_agent", "peer"} {
		b.Run("key="+k, func(b *testing.B) {
			for b.Loop() {
				p.IsSensitiveKey(k)
			}
		})
	}
}

func BenchmarkIsSensitiveKey(b *testing.B) {
	p := Default()
	keys := []string{"http.method", "user_password", "X-Api-Key", "duration_ms", "trace_id", "tokens_used"}
	b.ReportAllocs()
	for b.Loop() {
		for _, k := range keys {
			_ = p.IsSensitiveKey(k)
		}
	}
}

// BenchmarkHandler measures the cost a redacting handler adds to a JSON
// handler for a clean ten-attribute record.
func BenchmarkHandler(b *testing.B) {
	as := cleanRecord()
	ctx := context.Background()
	for _, c := range []struct {
		name string
		h    slog.Handler
	}{
		{"plain", slog.NewJSONHandler(io.Discard, nil)},
		{"redact", NewHandler(slog.NewJSONHandler(io.Discard, nil), Default())},
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
