package observe

import (
	"strconv"
	"strings"

	"github.com/observekit/observe/internal/cpuring"
	"github.com/observekit/observe/internal/envconfig"
	"github.com/observekit/observe/internal/logging"
)

// StatusLimits bound what the status page keeps in memory. Zero fields take
// the defaults, sized so that the whole status state (these two stores and
// the RED history) stays under 32 MiB: see the README's "Status page".
type StatusLimits struct {
	// Spans is how many recent finished spans the trace store holds
	// (OBSERVE_STATUS_SPANS, default 4096). Older spans are evicted first
	// and counted.
	Spans int
	// LogBytes and LogLines bound the ring of recent log lines that carry
	// a trace_id (OBSERVE_STATUS_LOG_BYTES, default 4 MiB;
	// OBSERVE_STATUS_LOG_LINES, default 20000). The bytes are allocated up
	// front; older lines are evicted first and counted.
	LogBytes int
	LogLines int
	// Profiles and ProfileBytes bound the ring of recent 10 s CPU profiles
	// kept, with span↔profile links on, for the profile of a trace
	// (OBSERVE_STATUS_PROFILES, default 30, five minutes;
	// OBSERVE_STATUS_PROFILE_BYTES, default 1 MiB). Older profiles are
	// evicted first and counted.
	Profiles     int
	ProfileBytes int
}

// Defaults of StatusLimits.
const (
	defaultStatusSpans = 4096
)

// WithStatusLimits sets the status page's memory bounds; it wins over the
// OBSERVE_STATUS_* variables.
func WithStatusLimits(l StatusLimits) Option {
	return func(c *config) {
		if l.Spans > 0 {
			c.spanStoreSize = l.Spans
		}
		if l.LogBytes > 0 {
			c.statusLogBytes = l.LogBytes
		}
		if l.LogLines > 0 {
			c.statusLogLines = l.LogLines
		}
		if l.Profiles > 0 {
			c.statusProfiles = l.Profiles
		}
		if l.ProfileBytes > 0 {
			c.statusProfBytes = l.ProfileBytes
		}
	}
}

// loadStatusEnv reads OBSERVE_STATUS_*.
func loadStatusEnv(env *envconfig.Env, c *config) {
	c.spanStoreSize = defaultStatusSpans
	c.statusLogBytes = logging.DefaultRingBytes
	c.statusLogLines = logging.DefaultRingLines
	c.statusProfiles = cpuring.DefaultProfiles
	c.statusProfBytes = cpuring.DefaultBytes
	num := func(name string, dst *int, min, max int, accepted string) {
		v := env.Get(name)
		if v == "" {
			return
		}
		n, err := parseSize(v)
		if err != nil || n < min || n > max {
			env.Bad(name, v, accepted, err)
			return
		}
		*dst = n
	}
	num("OBSERVE_STATUS_SPANS", &c.spanStoreSize, 1, 1<<20, "a number of spans from 1 to 1048576")
	num("OBSERVE_STATUS_LOG_BYTES", &c.statusLogBytes, 4<<10, 1<<30, "a size from 4KiB to 1GiB, such as 4194304, 512KiB or 8MiB")
	num("OBSERVE_STATUS_LOG_LINES", &c.statusLogLines, 1, 1<<24, "a number of lines from 1 to 16777216")
	num("OBSERVE_STATUS_PROFILES", &c.statusProfiles, 1, 8640, "a number of 10 s CPU profiles from 1 to 8640")
	num("OBSERVE_STATUS_PROFILE_BYTES", &c.statusProfBytes, 64<<10, 1<<30, "a size from 64KiB to 1GiB, such as 4MiB")
}

// parseSize reads a non-negative integer, with an optional KiB or MiB
// suffix.
func parseSize(v string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(v, "KiB"):
		mult, v = 1<<10, strings.TrimSuffix(v, "KiB")
	case strings.HasSuffix(v, "MiB"):
		mult, v = 1<<20, strings.TrimSuffix(v, "MiB")
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, err
	}
	if n < 0 || n > (1<<40)/mult {
		return 0, strconv.ErrRange
	}
	return n * mult, nil
}
