package integration

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/observekit/observe/internal/instance"
	"github.com/observekit/observe/internal/logging"
)

// PUT/GET /loglevel through the admin handler, as the contract says.

func logsAdmin(t *testing.T, h http.Handler, method, body, remote, auth string) (int, map[string]any) {
	t.Helper()
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, "/loglevel", strings.NewReader(body))
	} else {
		r = httptest.NewRequest(method, "/loglevel", nil)
	}
	if remote != "" {
		r.RemoteAddr = remote
	}
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("%s /loglevel: body is not JSON (%v): %q", method, err, w.Body.String())
	}
	return w.Code, m
}

func TestLogsAdminGetLevel(t *testing.T) {
	obs, _ := logsInit(t, map[string]string{"OBSERVE_LOG_LEVEL": "warn"})
	if _, err := instance.Of(obs).Levels.Set("db", slog.LevelDebug, 0, nil); err != nil {
		t.Fatal(err)
	}
	// GET is open: any client, no token.
	code, m := logsAdmin(t, obs.AdminHandler(), "GET", "", "203.0.113.9:4000", "")
	if code != 200 || m["level"] != "warn" || !reflect.DeepEqual(m["loggers"], map[string]any{"db": "debug"}) {
		t.Fatalf("GET /loglevel: %d %v", code, m)
	}
}

func TestLogsAdminAuthWithToken(t *testing.T) {
	obs, lb := logsInit(t, map[string]string{"OBSERVE_ADMIN_TOKEN": "t0ken-abc"})
	h := obs.AdminHandler()
	body := `{"level":"debug"}`
	for name, auth := range map[string]string{
		"missing":       "",
		"wrong":         "Bearer t0ken-abd",
		"prefix":        "Bearer t0ken",
		"longer":        "Bearer t0ken-abcd",
		"not bearer":    "Basic dDBrZW4tYWJj",
		"bare token":    "t0ken-abc",
		"empty bearer":  "Bearer ",
		"loopback only": "", // a token set: loopback is no excuse
	} {
		remote := "198.51.100.7:1234"
		if name == "loopback only" {
			remote = "127.0.0.1:1234"
		}
		code, m := logsAdmin(t, h, "PUT", body, remote, auth)
		if code != http.StatusUnauthorized {
			t.Errorf("%s: %d %v, want 401", name, code, m)
		}
	}
	if instance.Of(obs).Levels.Level() != slog.LevelInfo {
		t.Fatal("level changed by an unauthorized request")
	}
	if strings.Contains(lb.String(), "log level changed") {
		t.Fatal("a refused request logged a change")
	}
	code, m := logsAdmin(t, h, "PUT", body, "198.51.100.7:1234", "Bearer t0ken-abc")
	if code != 200 || m["level"] != "debug" || instance.Of(obs).Levels.Level() != slog.LevelDebug {
		t.Fatalf("authorized PUT: %d %v", code, m)
	}
	if strings.Contains(lb.String(), "t0ken-abc") {
		t.Error("the token reached the log")
	}
}

func TestLogsAdminAuthWithoutToken(t *testing.T) {
	obs, _ := logsInit(t, nil)
	h := obs.AdminHandler()
	for _, remote := range []string{"192.0.2.1:1234", "10.0.0.5:80", "[2001:db8::1]:443", "garbage"} {
		code, m := logsAdmin(t, h, "PUT", `{"level":"debug"}`, remote, "Bearer anything")
		if code != http.StatusForbidden {
			t.Errorf("%s: %d %v, want 403", remote, code, m)
		}
	}
	if instance.Of(obs).Levels.Level() != slog.LevelInfo {
		t.Fatal("level changed by a forbidden request")
	}
	for _, remote := range []string{"127.0.0.1:5555", "[::1]:5555"} {
		if code, m := logsAdmin(t, h, "PUT", `{"level":"warn"}`, remote, ""); code != 200 {
			t.Errorf("loopback %s: %d %v", remote, code, m)
		}
	}
}

func TestLogsAdminBadInput(t *testing.T) {
	obs, lb := logsInit(t, map[string]string{"OBSERVE_ADMIN_TOKEN": "tok"})
	h := obs.AdminHandler()
	if _, err := instance.Of(obs).Levels.Set("db", slog.LevelWarn, 0, nil); err != nil {
		t.Fatal(err)
	}
	before := instance.Of(obs).Levels.Snapshot()
	for _, body := range []string{
		``, `{`, `[]`, `{"level":"verbose"}`, `{"logger":"db"}`, `{"level":"debug","ttl":"forever"}`,
		`{"level":"debug","ttl":"-5m"}`, `{"level":"debug","logger":"bad name!"}`, `{"level":"debug","colour":"red"}`,
		`{"level":"debug"}{"level":"error"}`, `{"level":["debug"]}`, strings.Repeat(" ", 70<<10) + `{"level":"debug"}`,
	} {
		code, m := logsAdmin(t, h, "PUT", body, "127.0.0.1:1", "Bearer tok")
		msg, _ := m["error"].(string)
		if code != http.StatusBadRequest || msg == "" {
			t.Errorf("%.40q: %d %v, want 400 with a message", body, code, m)
		}
	}
	if after := instance.Of(obs).Levels.Snapshot(); !reflect.DeepEqual(before, after) {
		t.Fatalf("bad input changed levels: %+v → %+v", before, after)
	}
	if strings.Contains(lb.String(), "log level changed") {
		t.Error("bad input logged a change")
	}
}

