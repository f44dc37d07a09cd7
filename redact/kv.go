package redact

import "strings"

// scanKV finds key=value, key: value, key => value and "key":"value" pairs
// whose key is sensitive, and replaces the value.
//
// Scanning goes on inside a value once it is found, because a value may end
// before a pair that starts inside it ("pass= client_secret: x"). Values
// found there are mostly inside the first one; the work spent on them is
// bounded, and past the bound the rest of the string is redacted (a string
// built to make this quadratic is not a log line anyone needs to read).
func (p *Policy) scanKV(s string, sp *spans) {
	n := len(s)
	covered, work, limit := 0, 0, 4*n+4096
	for i := 0; i < n; i++ {
		c := s[i]
		if c != '=' && c != ':' {
			continue
		}
		opEnd := i + 1
		if c == ':' {
			if opEnd < n && s[opEnd] == ':' { // "::" in IPv6 and C++ names
				i++
				continue
			}
			if opEnd+1 < n && s[opEnd] == '/' && s[opEnd+1] == '/' { // scheme://
				continue
			}
		} else {
			if i > 0 && strings.IndexByte("=!<>:", s[i-1]) >= 0 {
				continue
			}
			if opEnd < n && s[opEnd] == '=' {
				i++
				continue
			}
			if opEnd < n && s[opEnd] == '>' {
				opEnd++
			}
		}
		ks, ke, q := keyBefore(s, i)
		if ke-ks < p.keys.minWord || !p.keys.digitWord && !hasLetter(s[ks:ke]) ||
			!p.keys.match(s[ks:ke]) || inMaskKey(s, ks) {
			continue
		}
		key := s[ks:ke]
		if q == 0 && ks >= 2 && s[ks-2:ks] == "//" { // user info of a URL
			continue
		}
		vs, ve, wrap := valueAfter(s, opEnd, q, c == ':' && q == 0 && isHeaderLineKey(key))
		if i < covered {
			if work += ve - vs + 16; work > limit {
				sp.add(span{start: i + 1, end: n, kind: kindKV})
				return
			}
		}
		if vs >= ve || c == ':' && q == 0 && vs > opEnd && isProse(s, vs, ve) && isProseKey(key) {
			continue
		}
		kind := kvKindOf(key)
		if !p.enabled(kind) {
			if !p.enabled(kindKV) {
				continue
			}
			kind = kindKV
		}
		sp.add(span{start: vs, end: ve, kind: kind, wrap: wrap})
		covered = max(covered, ve)
	}
}

// quoteEscDbl marks a key quoted as \"key\", inside a JSON string.
const quoteEscDbl = 1

// keyBefore returns the key that ends before the operator at s[i], and how it
// was quoted: 0, a double or a single quote, or quoteEscDbl.
func keyBefore(s string, i int) (ks, ke int, q byte) {
	j := i
	for j > 0 && i-j < 4 && isSpace(s[j-1]) {
		j--
	}
	if j == 0 {
		return 0, 0, 0
	}
	switch qc := s[j-1]; qc {
	case '"', '\'':
		end := j - 1
		esc := end > 0 && s[end-1] == '\\'
		if esc {
			end--
			q = quoteEscDbl
		} else {
			q = qc
		}
		for k := end; k > 0 && end-k < 128; k-- {
			if s[k-1] != qc {
				continue
			}
			escaped := k >= 2 && s[k-2] == '\\'
			if escaped == esc {
				return k, end, q
			}
		}
		return 0, 0, 0
	default:
		k := j
		for k > 0 && j-k < 64 && isKeyChar(s[k-1]) {
			k--
		}
		return k, j, 0
	}
}

// isProse reports a value that is a lower-case word followed by more words,
// as in the error message "auth: permission denied".
func isProse(s string, vs, ve int) bool {
	for i := vs; i < ve; i++ {
		if c := s[i]; c < 'a' || c > 'z' {
			return false
		}
	}
	return ve+1 < len(s) && s[ve] == ' ' && isAlpha(s[ve+1])
}

// isProseKey reports keys that double as the prefix of Go error messages
// ("token: …", "auth: …"). Keys that name a password or a key never do: their
// value is redacted even when it reads like a word.
func isProseKey(key string) bool {
	for _, w := range proseKeys {
		if strings.EqualFold(key, w) {
			return true
		}
	}
	return false
}

var proseKeys = []string{
	"auth", "token", "session", "signature", "sig", "cookie", "jwt", "csrf", "xsrf",
	"credential", "credentials", "creds", "otp", "pin", "bearer", "authorization", "ssn",
}

func hasLetter(s string) bool {
	for i := 0; i < len(s); i++ {
		if isAlpha(s[i]) {
			return true
		}
	}
	return false
}

func isKeyChar(c byte) bool {
	return isAlnum(c) || c == '_' || c == '-' || c == '.' || c == '[' || c == ']'
}

