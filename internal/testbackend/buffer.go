package testbackend

import (
	"bytes"
	"strings"
	"sync"
)

// LockedBuffer is a bytes.Buffer safe for concurrent writers: a log sink for
// tests. With Max set, writes past Max bytes are discarded (reported as
// written), enough to diagnose a chatty process.
type LockedBuffer struct {
	Max int

	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Max > 0 && l.b.Len() > l.Max {
		return len(p), nil
	}
	return l.b.Write(p)
}

// String returns what was written.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Bytes returns a copy of what was written.
func (l *LockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// Reset discards what was written.
func (l *LockedBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

// Lines returns the non-empty lines written so far.
func (l *LockedBuffer) Lines() []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}
