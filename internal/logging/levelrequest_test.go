package logging

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseLevelRequest(t *testing.T) {
	ok := []struct {
		body string
		want LevelRequest
	}{
		{`{"level":"debug"}`, LevelRequest{Level: slog.LevelDebug}},
		{` {"level":"WARN","logger":"db.pool","ttl":"10m"} ` + "\n", LevelRequest{Level: slog.LevelWarn, Logger: "db.pool", TTL: 10 * time.Minute}},
		{`{"level":"error","logger":"","ttl":""}`, LevelRequest{Level: slog.LevelError}},
		{`{"ttl":"1h30m","level":"info","logger":"api/v1"}`, LevelRequest{Level: slog.LevelInfo, Logger: "api/v1", TTL: 90 * time.Minute}},
		{`{"level":"info","ttl":"168h"}`, LevelRequest{Level: slog.LevelInfo, TTL: maxLevelTTL}},
	}
	for _, tc := range ok {
		got, err := ParseLevelRequest([]byte(tc.body))
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.body, got, err, tc.want)
		}
	}
	bad := map[string]string{
		``:                                   "empty body",
		`   `:                                "empty body",
		`null`:                               `"level" is required`,
		`[]`:                                 "not a JSON object",
		`"debug"`:                            "not a JSON object",
		`{"level":"debug"`:                   "unexpected end",
		`{"level":"debug"} {"level":"info"}`: "single JSON object",
		`{"level":"debug"}x`:                 "single JSON object",
		`{}`:                                 `"level" is required`,
		`{"level":null}`:                     `"level" is required`,
		`{"level":"trace"}`:                  `"level" must be one of`,
		`{"level":1}`:                        `field "level" must be a string`,
		`{"level":"debug","extra":1}`:        "unknown field",
		`{"level":"debug","logger":"a b"}`:   `"logger" must be`,
		`{"level":"debug","logger":".db"}`:   `"logger" must be`,
		`{"level":"debug","logger":"db..x"}`: `"logger" must be`,
		`{"level":"debug","ttl":"10"}`:       `"ttl" must be`,
		`{"level":"debug","ttl":"-1m"}`:      `"ttl" must be`,
		`{"level":"debug","ttl":"0s"}`:       `"ttl" must be`,
		`{"level":"debug","ttl":"169h"}`:     `"ttl" must be`,
		`{"level":"debug","ttl":10}`:         `field "ttl" must be a string`,
		"{\"level\":\"debug\",\"logger\":\"" + strings.Repeat("a", 129) + "\"}": `"logger" must be`,
	}
	for body, want := range bad {
		_, err := ParseLevelRequest([]byte(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", body, err, want)
		}
	}
	// The message never echoes what was sent.
	_, err := ParseLevelRequest([]byte(`{"level":"<script>alert(1)</script>"}`))
	if err == nil || strings.Contains(err.Error(), "script") {
		t.Errorf("error echoes input: %v", err)
	}
}