func TestLogsAdminChangeLoggedAndTTLReverts(t *testing.T) {
	obs, lb := logsInit(t, map[string]string{"OBSERVE_ADMIN_TOKEN": "tok", "OBSERVE_LOG_LEVEL": "error"})
	h := obs.AdminHandler()
	db := logging.Named("db.pool")
	db.Debug("before")

	code, m := logsAdmin(t, h, "PUT", `{"level":"debug","logger":"db","ttl":"2s"}`, "192.0.2.44:3333", "Bearer tok")
	if code != 200 {
		t.Fatalf("PUT: %d %v", code, m)
	}
	if loggers, _ := m["loggers"].(map[string]any); loggers["db"] != "debug" {
		t.Fatalf("response snapshot: %v", m)
	}
	db.Debug("during")
	slog.Debug("root still quiet")

	// The change is logged at WARN although the global level is ERROR.
	changed := lb.find(t, "log level changed")
	if len(changed) != 1 {
		t.Fatalf("change lines: %v", lb.String())
	}
	c := changed[0]
	if c["level"] != "WARN" || !strings.HasPrefix(c["who"].(string), "192.0.2.44:3333") || c["target"] != "db" ||
		c["from"] != "error" || c["to"] != "debug" || c["ttl"] != "2s" {
		t.Errorf("change line: %v", c)
	}
	if strings.Contains(lb.String(), `"tok"`) || strings.Contains(lb.String(), "Bearer tok") {
		t.Error("token logged")
	}

	logsEventually(t, 5*time.Second, "the TTL revert", func() bool { return len(lb.find(t, "log level reverted after ttl")) == 1 })
	r := lb.find(t, "log level reverted after ttl")[0]
	if r["level"] != "WARN" || r["target"] != "db" || r["from"] != "debug" || r["to"] != "error" {
		t.Errorf("revert line: %v", r)
	}
	db.Debug("after")
	if len(lb.find(t, "during")) != 1 || len(lb.find(t, "before")) != 0 || len(lb.find(t, "after")) != 0 || len(lb.find(t, "root still quiet")) != 0 {
		t.Errorf("lines around the TTL: %s", lb.String())
	}
	_, snap := logsAdmin(t, h, "GET", "", "", "")
	if loggers, _ := snap["loggers"].(map[string]any); len(loggers) != 0 || snap["reverts"] != nil {
		t.Errorf("after revert: %v", snap)
	}
}

func TestLogsAdminGlobalTTLShownAndReverted(t *testing.T) {
	obs, lb := logsInit(t, nil)
	h := obs.AdminHandler()
	code, m := logsAdmin(t, h, "PUT", `{"level":"debug","ttl":"2s"}`, "127.0.0.1:9", "")
	if code != 200 || m["level"] != "debug" {
		t.Fatalf("PUT: %d %v", code, m)
	}
	rv, _ := m["reverts"].(map[string]any)
	g, _ := rv["(global)"].(map[string]any)
	if g["to"] != "info" || g["at"] == "" {
		t.Errorf("pending revert not shown: %v", m)
	}
	slog.Debug("debug now")
	logsEventually(t, 5*time.Second, "the global revert", func() bool { return instance.Of(obs).Levels.Level() == slog.LevelInfo })
	slog.Debug("debug no more")
	if len(lb.find(t, "debug now")) != 1 || len(lb.find(t, "debug no more")) != 0 {
		t.Errorf("lines: %s", lb.String())
	}
}

func TestLogsAdminNamedLevelsBounded(t *testing.T) {
	obs, _ := logsInit(t, map[string]string{"OBSERVE_ADMIN_TOKEN": "tok"})
	h := obs.AdminHandler()
	for i := range 1000 {
		if _, err := instance.Of(obs).Levels.Set(fmt.Sprintf("svc%d", i), slog.LevelDebug, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	code, m := logsAdmin(t, h, "PUT", `{"level":"debug","logger":"one.too.many"}`, "127.0.0.1:1", "Bearer tok")
	if msg, _ := m["error"].(string); code != http.StatusBadRequest || !strings.Contains(msg, "too many loggers") {
		t.Errorf("past the bound: %d %v, want 400 saying so", code, m)
	}
	if code, m := logsAdmin(t, h, "PUT", `{"level":"error","logger":"svc3"}`, "127.0.0.1:1", "Bearer tok"); code != http.StatusOK {
		t.Errorf("changing an existing level at the bound: %d %v", code, m)
	}
}
