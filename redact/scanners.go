package redact

import (
	"math"
	"strings"
)

// The built-in detectors. Each scans a whole string once, or jumps between
// occurrences of its trigger with strings.Index, and adds what it finds.

// scanPEM finds PEM blocks whose label says PRIVATE KEY, from the BEGIN line
// through the END line, or to the end of s if the block is cut short.
func scanPEM(s string, sp *spans) {
	const begin, end, dashes = "-----BEGIN ", "-----END ", "-----"
	off := 0
	for off < len(s) {
		i := strings.Index(s[off:], begin)
		if i < 0 {
			return
		}
		i += off
		ls := i + len(begin)
		j := strings.Index(s[ls:], dashes)
		if j < 0 {
			return
		}
		if j > 64 || !strings.Contains(s[ls:ls+j], "PRIVATE KEY") {
			off = ls
			continue
		}
		stop := len(s)
		for k := ls + j + len(dashes); k < len(s); {
			e := strings.Index(s[k:], end)
			if e < 0 {
				break
			}
			e += k + len(end)
			d := strings.Index(s[e:], dashes)
			if d >= 0 && d <= 64 && strings.Contains(s[e:e+d], "PRIVATE KEY") {
				stop = e + d + len(dashes)
				break
			}
			k = e
		}
		sp.add(span{start: i, end: stop, kind: kindPEM})
		off = stop
	}
}

// scanJWT finds three or more dot-separated base64url segments, the first
// starting with "eyJ" (`{"`).
func scanJWT(s string, sp *spans) {
	n := len(s)
	off := 0
	for off < n {
		i := strings.Index(s[off:], "eyJ")
		if i < 0 {
			return
		}
		i += off
		off = i + 3
		if i > 0 && (isB64URL(s[i-1]) || s[i-1] == '.') {
			continue
		}
		j := i
		for j < n && isB64URL(s[j]) {
			j++
		}
		if j-i < 10 || j >= n || s[j] != '.' {
			off = j
			continue
		}
		k := j + 1
		for k < n && isB64URL(s[k]) {
			k++
		}
		if k-j-1 < 2 || k >= n || s[k] != '.' {
			off = k
			continue
		}
		m := k + 1
		for m < n && isB64URL(s[m]) {
			m++
		}
		for m+1 < n && s[m] == '.' && isB64URL(s[m+1]) { // JWE has five segments
			m++
			for m < n && isB64URL(s[m]) {
				m++
			}
		}
		sp.add(span{start: i, end: m, kind: kindJWT})
		off = m
	}
}

// scanCloudA finds AWS access key ids (AKIA/ASIA + 16 upper-case letters or
// digits) and GCP API keys (AIza + 35 base64url bytes).
func scanCloudA(s string, sp *spans, aws, gcp bool) {
	n := len(s)
	for i := 0; i+20 <= n; i++ {
		k := strings.IndexByte(s[i:n-19], 'A')
		if k < 0 {
			return
		}
		i += k
		switch {
		case aws && (s[i+1] == 'K' || s[i+1] == 'S') && s[i+2] == 'I' && s[i+3] == 'A':
			if i > 0 && isAlnum(s[i-1]) || i+20 < n && isAlnum(s[i+20]) {
				continue
			}
			ok := true
			for j := i + 4; j < i+20; j++ {
				if c := s[j]; !(isUpper(c) || isDigit(c)) {
					ok = false
					break
				}
			}
			if ok {
				sp.add(span{start: i, end: i + 20, kind: kindAWS})
				i += 19
			}
		case gcp && s[i+1] == 'I' && s[i+2] == 'z' && s[i+3] == 'a' && i+39 <= n:
			if i > 0 && isB64URL(s[i-1]) || i+39 < n && isB64URL(s[i+39]) {
				continue
			}
			ok := true
			for j := i + 4; j < i+39; j++ {
				if !isB64URL(s[j]) {
					ok = false
					break
				}
			}
			if ok {
				sp.add(span{start: i, end: i + 39, kind: kindGCP})
				i += 38
			}
		}
	}
}

// scanPrefixed finds prefix followed by min..max base64url bytes (dots
// allowed after the prefix when max is large, as in "ya29." tokens).
func scanPrefixed(s string, sp *spans, prefix string, min, max, kind int) {
	n := len(s)
	off := 0
	for off < n {
		i := strings.Index(s[off:], prefix)
		if i < 0 {
			return
		}
		i += off
		off = i + len(prefix)
		if i > 0 && isB64URL(s[i-1]) {
			continue
		}
		j := off
		for j < n && j-off < max && (isB64URL(s[j]) || s[j] == '.' && max > min) {
			j++
		}
		short, long := j-off < min, j < n && isB64URL(s[j])
		off = j
		if short || long {
			continue
		}
		sp.add(span{start: i, end: j, kind: kind})
	}
}

