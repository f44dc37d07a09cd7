package cpuring

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/grafana/pyroscope-go"
)

// Collector profiles the CPU continuously into a Ring, with no server:
// pyroscope-go's session, CPU type only, whose upstream is the ring. Its
// two goroutines (the session's ticker and the CPU collector) end in Stop.
type Collector struct {
	session  *pyroscope.Session
	stopOnce sync.Once
	stopErr  error
}

// StartCollector starts profiling the CPU into r, one profile every period
// (DefaultPeriod when ≤ 0). Only one CPU collector may run in a process: do
// not start it while pyroscope-go pushes (use Ring.Add from its uploads
// instead). log receives pyroscope-go's messages (errors at WARN, the rest
// at debug); nil discards them.
func StartCollector(r *Ring, period time.Duration, log *slog.Logger) (*Collector, error) {
	if period <= 0 {
		period = DefaultPeriod
	}
	// pyroscope-go v1.4.3's CPU collector cuts a profile every second tick
	// of its period: its ticker fires just under a period after the
	// profile started, and it then waits for that whole interval again
	// (collector.go, Start). Half the period gives profiles of period.
	s, err := pyroscope.NewSession(pyroscope.SessionConfig{
		Upstream:       r,
		Logger:         debugLogger{log},
		AppName:        "observe.cpuring", // never sent anywhere
		ProfilingTypes: []pyroscope.ProfileType{pyroscope.ProfileCPU},
		UploadRate:     period / 2,
	})
	if err != nil {
		return nil, fmt.Errorf("cpu profiles: %w", err)
	}
	if err := s.Start(); err != nil {
		return nil, fmt.Errorf("cpu profiles: %w", err)
	}
	return &Collector{session: s}, nil
}

// Stop ends the collection, keeping the last partial profile, by ctx's
// deadline. While a /debug/pprof/profile request holds the CPU profiler,
// pyroscope-go finishes it first; past the deadline Stop returns and the
// collector ends when that request does. It is idempotent and safe on nil.
func (c *Collector) Stop(ctx context.Context) error {
	if c == nil {
		return nil
	}
	c.stopOnce.Do(func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.session.Stop()
		}()
		select {
		case <-done:
		case <-ctx.Done():
			c.stopErr = fmt.Errorf("cpu profiles: stop: %w", ctx.Err())
		}
	})
	return c.stopErr
}

// debugLogger adapts pyroscope-go's Logger: its chatter at debug.
type debugLogger struct{ l *slog.Logger }

func (d debugLogger) log(format string, args []any) {
	if d.l != nil && d.l.Enabled(context.Background(), slog.LevelDebug) {
		d.l.Debug(fmt.Sprintf(format, args...))
	}
}
func (d debugLogger) Debugf(format string, args ...any) { d.log(format, args) }
func (d debugLogger) Infof(format string, args ...any)  { d.log(format, args) }

// Errorf is a WARN line: the CPU profiler could not be started (a program
// that calls runtime/pprof.StartCPUProfile itself holds it).
func (d debugLogger) Errorf(format string, args ...any) {
	if d.l != nil {
		d.l.Warn(fmt.Sprintf(format, args...))
	}
}