// inMaskKey reports a "key" that is part of a mask: "[REDACTED:card:1234]".
func inMaskKey(s string, ks int) bool {
	for k := ks - 1; k >= 0 && ks-k <= 40; k-- {
		switch s[k] {
		case '[':
			return maskAt(s, k)
		case ']', ' ':
			return false
		}
	}
	return false
}

// isHeaderLineKey reports keys whose unquoted value runs to the end of the
// line, spaces included: "Authorization: Bearer x", "Cookie: a=1; b=2".
func isHeaderLineKey(key string) bool {
	var buf [32]byte
	b := buf[:0]
	for i := 0; i < len(key) && len(b) < len(buf); i++ {
		if c := key[i]; isAlpha(c) {
			b = append(b, c|0x20)
		}
	}
	return contains(b, "authorization") || contains(b, "cookie")
}

// valueAfter returns the value that starts after the operator at s[p:], and
// how its mask must be quoted to keep JSON valid.
func valueAfter(s string, p int, q byte, toEOL bool) (vs, ve int, wrap uint8) {
	n := len(s)
	for p < n && isSpace(s[p]) {
		p++
	}
	if p >= n || maskAt(s, p) {
		return 0, 0, 0
	}
	c := s[p]
	switch {
	case q == quoteEscDbl && c == '\\' && p+1 < n && s[p+1] == '"':
		vs = p + 2
		if maskAt(s, min(vs, n)) {
			return 0, 0, 0
		}
		e := strings.Index(s[vs:], `\"`)
		if e < 0 {
			return vs, n, 0
		}
		return vs, vs + e, 0
	case c == '"' || c == '\'' || c == '`':
		vs = p + 1
		if vs < n && maskAt(s, vs) {
			return 0, 0, 0
		}
		for e := vs; e < n; e++ {
			if s[e] == '\\' {
				e++
				continue
			}
			if s[e] == c {
				return vs, e, 0
			}
		}
		return vs, n, 0
	case (c == '{' || c == '[') && q != 0:
		wrap = wrapQuote
		if q == quoteEscDbl {
			wrap = wrapEscQuote
		} else if q == '\'' {
			wrap = wrapNone
		}
		return p, balancedEnd(s, p), wrap
	}
	e := p
	if toEOL {
		for e < n && s[e] != '\n' && s[e] != '\r' && s[e] != '"' && s[e] != '\\' {
			e++
		}
		for e > p && isSpace(s[e-1]) {
			e--
		}
		// Keep the scheme of "Authorization: Bearer …" readable.
		if sp := strings.IndexByte(s[p:e], ' '); sp > 0 && isAuthScheme(s[p:p+sp]) {
			p += sp + 1
			for p < e && isSpace(s[p]) {
				p++
			}
			if p < n && maskAt(s, p) {
				return 0, 0, 0
			}
		}
	} else {
		for e < n && !isValueEnd(s[e], q != 0) {
			e++
		}
	}
	tok := s[p:e]
	if q != 0 && (tok == "true" || tok == "false" || tok == "null") || isStopword(tok) {
		return 0, 0, 0
	}
	switch q {
	case '"':
		wrap = wrapQuote
	case quoteEscDbl:
		wrap = wrapEscQuote
	}
	return p, e, wrap
}

func isValueEnd(c byte, json bool) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ';', '&', '"', '\'', '`', '<', '>', ')', ']', '}', '\\':
		return true
	case ',':
		return json
	}
	return false
}

// balancedEnd returns the end of the JSON object or array starting at s[p],
// or len(s) if it is not closed.
func balancedEnd(s string, p int) int {
	depth, inStr := 0, false
	for i := p; i < len(s); i++ {
		c := s[i]
		if inStr {
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return len(s)
}

// stopwords are unquoted values that are not secrets but words of an error
// message: "invalid token: expired", "password: required".
var stopwords = []string{
	"invalid", "expired", "missing", "required", "empty", "none", "null", "nil",
	"true", "false", "unknown", "malformed", "denied", "failed", "not", "is",
	"was", "must", "no", "yes", "ok", "unauthorized", "forbidden", "rejected",
	"revoked", "mismatch", "present", "absent", "unset", "provided", "redacted",
	"hidden", "n/a", "undefined", "error", "bad", "wrong", "incorrect", "valid",
	"verified", "found", "exists", "supplied", "accepted", "ignored", "skipped",
	"refreshed", "rotated", "loaded", "cached", "pending",
}

func isStopword(tok string) bool {
	if len(tok) == 0 || len(tok) > 12 {
		return false
	}
	if strings.Trim(tok, "*") == "" {
		return true
	}
	for _, w := range stopwords {
		if strings.EqualFold(tok, w) {
			return true
		}
	}
	return false
}