// scanBearer finds the credentials after "Bearer " or "Basic " (any case),
// leaving the scheme visible. Words are not credentials: "Bearer token",
// "basic authentication" and other all-letter, lower- or Capitalized words
// are left alone.
func scanBearer(s string, sp *spans) {
	n := len(s)
	tab := strings.IndexByte(s, '\t')
	for off := 0; off < n; {
		if tab >= 0 && tab < off {
			if tab = strings.IndexByte(s[off:], '\t'); tab >= 0 {
				tab += off
			}
		}
		j := strings.IndexByte(s[off:], ' ')
		if j >= 0 {
			j += off
		}
		if tab >= 0 && (j < 0 || tab < j) {
			j = tab
		}
		if j < 0 {
			return
		}
		// j is the blank after the scheme
		off = j + 1
		var min int
		switch last := s[max(j-1, 0)] | 0x20; {
		case last == 'r' && j >= 6 && strings.EqualFold(s[j-6:j], "bearer") && (j == 6 || !isAlnum(s[j-7])):
			min = 8
		case last == 'c' && j >= 5 && strings.EqualFold(s[j-5:j], "basic") && (j == 5 || !isAlnum(s[j-6])):
			min = 4
		default:
			continue
		}
		for j < n && isSpace(s[j]) {
			j++
		}
		ts := j
		for j < n && isTokenChar(s[j]) {
			j++
		}
		for j < n && s[j] == '=' {
			j++
		}
		tok := s[ts:j]
		if len(tok) < min || looksLikeWord(tok) || j < n && isAlnum(s[j]) {
			continue
		}
		sp.add(span{start: ts, end: j, kind: kindBearer})
		off = j
	}
}

// looksLikeWord reports an all-letter token that is lower-case or capitalized.
func looksLikeWord(tok string) bool {
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !isAlpha(c) || i > 0 && isUpper(c) {
			return false
		}
	}
	return true
}

// scanCards finds payment card numbers: 13–19 digits passing Luhn, starting
// with 2–6 (the issuer ranges of Visa, Mastercard, Amex, Discover, JCB,
// Diners, UnionPay, Maestro; this keeps 13-digit millisecond timestamps out),
// not glued to letters or other digits. They may be written in groups
// separated by single spaces or dashes: then the first group has 4 digits and
// the others 3 to 6, as cards print them. The longest valid prefix of a group
// sequence wins.
func scanCards(s string, digits int, sp *spans) {
	n := len(s)
	left := digits // digits at or after i: a card needs 13
	for i := 0; i < n && left >= 13; {
		if !isDigit(s[i]) {
			i++
			continue
		}
		if !(i > 0 && isAlpha(s[i-1])) && s[i] >= '2' && s[i] <= '6' {
			if end := cardAt(s, i); end > 0 {
				x := span{start: i, end: end, kind: kindCard}
				if end <= math.MaxInt32 {
					x.cs, x.ce = int32(i), int32(end)
				}
				sp.add(x)
				for ; i < end; i++ {
					if isDigit(s[i]) {
						left--
					}
				}
				continue
			}
		}
		for i < n && isDigit(s[i]) {
			i++
			left--
		}
	}
}

// cardAt returns the end of the longest card number starting at s[i], or -1.
func cardAt(s string, i int) int {
	n := len(s)
	j, digits, s0, s1, best := i, 0, 0, 0, -1
	for g := 0; ; g++ {
		gs := j
		for j < n && isDigit(s[j]) {
			j++
		}
		gl := j - gs
		if g == 0 {
			if gl > 19 || gl != 4 && gl < 13 {
				return -1
			}
		} else if gl < 3 || gl > 6 || digits+gl > 19 {
			return best
		}
		for k := gs; k < j; k++ {
			d := int(s[k] - '0')
			dd := 2 * d
			if dd > 9 {
				dd -= 9
			}
			if digits%2 == 0 {
				s0, s1 = s0+dd, s1+d
			} else {
				s0, s1 = s0+d, s1+dd
			}
			digits++
		}
		if digits >= 13 && (j == n || !isAlnum(s[j])) {
			sum := s1
			if digits%2 == 0 {
				sum = s0
			}
			if sum%10 == 0 {
				best = j
			}
		}
		if gl >= 13 || !(j+1 < n && (s[j] == ' ' || s[j] == '-') && isDigit(s[j+1])) {
			return best
		}
		j++
	}
}

