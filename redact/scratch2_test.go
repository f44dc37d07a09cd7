package redact

import "testing"

func BenchmarkScratchStrings(b *testing.B) {
	p := Default()
	for _, s := range []string{"/api/v1/users/{id}", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36", "10.1.2.3:54012", "eu-west-1"} {
		b.Run(s[:5], func(b *testing.B) {
			for b.Loop() {
				p.String(s)
			}
		})
	}
	for _, s := range []string{"http.method", "http.route", "http.status_code", "duration", "trace_id", "span_id", "user_agent", "bytes", "cache_hit", "peer", "addr", "region"} {
		b.Run("key_"+s, func(b *testing.B) {
			for b.Loop() {
				p.IsSensitiveKey(s)
			}
		})
	}
}
