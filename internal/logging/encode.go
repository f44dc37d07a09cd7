package logging

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// encoder appends one line in JSON or logfmt-like text form. JSON groups are
// nested objects; text groups are dotted key prefixes.
type encoder struct {
	text     bool
	maxValue int // bytes of one string value before truncation; 0: no limit
}

const hexDigits = "0123456789abcdef"

// safeSet[b] is true when byte b needs no escaping inside a JSON string.
var safeSet = func() [utf8.RuneSelf]bool {
	var s [utf8.RuneSelf]bool
	for i := 0x20; i < utf8.RuneSelf; i++ {
		s[i] = true
	}
	s['"'] = false
	s['\\'] = false
	// HTML-sensitive characters stay as they are: log lines are not HTML.
	return s
}()

// truncMarker ends a value cut at the size limit.
const truncMarker = "…[truncated]"

// appendJSONString appends s quoted as a JSON string. Invalid UTF-8 becomes
// U+FFFD; values over maxValue bytes are cut on a rune boundary and marked.
func (e *encoder) appendJSONString(b []byte, s string) []byte {
	truncated := false
	if e.maxValue > 0 && len(s) > e.maxValue {
		cut := e.maxValue
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
		truncated = true
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safeSet[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 break JavaScript readers of JSON lines.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	if truncated {
		b = append(b, truncMarker...)
	}
	return append(b, '"')
}

// appendTextString appends s for the text format: bare when it is a simple
// token, else quoted with strconv rules.
func (e *encoder) appendTextString(b []byte, s string) []byte {
	if e.maxValue > 0 && len(s) > e.maxValue {
		cut := e.maxValue
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + truncMarker
	}
	if s != "" && !needsQuoting(s) {
		return append(b, s...)
	}
	return strconv.AppendQuote(b, s)
}

func needsQuoting(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '=' || c == '"' || c >= utf8.RuneSelf || c == '\\' {
			return true
		}
	}
	return false
}

func (e *encoder) appendString(b []byte, s string) []byte {
	if e.text {
		return e.appendTextString(b, s)
	}
	return e.appendJSONString(b, s)
}

// appendKey appends the separator and the key. prefix is the dotted group
// path (text format only).
func (e *encoder) appendKey(b []byte, prefix, key string) []byte {
	if e.text {
		b = append(b, ' ')
		if prefix != "" {
			b = append(b, prefix...)
			b = append(b, '.')
		}
		if key == "" || needsQuoting(key) {
			b = strconv.AppendQuote(b, key)
		} else {
			b = append(b, key...)
		}
		return append(b, '=')
	}
	b = append(b, ',')
	b = e.appendJSONString(b, key)
	return append(b, ':')
}

// appendValue appends a resolved, non-group value.
func (e *encoder) appendValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return e.appendString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		f := v.Float64()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			// JSON has no NaN or Inf: write them as strings.
			return e.appendString(b, strconv.FormatFloat(f, 'g', -1, 64))
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		// Like slog's JSONHandler: integer nanoseconds, machine-friendly.
		if e.text {
			return append(b, v.Duration().String()...)
		}
		return strconv.AppendInt(b, int64(v.Duration()), 10)
	case slog.KindTime:
		t := v.Time()
		if e.text {
			return t.AppendFormat(b, time.RFC3339Nano)
		}
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	case slog.KindAny, slog.KindLogValuer:
		return e.appendAny(b, v.Any())
	}
	return e.appendString(b, v.String())
}

// appendAny encodes an arbitrary value. Panics in user methods (Error,
// MarshalJSON, MarshalText) are contained and reported in the value.
func (e *encoder) appendAny(b []byte, a any) (out []byte) {
	mark := len(b)
	defer func() {
		if r := recover(); r != nil {
			out = e.appendString(b[:mark], fmt.Sprintf("!PANIC: %v", r))
		}
	}()
	switch x := a.(type) {
	case nil:
		if e.text {
			return append(b, "<nil>"...)
		}
		return append(b, "null"...)
	case error:
		return e.appendString(b, x.Error())
	case []byte:
		if utf8.Valid(x) {
			return e.appendString(b, string(x))
		}
		return e.appendString(b, base64.StdEncoding.EncodeToString(x))
	case json.RawMessage:
		if !e.text && json.Valid(x) {
			return e.appendRawJSON(b, x)
		}
		return e.appendString(b, string(x))
	case json.Marshaler:
		if e.text {
			break
		}
		raw, err := x.MarshalJSON()
		if err != nil {
			return e.appendString(b, fmt.Sprintf("!ERROR: %v", err))
		}
		if !json.Valid(raw) {
			return e.appendString(b, fmt.Sprintf("!ERROR: MarshalJSON of %T returned invalid JSON", a))
		}
		return e.appendRawJSON(b, raw)
	case encoding.TextMarshaler:
		t, err := x.MarshalText()
		if err != nil {
			return e.appendString(b, fmt.Sprintf("!ERROR: %v", err))
		}
		return e.appendString(b, string(t))
	case fmt.Stringer:
		if e.text {
			return e.appendString(b, x.String())
		}
	}
	if e.text {
		return e.appendString(b, fmt.Sprintf("%+v", a))
	}
	raw, err := json.Marshal(a)
	if err != nil {
		return e.appendString(b, fmt.Sprintf("!ERROR: %v", err))
	}
	return e.appendRawJSON(b, raw)
}

// appendRawJSON appends valid JSON on one line. JSON larger than four times
// the value limit is written as a (truncated) string instead: a bound on
// the line that still shows the start of the value.
func (e *encoder) appendRawJSON(b, raw []byte) []byte {
	if e.maxValue > 0 && len(raw) > e.maxValue*4 {
		return e.appendString(b, string(raw))
	}
	return appendCompactJSON(b, raw)
}

// appendCompactJSON appends raw JSON on one line.
func appendCompactJSON(b, raw []byte) []byte {
	if bytes.IndexAny(raw, "\r\n") < 0 {
		return append(b, raw...)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return append(b, "null"...)
	}
	return append(b, buf.Bytes()...)
}

// appendLevel appends a level name the way slog spells it: DEBUG, INFO, WARN,
// ERROR, or "INFO+2" for levels in between.
func appendLevel(b []byte, l slog.Level) []byte {
	switch l {
	case slog.LevelDebug:
		return append(b, "DEBUG"...)
	case slog.LevelInfo:
		return append(b, "INFO"...)
	case slog.LevelWarn:
		return append(b, "WARN"...)
	case slog.LevelError:
		return append(b, "ERROR"...)
	}
	return append(b, l.String()...)
}