// scanSSN finds US social security numbers written ddd-dd-dddd, skipping
// numbers the SSA never issues (area 000, 666, 900–999; group 00; serial
// 0000).
func scanSSN(s string, sp *spans) {
	n := len(s)
	for off := 0; off < n; {
		k := strings.IndexByte(s[off:], '-')
		if k < 0 {
			return
		}
		k += off
		off = k + 1
		i := k - 3
		if i < 0 || k+8 > n || !allDigits(s[i:k]) || !allDigits(s[k+1:k+3]) || s[k+3] != '-' || !allDigits(s[k+4:k+8]) {
			continue
		}
		if i > 0 && (isAlnum(s[i-1]) || s[i-1] == '-' || s[i-1] == '.') {
			continue
		}
		if e := k + 8; e < n && (isAlnum(s[e]) || (s[e] == '-' || s[e] == '.') && e+1 < n && isDigit(s[e+1])) {
			continue
		}
		area, group, serial := s[i:k], s[k+1:k+3], s[k+4:k+8]
		if area == "000" || area == "666" || area[0] == '9' || group == "00" || serial == "0000" {
			continue
		}
		sp.add(span{start: i, end: k + 8, kind: kindSSN})
		off = k + 8
	}
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// scanEmail finds local@domain.tld addresses. The user name of a URL
// ("https://user@host") is not an address.
func scanEmail(s string, sp *spans) {
	n := len(s)
	for off := 0; off < n; {
		k := strings.IndexByte(s[off:], '@')
		if k < 0 {
			return
		}
		k += off
		off = k + 1
		ls := k
		for ls > 0 && k-ls < 64 && isLocalChar(s[ls-1]) {
			ls--
		}
		for ls < k && s[ls] == '.' {
			ls++
		}
		if ls == k || urlUserinfo(s, ls) {
			continue
		}
		de := domainEnd(s, k+1)
		if de < 0 {
			continue
		}
		sp.add(span{start: ls, end: de, kind: kindEmail})
		off = de
	}
}

func isLocalChar(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

// urlUserinfo reports whether s[i:] starts the user info of a URL: right after
// "//", or after "//user:".
func urlUserinfo(s string, i int) bool {
	if i >= 2 && s[i-2:i] == "//" {
		return true
	}
	if i >= 1 && s[i-1] == ':' {
		j := i - 1
		for j > 0 && s[j-1] != '/' && s[j-1] != '@' && s[j-1] > ' ' {
			j--
		}
		return j >= 2 && s[j-2:j] == "//"
	}
	return false
}

// domainEnd returns the end of a domain of two or more labels, the last all
// letters, starting at s[i], or -1.
func domainEnd(s string, i int) int {
	n := len(s)
	labels, end := 0, -1
	for i < n {
		ls := i
		for i < n && (isAlnum(s[i]) || s[i] == '-') {
			i++
		}
		if i == ls || i-ls > 63 {
			break
		}
		labels++
		if labels >= 2 && i-ls >= 2 && allAlpha(s[ls:i]) {
			end = i
		}
		if i+1 < n && s[i] == '.' && isAlnum(s[i+1]) {
			i++
			continue
		}
		break
	}
	if end != i { // the last label must be the TLD
		return -1
	}
	return end
}

func allAlpha(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAlpha(s[i]) {
			return false
		}
	}
	return true
}

// scanUserinfo finds the password of URLs with user info:
// scheme://user:password@host.
func scanUserinfo(s string, sp *spans) {
	n := len(s)
	for off := 0; off < n; {
		k := strings.Index(s[off:], "://")
		if k < 0 {
			return
		}
		a := off + k + 3
		e, at := a, -1
		for e < n {
			c := s[e]
			if c == '/' || c == '?' || c == '#' || c <= ' ' || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`' || c == '\\' {
				break
			}
			if c == '@' {
				at = e
			}
			e++
		}
		off = e
		if e == a {
			off = a
		}
		if at <= a {
			continue
		}
		if c := strings.IndexByte(s[a:at], ':'); c >= 0 && a+c+1 < at && !maskAt(s, a+c+1) {
			sp.add(span{start: a + c + 1, end: at, kind: kindKV})
		}
	}
}
