package redact

import (
	"net/url"
	"strings"
)

// Header returns the values of the HTTP header name with secrets hidden. When
// the name is sensitive (Authorization, Proxy-Authorization, Cookie,
// Set-Cookie, X-Api-Key, X-Auth-Token, X-Amz-Security-Token, … — any name
// [Policy.IsSensitiveKey] accepts) each value is masked, keeping what helps
// debugging and is not secret: the scheme of an authorization value
// ("Bearer [REDACTED]"), the cookie names of Cookie ("a=[REDACTED];
// b=[REDACTED]") and the attributes of Set-Cookie ("sid=[REDACTED]; Path=/;
// HttpOnly"). Other headers get [Policy.String] on each value. When nothing
// changes, values itself is returned; otherwise a new slice.
func (p *Policy) Header(name string, values []string) []string {
	p = p.self()
	if p.keys.match(name) {
		out := make([]string, len(values))
		for i, v := range values {
			out[i] = p.headerMask(name, v)
		}
		return out
	}
	for i, v := range values {
		r, changed := p.redactString(v)
		if !changed {
			continue
		}
		out := make([]string, len(values))
		copy(out, values[:i])
		out[i] = r
		for j := i + 1; j < len(values); j++ {
			out[j], _ = p.redactString(values[j])
		}
		return out
	}
	return values
}

func (p *Policy) headerMask(name, v string) string {
	switch {
	case strings.EqualFold(name, "Cookie"):
		var b strings.Builder
		for i, part := range strings.Split(v, ";") {
			if i > 0 {
				b.WriteString("; ")
			}
			p.writeCookiePair(&b, strings.TrimSpace(part))
		}
		return b.String()
	case strings.EqualFold(name, "Set-Cookie"):
		pair, attrs, found := strings.Cut(v, ";")
		var b strings.Builder
		p.writeCookiePair(&b, strings.TrimSpace(pair))
		if found {
			b.WriteByte(';')
			b.WriteString(attrs)
		}
		return b.String()
	case strings.EqualFold(name, "Authorization") || strings.EqualFold(name, "Proxy-Authorization"):
		if scheme, cred, ok := strings.Cut(strings.TrimSpace(v), " "); ok && isAuthScheme(scheme) {
			return scheme + " " + p.keyMask(strings.TrimSpace(cred), true)
		}
	}
	return p.keyMask(v, true)
}

func (p *Policy) writeCookiePair(b *strings.Builder, pair string) {
	if name, val, ok := strings.Cut(pair, "="); ok && name != "" {
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(p.keyMask(val, true))
		return
	}
	b.WriteString(p.keyMask(pair, true))
}

