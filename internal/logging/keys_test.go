package logging

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/observekit/observe/redact"
)

// The key cache is bounded and counts what it evicts; whatever it holds or
// has evicted, every line is redacted and encoded as without it, and the
// policy counts each redaction once.
func TestKeyCacheBoundedAndTransparent(t *testing.T) {
	pol, err := redact.New()
	if err != nil {
		t.Fatal(err)
	}
	var out lineBuffer
	h := New(Options{Writer: &out, Redactor: pol})
	l := slog.New(h)
	const keys = 3 * keyCacheSlots
	for round := range 2 {
		for i := range keys {
			k := fmt.Sprintf("field_%d", i)
			l.Info("m", k, "v", "user_password", fmt.Sprint("hunter", i), "note", "mail bob@example.com", "Key\"q", round)
		}
	}
	lines := out.lines()
	if len(lines) != 2*keys {
		t.Fatalf("%d lines", len(lines))
	}
	for i, line := range lines {
		want := fmt.Sprintf(`"field_%d":"v","user_password":"[REDACTED]","note":"mail [REDACTED:email]","Key\"q":%d}`, i%keys, i/keys)
		if !strings.HasSuffix(line, want) || strings.Contains(line, "hunter") {
			t.Fatalf("line %d: %s\nwant suffix %s", i, line, want)
		}
	}
	if c := pol.Counts(); c["key"] != 2*keys || c["email"] != 2*keys {
		t.Fatalf("counts %v", c)
	}
	s := h.w.s
	held := 0
	for i := range s.keys.slots {
		if s.keys.slots[i].Load() != nil {
			held++
		}
	}
	if held > keyCacheSlots || s.keys.evicted.Load() == 0 {
		t.Fatalf("held %d, evicted %d", held, s.keys.evicted.Load())
	}
}
