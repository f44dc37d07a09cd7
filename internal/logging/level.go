package logging

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LevelController holds the global log level and per-logger levels, which
// can change at runtime, optionally for a while only (a TTL after which the
// previous level returns by itself).
//
// Logger levels are hierarchical: a level set for "db" covers "db.pool"
// unless "db.pool" has its own. Reads are lock-free.
type LevelController struct {
	global  atomic.Int64
	loggers atomic.Pointer[map[string]slog.Level] // copy-on-write
	version atomic.Uint64

	mu     sync.Mutex
	timers map[string]*revert // key: logger name, "" for global
	closed bool
}

type revert struct {
	timer *time.Timer
	prev  slog.Level
	had   bool // prev is meaningful (for loggers: whether an own level existed)
	until time.Time
}

// NewLevelController returns a controller with the given global level.
func NewLevelController(global slog.Level) *LevelController {
	c := &LevelController{timers: map[string]*revert{}}
	c.global.Store(int64(global))
	empty := map[string]slog.Level{}
	c.loggers.Store(&empty)
	return c
}

// Level returns the global level.
func (c *LevelController) Level() slog.Level { return slog.Level(c.global.Load()) }

// levelFor returns the level that applies to the named logger: its own, else
// its nearest ancestor's ("db" for "db.pool"), else the global level.
func (c *LevelController) levelFor(name string) slog.Level {
	if name != "" {
		m := *c.loggers.Load()
		if len(m) > 0 {
			for n := name; ; {
				if l, ok := m[n]; ok {
					return l
				}
				i := strings.LastIndexByte(n, '.')
				if i < 0 {
					break
				}
				n = n[:i]
			}
		}
	}
	return slog.Level(c.global.Load())
}

// Change describes one level change, for the caller to log.
type Change struct {
	Logger string // "" for the global level
	From   slog.Level
	To     slog.Level
	TTL    time.Duration // 0: permanent
}

// ErrTooManyLevels is Set's error for a new named level past maxNamedLevels.
var ErrTooManyLevels = fmt.Errorf("too many loggers with a level of their own (at most %d): set a parent's level instead (levels are hierarchical)", maxNamedLevels)

// maxNamedLevels bounds the loggers with a level of their own: every level
// is copied on change, and a runaway client of PUT /loglevel must not grow
// them without end.
const maxNamedLevels = 1000

// Set sets the level of logger ("" for global). With ttl > 0 the level
// reverts to what it was before by itself after ttl; a later Set of the same
// logger cancels a pending revert. onRevert, if not nil, is called (from a
// timer goroutine) after a revert happens. A new named level past
// maxNamedLevels is an error.
func (c *LevelController) Set(logger string, l slog.Level, ttl time.Duration, onRevert func(Change)) (Change, error) {
	if ttl < 0 {
		return Change{}, fmt.Errorf("negative ttl %s", ttl)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return Change{}, fmt.Errorf("level controller is closed")
	}
	if logger != "" {
		if _, ok := (*c.loggers.Load())[logger]; !ok && len(*c.loggers.Load()) >= maxNamedLevels {
			return Change{}, ErrTooManyLevels
		}
	}
	from := c.levelFor(logger)
	// What to restore if a TTL is set: the level before the first of a run
	// of TTL changes, so stacking TTL changes still returns to the original.
	prev, had := c.ownLocked(logger)
	if r, ok := c.timers[logger]; ok {
		r.timer.Stop()
		delete(c.timers, logger)
		prev, had = r.prev, r.had
	}
	c.setLocked(logger, l, true)
	if ttl > 0 {
		r := &revert{prev: prev, had: had, until: time.Now().Add(ttl)}
		r.timer = time.AfterFunc(ttl, func() {
			c.mu.Lock()
			if c.timers[logger] != r {
				c.mu.Unlock()
				return
			}
			delete(c.timers, logger)
			cur := c.levelFor(logger)
			c.setLocked(logger, r.prev, r.had)
			to := c.levelFor(logger)
			c.mu.Unlock()
			if onRevert != nil {
				onRevert(Change{Logger: logger, From: cur, To: to})
			}
		})
		c.timers[logger] = r
	}
	return Change{Logger: logger, From: from, To: l, TTL: ttl}, nil
}

// Unset removes a logger's own level so it follows its ancestors again.
func (c *LevelController) Unset(logger string) {
	if logger == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.timers[logger]; ok {
		r.timer.Stop()
		delete(c.timers, logger)
	}
	c.setLocked(logger, 0, false)
}

func (c *LevelController) ownLocked(logger string) (slog.Level, bool) {
	if logger == "" {
		return slog.Level(c.global.Load()), true
	}
	l, ok := (*c.loggers.Load())[logger]
	return l, ok
}

func (c *LevelController) setLocked(logger string, l slog.Level, present bool) {
	defer c.version.Add(1)
	if logger == "" {
		c.global.Store(int64(l))
		return
	}
	old := *c.loggers.Load()
	m := make(map[string]slog.Level, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	if present {
		m[logger] = l
	} else {
		delete(m, logger)
	}
	c.loggers.Store(&m)
}

// Snapshot is the state shown by GET /loglevel.
type Snapshot struct {
	Level   string            `json:"level"`
	Loggers map[string]string `json:"loggers"`
	// Reverts lists pending TTL reverts by logger, globalName for the
	// global level.
	Reverts map[string]Revert `json:"reverts,omitempty"`
}

// Revert is a pending TTL revert.
type Revert struct {
	At string `json:"at"` // RFC 3339, UTC
	// To is the level that returns; "inherit" when the logger's own level
	// goes away and it follows its ancestors again.
	To string `json:"to"`
}

// globalName stands for the global level where a logger name is expected
// (Snapshot.Reverts, the WARN lines of changes).
const globalName = "(global)"

// Snapshot returns the current levels.
func (c *LevelController) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := *c.loggers.Load()
	s := Snapshot{Level: LevelName(c.Level()), Loggers: make(map[string]string, len(m))}
	for n, l := range m {
		s.Loggers[n] = LevelName(l)
	}
	for n, r := range c.timers {
		if s.Reverts == nil {
			s.Reverts = map[string]Revert{}
		}
		to := "inherit"
		if r.had {
			to = LevelName(r.prev)
		}
		key := n
		if n == "" {
			key = globalName
		}
		s.Reverts[key] = Revert{At: r.until.UTC().Format(time.RFC3339), To: to}
	}
	return s
}

// Close stops pending reverts. Later Sets fail.
func (c *LevelController) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for n, r := range c.timers {
		r.timer.Stop()
		delete(c.timers, n)
	}
}

// LevelName returns the lower-case name used by the admin API: debug, info,
// warn, error, or slog's "INFO+2" form in lower case for levels in between.
func LevelName(l slog.Level) string {
	switch l {
	case slog.LevelDebug:
		return "debug"
	case slog.LevelInfo:
		return "info"
	case slog.LevelWarn:
		return "warn"
	case slog.LevelError:
		return "error"
	}
	return strings.ToLower(l.String())
}

// ParseLevel parses debug, info, warn (warning), error, case-insensitively.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q (accepted: debug, info, warn, error)", s)
}
