package redact

import (
	"strings"
	"testing"
	"time"
)

// TestLinearTime feeds long repetitions of what triggers each scanner: every
// scanner must stay linear (a quadratic one takes seconds here).
func TestLinearTime(t *testing.T) {
	p := Default()
	for _, unit := range []string{"a@", "a@b.c ", ":", "=", "password=", "Cookie:", "2222 ", "1", "eyJ", "eyJaaaaaaaaaa.", "-----BEGIN ", "-----BEGIN PRIVATE KEY-----", "-----END ", "://", "://a:b@", "AKIA", "AIza", "Bearer ", "bearer x ", "\"password\":", "\"", "\\\"", "{", "[", "a:b@", "123-45-", "x.", "ya29.", "GOCSPX-", "a_", "aB", "password_", "pwd", " ", "4111111111111111 ", "Authorization: a=\" ", "Cookie: none ", "x='token=\"", "pass= client_secret: ", `"password":[{"token":`, "jane@example.com ", "4111111111111111 jane@example.com ", "ya29.aaaaaaaaaaaaaaaaaaaaaaaaaaaaa ", "password=x ", "\"password\":{", "x=1&password=a&"} {
		s := strings.Repeat(unit, 200000/len(unit)+1)
		start := time.Now()
		p.String(s)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%q x %d: %v", unit, len(s)/len(unit), d)
		}
	}
}
