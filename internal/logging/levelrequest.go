package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// LevelRequest is a parsed PUT /loglevel body.
type LevelRequest struct {
	Level  slog.Level
	Logger string        // "" for the global level
	TTL    time.Duration // 0: permanent
}

// maxLevelTTL is the longest TTL a level change may ask for.
const maxLevelTTL = 7 * 24 * time.Hour

// ParseLevelRequest parses the body of PUT /loglevel:
//
//	{"level":"debug"}                                   global, permanent
//	{"level":"debug","logger":"db","ttl":"10m"}         one logger, reverts after 10m
//
// level is debug, info, warn or error; logger a dotted name of letters,
// digits, "_", "-" and "/" (at most 128 bytes; "" means global); ttl a
// positive Go duration up to 168h ("" or absent: permanent). Unknown fields,
// trailing data and wrong types are errors. The error's text is meant for
// the client (a 400 body) and never echoes the input.
func ParseLevelRequest(body []byte) (LevelRequest, error) {
	var raw struct {
		Level  *string `json:"level"`
		Logger *string `json:"logger"`
		TTL    *string `json:"ttl"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return LevelRequest{}, errors.New(`body must be a JSON object like {"level":"debug","logger":"db","ttl":"10m"}: ` + jsonErr(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return LevelRequest{}, errors.New("body must hold a single JSON object")
	}
	var req LevelRequest
	if raw.Level == nil {
		return LevelRequest{}, errors.New(`"level" is required (debug, info, warn, error)`)
	}
	l, err := ParseLevel(*raw.Level)
	if err != nil {
		return LevelRequest{}, errors.New(`"level" must be one of debug, info, warn, error`)
	}
	req.Level = l
	if raw.Logger != nil {
		req.Logger = strings.TrimSpace(*raw.Logger)
		if !validLoggerName(req.Logger) {
			return LevelRequest{}, errors.New(`"logger" must be a dotted name of letters, digits, "_", "-" and "/" (at most 128 bytes)`)
		}
	}
	if raw.TTL != nil && *raw.TTL != "" {
		ttl, err := time.ParseDuration(strings.TrimSpace(*raw.TTL))
		if err != nil || ttl <= 0 || ttl > maxLevelTTL {
			return LevelRequest{}, errors.New(`"ttl" must be a positive Go duration up to 168h, like "10m"`)
		}
		req.TTL = ttl
	}
	return req, nil
}

// validLoggerName reports whether s may name a logger in the admin API: ""
// (global) or dotted segments of letters, digits, "_", "-" and "/", at most
// 128 bytes.
func validLoggerName(s string) bool {
	if len(s) > 128 {
		return false
	}
	if s == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-', c == '/':
		default:
			return false
		}
	}
	return !strings.HasPrefix(s, ".") && !strings.HasSuffix(s, ".") && !strings.Contains(s, "..")
}

func jsonErr(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q must be a string", te.Field)
		}
		return "not a JSON object"
	case errors.Is(err, io.EOF):
		return "empty body"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of body"
	}
	if strings.HasPrefix(err.Error(), "json: unknown field ") {
		return "unknown field (accepted: level, logger, ttl)"
	}
	return "not a JSON object"
}
