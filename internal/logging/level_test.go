package logging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/observekit/observe/internal/wiring"
)

func TestHierarchicalLevels(t *testing.T) {
	c := NewLevelController(slog.LevelInfo)
	mustSet := func(name string, l slog.Level) {
		t.Helper()
		if _, err := c.Set(name, l, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	mustSet("db", slog.LevelDebug)
	mustSet("db.pool.conn", slog.LevelError)
	mustSet("http", slog.LevelWarn)
	for _, tc := range []struct {
		name string
		want slog.Level
	}{
		{"", slog.LevelInfo},
		{"db", slog.LevelDebug},
		{"db.pool", slog.LevelDebug},        // covered by db
		{"db.pool.conn", slog.LevelError},   // its own
		{"db.pool.conn.x", slog.LevelError}, // nearest ancestor
		{"dbx", slog.LevelInfo},             // a prefix is not a parent
		{"http.client", slog.LevelWarn},     // covered by http
		{"other.db", slog.LevelInfo},        // db is not a suffix parent
		{"db.", slog.LevelDebug},            // odd but harmless
		{"cache", slog.LevelInfo},           // global
	} {
		if got := c.levelFor(tc.name); got != tc.want {
			t.Errorf("LevelFor(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
	c.Unset("db")
	if got := c.levelFor("db.pool"); got != slog.LevelInfo {
		t.Errorf("after Unset(db), db.pool = %v, want global INFO", got)
	}
	mustSet("", slog.LevelWarn)
	if got := c.levelFor("db.pool"); got != slog.LevelWarn {
		t.Errorf("global change not followed: %v", got)
	}
}

func TestNamedLoggersFollowLevels(t *testing.T) {
	c := NewLevelController(slog.LevelInfo)
	log, h, lb := newTest(Options{Levels: c})
	wiring.LogRoot.Store(h)
	t.Cleanup(func() { wiring.LogRoot.Store(nil) })

	db := Named("db")
	pool := Named("db.pool")
	web := Named("web")
	pool.Debug("hidden")
	if _, err := c.Set("db", slog.LevelDebug, 0, nil); err != nil {
		t.Fatal(err)
	}
	pool.Debug("pool debug", "conn", 3)
	db.Debug("db debug")
	web.Debug("web hidden")
	log.Debug("root hidden")
	if _, err := c.Set("db.pool", slog.LevelWarn, 0, nil); err != nil {
		t.Fatal(err)
	}
	pool.Info("pool info hidden")
	db.Info("db info")
	pool.With("x", 1).WithGroup("g").Warn("pool warn", "y", 2)

	recs := lb.records(t)
	var msgs []string
	for _, r := range recs {
		msgs = append(msgs, r["msg"].(string)+"@"+r["logger"].(string))
	}
	want := "pool debug@db.pool,db debug@db,db info@db,pool warn@db.pool"
	if got := strings.Join(msgs, ","); got != want {
		t.Fatalf("lines %s, want %s", got, want)
	}
	if last := lb.lines()[3]; !strings.Contains(last, `"logger":"db.pool","x":1,"g":{"y":2}}`) {
		t.Errorf("named logger with attrs/groups: %s", last)
	}
}

func TestNamedBeforeRootAndAfterChange(t *testing.T) {
	wiring.LogRoot.Store(nil)
	early := Named("early") // a package variable made before Init
	_, h1, lb1 := newTest(Options{})
	wiring.LogRoot.Store(h1)
	early.Info("one")
	_, h2, lb2 := newTest(Options{})
	wiring.LogRoot.Store(h2) // a second Init
	early.Info("two")
	wiring.LogRoot.Store(nil)
	t.Cleanup(func() { wiring.LogRoot.Store(nil) })
	if len(lb1.lines()) != 1 || len(lb2.lines()) != 1 || !strings.Contains(lb2.String(), `"logger":"early"`) {
		t.Fatalf("named logger did not follow the root: %q / %q", lb1.String(), lb2.String())
	}
}

func TestTTLRevert(t *testing.T) {
	c := NewLevelController(slog.LevelInfo)
	defer c.Close()
	reverted := make(chan Change, 4)
	onRevert := func(ch Change) { reverted <- ch }

	// TTLs long enough for the checks in between to run first on a loaded
	// machine under -race.
	ch, err := c.Set("", slog.LevelDebug, 300*time.Millisecond, onRevert)
	if err != nil || ch.From != slog.LevelInfo || ch.To != slog.LevelDebug || ch.TTL != 300*time.Millisecond {
		t.Fatalf("Set: %+v %v", ch, err)
	}
	snap := c.Snapshot()
	if snap.Level != "debug" || snap.Reverts[globalName].To != "info" || snap.Reverts[globalName].At == "" {
		t.Fatalf("snapshot during ttl: %+v", snap)
	}
	select {
	case r := <-reverted:
		if r.From != slog.LevelDebug || r.To != slog.LevelInfo || r.Logger != "" {
			t.Errorf("revert %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("global level did not revert")
	}
	if c.Level() != slog.LevelInfo || len(c.Snapshot().Reverts) != 0 {
		t.Fatalf("after revert: %v %+v", c.Level(), c.Snapshot())
	}

	// A logger without a level of its own goes back to inheriting.
	if _, err := c.Set("db", slog.LevelDebug, 300*time.Millisecond, onRevert); err != nil {
		t.Fatal(err)
	}
	if c.Snapshot().Reverts["db"].To != "inherit" {
		t.Errorf("snapshot: %+v", c.Snapshot())
	}
	<-reverted
	if _, own := c.Snapshot().Loggers["db"]; own || c.levelFor("db") != slog.LevelInfo {
		t.Errorf("db kept a level after revert: %+v", c.Snapshot())
	}
}

func TestTTLStackedAndCancelled(t *testing.T) {
	c := NewLevelController(slog.LevelWarn)
	defer c.Close()
	reverted := make(chan Change, 4)
	onRevert := func(ch Change) { reverted <- ch }
	// Two TTL changes in a row return to the level before the first.
	if _, err := c.Set("", slog.LevelInfo, time.Hour, onRevert); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set("", slog.LevelDebug, 40*time.Millisecond, onRevert); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reverted:
	case <-time.After(5 * time.Second):
		t.Fatal("no revert")
	}
	if c.Level() != slog.LevelWarn {
		t.Errorf("stacked TTLs reverted to %v, want WARN", c.Level())
	}
	// A permanent change cancels a pending revert.
	if _, err := c.Set("db", slog.LevelDebug, 500*time.Millisecond, onRevert); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set("db", slog.LevelError, 0, onRevert); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reverted:
		t.Fatalf("cancelled revert ran: %+v", r)
	case <-time.After(800 * time.Millisecond):
	}
	if c.levelFor("db") != slog.LevelError {
		t.Errorf("db = %v", c.levelFor("db"))
	}
}

func TestLevelControllerClose(t *testing.T) {
	c := NewLevelController(slog.LevelInfo)
	var mu sync.Mutex
	ran := false
	if _, err := c.Set("", slog.LevelDebug, 200*time.Millisecond, func(Change) { mu.Lock(); ran = true; mu.Unlock() }); err != nil {
		t.Fatal(err)
	}
	c.Close()
	time.Sleep(400 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if ran {
		t.Error("revert ran after Close")
	}
	if _, err := c.Set("", slog.LevelInfo, 0, nil); err == nil {
		t.Error("Set after Close succeeded")
	}
	if _, err := NewLevelController(0).Set("", 0, -time.Second, nil); err == nil {
		t.Error("negative ttl accepted")
	}
}

func TestLevelChangeTakesEffectOnLiveLoggers(t *testing.T) {
	c := NewLevelController(slog.LevelInfo)
	log, _, lb := newTest(Options{Levels: c})
	l := log.With("k", "v") // derived before the change
	l.Debug("before")
	if _, err := c.Set("", slog.LevelDebug, 0, nil); err != nil {
		t.Fatal(err)
	}
	l.Debug("after")
	if !l.Enabled(context.Background(), slog.LevelDebug) || len(lb.lines()) != 1 {
		t.Fatalf("lines: %v", lb.lines())
	}
}

func TestParseLevelAndName(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "INFO": slog.LevelInfo, " warn ": slog.LevelWarn, "warning": slog.LevelWarn, "Error": slog.LevelError} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "trace", "fatal", "5"} {
		if _, err := ParseLevel(in); err == nil {
			t.Errorf("ParseLevel(%q) accepted", in)
		}
	}
	if LevelName(slog.LevelWarn) != "warn" || LevelName(slog.LevelInfo+2) != "info+2" {
		t.Error("LevelName")
	}
}

func TestNamedLevelCacheUnderConcurrentChanges(t *testing.T) {
	c := NewLevelController(slog.LevelInfo)
	_, h, _ := newTest(Options{Levels: c})
	db := h.WithName("db.pool.conn")
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2000; i++ {
			l := slog.LevelDebug
			if i%2 == 1 {
				l = slog.LevelError
			}
			if _, err := c.Set("db.pool", l, 0, nil); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 20000; i++ {
		db.Enabled(ctx, slog.LevelInfo)
	}
	<-done
	// Last change: ERROR.
	if db.Enabled(ctx, slog.LevelWarn) || !db.Enabled(ctx, slog.LevelError) {
		t.Fatal("cached level is stale after the last change")
	}
	if _, err := c.Set("db", slog.LevelDebug, 0, nil); err != nil {
		t.Fatal(err)
	}
	c.Unset("db.pool")
	if !db.Enabled(ctx, slog.LevelDebug) {
		t.Fatal("ancestor change not seen through the cache")
	}
}

func TestNamedLevelsBounded(t *testing.T) {
	c := NewLevelController(slog.LevelInfo)
	for i := range maxNamedLevels {
		if _, err := c.Set(fmt.Sprintf("l%d", i), slog.LevelDebug, 0, nil); err != nil {
			t.Fatalf("Set #%d: %v", i, err)
		}
	}
	if _, err := c.Set("one.more", slog.LevelDebug, 0, nil); !errors.Is(err, ErrTooManyLevels) {
		t.Fatalf("past the bound: %v", err)
	}
	if c.levelFor("one.more") != slog.LevelInfo {
		t.Error("the refused level took effect")
	}
	// Changing a logger that has a level, and the global level, still work.
	if _, err := c.Set("l7", slog.LevelError, 0, nil); err != nil {
		t.Errorf("changing an existing named level: %v", err)
	}
	if _, err := c.Set("", slog.LevelWarn, 0, nil); err != nil {
		t.Errorf("changing the global level: %v", err)
	}
}