// isAuthScheme reports an HTTP authentication scheme name: "Bearer", "Basic",
// "Digest", "AWS4-HMAC-SHA256".
func isAuthScheme(s string) bool {
	if len(s) == 0 || len(s) > 32 || !isAlpha(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// URL returns u as a string with secrets hidden: the password of the user
// info becomes "[REDACTED]", escaped as user info must be ("%5BREDACTED%5D"),
// and the user name gets [Policy.String]; the values of
// query parameters with a sensitive key become "[REDACTED]" and other values,
// the path and the fragment get [Policy.String]. u is never modified. A clean
// URL gives u.String(); a nil one, "".
func (p *Policy) URL(u *url.URL) string {
	if u == nil {
		return ""
	}
	s, changed := p.self().url(u, true)
	if !changed {
		return u.String()
	}
	return s
}

// urlDirty reports whether URL would change anything.
func (p *Policy) urlDirty(u *url.URL) bool {
	_, changed := p.url(u, false)
	return changed
}

// url checks u and, when build is set and something is found, returns the
// redacted form.
func (p *Policy) url(u *url.URL, build bool) (string, bool) {
	redact := func(s string) (string, bool) {
		if build {
			return p.redactString(s)
		}
		return s, p.dirtyString(s)
	}
	changed := false
	var user, password string
	hasPassword := false
	if u.User != nil {
		user = u.User.Username()
		password, hasPassword = u.User.Password()
		if hasPassword && password != "" && !maskAt(password, 0) {
			changed = true
		}
		if r, ch := redact(user); ch {
			user, changed = r, true
		}
	}
	path, pathChanged := redact(u.Path)
	frag, fragChanged := redact(u.Fragment)
	opaque, opaqueChanged := redact(u.Opaque)
	query, queryChanged := p.query(u.RawQuery, build)
	changed = changed || pathChanged || fragChanged || opaqueChanged || queryChanged
	if !changed || !build {
		return "", changed
	}
	v := *u
	v.User = nil
	if pathChanged {
		v.Path, v.RawPath = path, escapeKeepingMasks(path, url.PathEscape, true)
	}
	if fragChanged {
		v.Fragment, v.RawFragment = frag, escapeKeepingMasks(frag, url.PathEscape, false)
	}
	if opaqueChanged {
		v.Opaque = opaque
	}
	v.RawQuery = query
	s := v.String()
	if u.User == nil {
		return s, true
	}
	// Escaped as url.URL would, so that the result parses: the password
	// mask reads "%5BREDACTED%5D".
	var info string
	if hasPassword {
		pw := password
		if !maskAt(password, 0) {
			pw = p.keyMask(password, true)
		}
		info = url.UserPassword(user, pw).String()
	} else {
		info = url.User(user).String()
	}
	if i := strings.Index(s, "//"); i >= 0 {
		s = s[:i+2] + info + "@" + s[i+2:]
	}
	return s, true
}

// query redacts a raw query string pair by pair, keeping its order and
// encoding.
func (p *Policy) query(raw string, build bool) (string, bool) {
	dirty := false
	for rest := raw; rest != ""; {
		pair, tail, _ := strings.Cut(rest, "&")
		if _, changed := p.queryPair(pair, false); changed {
			dirty = true
			break
		}
		rest = tail
	}
	if !dirty || !build {
		return raw, dirty
	}
	var b strings.Builder
	b.Grow(len(raw) + 16)
	for i, pair := range strings.Split(raw, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		out, _ := p.queryPair(pair, true)
		b.WriteString(out)
	}
	return b.String(), true
}

func (p *Policy) queryPair(pair string, build bool) (string, bool) {
	rawKey, rawVal, hasVal := strings.Cut(pair, "=")
	if !hasVal || rawVal == "" || maskAt(rawVal, 0) {
		return pair, false
	}
	key := unescapeQuery(rawKey)
	val := unescapeQuery(rawVal)
	if p.keys.match(key) {
		if !build {
			return "", true
		}
		return rawKey + "=" + p.keyMask(val, true), true
	}
	if !build {
		return "", p.dirtyString(val)
	}
	r, changed := p.redactString(val)
	if !changed {
		return pair, false
	}
	return rawKey + "=" + escapeKeepingMasks(r, url.QueryEscape, false), true
}

func unescapeQuery(s string) string {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s
	}
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// escapeKeepingMasks escapes s with esc, leaving the masks this package wrote
// readable. With bySegment, '/' is kept and each path segment escaped.
func escapeKeepingMasks(s string, esc func(string) string, bySegment bool) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	write := func(t string) {
		if !bySegment {
			b.WriteString(esc(t))
			return
		}
		for i, seg := range strings.Split(t, "/") {
			if i > 0 {
				b.WriteByte('/')
			}
			b.WriteString(esc(seg))
		}
	}
	for s != "" {
		i := strings.Index(s, "[REDACTED")
		if j := strings.Index(s, "[HASH:"); j >= 0 && (i < 0 || j < i) {
			i = j
		}
		if i < 0 {
			write(s)
			break
		}
		end := strings.IndexByte(s[i:], ']')
		if end < 0 {
			write(s)
			break
		}
		write(s[:i])
		b.WriteString(s[i : i+end+1])
		s = s[i+end+1:]
	}
	return b.String()
}
