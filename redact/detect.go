package redact

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Trigger classes: one pass over a string ORs the class of every byte, and
// only the detectors whose trigger showed up run. Clean strings therefore
// cost one table lookup per byte and no allocation.
const (
	clsDigit uint16 = 1 << iota // cards, SSNs, "ya29." tokens
	clsAt                       // e-mail addresses, URL user info
	clsKV                       // '=' and ':' of key=value pairs
	clsJ                        // 'J' of "eyJ" (JWT)
	clsA                        // 'A' of AKIA/ASIA/AIza
	clsB                        // 'b'/'B' of Bearer/Basic
	clsDash                     // '-' of "-----BEGIN" and SSNs
	clsG                        // 'G' of GOCSPX-
	clsSpace                    // ' ' and '\t' after Bearer/Basic
	clsDot                      // '.' of JWTs and "ya29." tokens
	clsY                        // 'y' of "ya29."
)

// minBuiltinLen is the length of the shortest string a built-in detector can
// match ("pin=1").
const minBuiltinLen = 5

func buildClasses(p *Policy) [256]uint16 {
	var t [256]uint16
	set := func(c byte, cls uint16) { t[c] |= cls }
	if p.enabled(kindCard) || p.enabled(kindSSN) || p.enabled(kindGCP) {
		for c := byte('0'); c <= '9'; c++ {
			set(c, clsDigit)
		}
	}
	if p.enabled(kindEmail) || p.enabled(kindKV) {
		set('@', clsAt)
	}
	if p.enabled(kindKV) || p.enabled(kindAWS) || p.enabled(kindAzure) {
		set('=', clsKV)
		set(':', clsKV)
	}
	if p.enabled(kindJWT) {
		set('J', clsJ)
	}
	if p.enabled(kindAWS) || p.enabled(kindGCP) {
		set('A', clsA)
	}
	if p.enabled(kindBearer) {
		set('b', clsB)
		set('B', clsB)
	}
	if p.enabled(kindPEM) || p.enabled(kindSSN) {
		set('-', clsDash)
	}
	if p.enabled(kindGCP) {
		set('G', clsG)
	}
	if p.enabled(kindBearer) {
		set(' ', clsSpace)
		set('\t', clsSpace)
	}
	if p.enabled(kindJWT) || p.enabled(kindGCP) {
		set('.', clsDot)
	}
	if p.enabled(kindGCP) {
		set('y', clsY)
	}
	if p.enabled(kindPEM) { // "-----BEGIN" needs its B and G
		set('B', clsB)
		set('G', clsG)
	}
	return t
}

// span is one finding: s[start:end] is replaced.
type span struct {
	start, end int
	kind       int
	wrap       uint8 // quotes to put around the mask (JSON values that were not strings)
	cs, ce     int32 // for cards: the digits, for the last four
}

const (
	wrapNone     uint8 = iota
	wrapQuote          // "mask"
	wrapEscQuote       // \"mask\"
)

// spans collects findings without allocating for the first few.
type spans struct {
	n   int
	buf [4]span
	ext []span
}

func (sp *spans) add(x span) {
	if sp.n < len(sp.buf) && sp.ext == nil {
		sp.buf[sp.n] = x
	} else {
		if sp.ext == nil {
			sp.ext = make([]span, len(sp.buf), 2*len(sp.buf))
			copy(sp.ext, sp.buf[:])
		}
		sp.ext = append(sp.ext, x)
	}
	sp.n++
}

func (sp *spans) list() []span {
	if sp.ext != nil {
		return sp.ext
	}
	return sp.buf[:sp.n]
}

// String returns s with every detected secret replaced by
// "[REDACTED:<kind>]" (or its hash), leaving the rest of s as it was. A clean
// string is returned as is, without allocating.
func (p *Policy) String(s string) string {
	out, _ := p.self().redactString(s)
	return out
}

// redactString is String reporting whether anything changed. It counts
// what it redacts.
func (p *Policy) redactString(s string) (string, bool) {
	cls, digits := p.classify(s)
	if cls == 0 && len(p.user) == 0 {
		return s, false
	}
	return p.redactFound(s, cls, digits)
}

// redactFound scans a string the trigger pass flagged. Kept apart so that
// clean strings do not pay for clearing the findings buffer.
//
//go:noinline
func (p *Policy) redactFound(s string, cls uint16, digits int) (string, bool) {
	var sp spans
	p.scan(s, cls, digits, &sp)
	if sp.n == 0 {
		return s, false
	}
	return p.render(s, &sp), true
}

// dirtyString reports whether redactString would change s, without counting.
func (p *Policy) dirtyString(s string) bool {
	cls, digits := p.classify(s)
	if cls == 0 && len(p.user) == 0 {
		return false
	}
	return p.foundAny(s, cls, digits)
}

//go:noinline
func (p *Policy) foundAny(s string, cls uint16, digits int) bool {
	var sp spans
	p.scan(s, cls, digits, &sp)
	return sp.n > 0
}

// classify runs the trigger pass.
func (p *Policy) classify(s string) (cls uint16, digits int) {
	if len(s) < minBuiltinLen {
		return 0, 0
	}
	return classOf(&p.class, s)
}

// classOf ORs the trigger classes of the bytes of s and counts its digits.
func classOf(t *[256]uint16, s string) (cls uint16, digits int) {
	var a, b uint16
	var d uint
	for len(s) >= 8 {
		x := s[:8]
		c0, c1, c2, c3 := t[x[0]], t[x[1]], t[x[2]], t[x[3]]
		c4, c5, c6, c7 := t[x[4]], t[x[5]], t[x[6]], t[x[7]]
		a |= c0 | c1 | c2 | c3
		b |= c4 | c5 | c6 | c7
		d += uint(c0&clsDigit+c1&clsDigit+c2&clsDigit+c3&clsDigit) + uint(c4&clsDigit+c5&clsDigit+c6&clsDigit+c7&clsDigit)
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		c := t[s[i]]
		a |= c
		d += uint(c & clsDigit)
	}
	return a | b, int(d)
}

func (p *Policy) scan(s string, cls uint16, digits int, sp *spans) {
	if cls&(clsDash|clsB|clsG) == clsDash|clsB|clsG && p.enabled(kindPEM) {
		scanPEM(s, sp)
	}
	if cls&clsJ != 0 && cls&clsDot != 0 {
		scanJWT(s, sp)
	}
	if cls&clsA != 0 {
		scanCloudA(s, sp, p.enabled(kindAWS), p.enabled(kindGCP))
	}
	if p.enabled(kindGCP) {
		if cls&clsG != 0 {
			scanPrefixed(s, sp, "GOCSPX-", 28, 28, kindGCP)
		}
		if cls&(clsDot|clsY) == clsDot|clsY && digits >= 2 {
			scanPrefixed(s, sp, "ya29.", 20, 4096, kindGCP)
		}
	}
	if cls&clsB != 0 && cls&clsSpace != 0 {
		scanBearer(s, sp)
	}
	if digits >= 13 && p.enabled(kindCard) {
		scanCards(s, digits, sp)
	}
	if digits >= 9 && cls&clsDash != 0 && p.enabled(kindSSN) {
		scanSSN(s, sp)
	}
	if cls&clsAt != 0 {
		if p.enabled(kindEmail) {
			scanEmail(s, sp)
		}
		if cls&clsKV != 0 && p.enabled(kindKV) {
			scanUserinfo(s, sp)
		}
	}
	if cls&clsKV != 0 {
		p.scanKV(s, sp)
	}
	for i := range p.user {
		p.runUser(numBuiltin+i, &p.user[i], s, sp)
	}
}

func (p *Policy) runUser(kind int, d *Detector, s string, sp *spans) {
	defer func() {
		if r := recover(); r != nil {
			sp.add(span{start: 0, end: len(s), kind: kind})
		}
	}()
	for _, r := range d.Find(s) {
		a, b := r[0], r[1]
		if a < 0 {
			a = 0
		}
		if b > len(s) {
			b = len(s)
		}
		if a < b {
			sp.add(span{start: a, end: b, kind: kind})
		}
	}
}

// render sorts and merges the findings and writes s with masks in place.
func (p *Policy) render(s string, sp *spans) string {
	list := sp.list()
	if len(list) <= 16 {
		// Insertion sort: there are few findings, usually already in order.
		for i := 1; i < len(list); i++ {
			for j := i; j > 0 && less(list[j], list[j-1]); j-- {
				list[j], list[j-1] = list[j-1], list[j]
			}
		}
	} else {
		slices.SortFunc(list, func(a, b span) int {
			if less(a, b) {
				return -1
			}
			if less(b, a) {
				return 1
			}
			return 0
		})
	}
	// Merge overlaps: the union is replaced, named by the highest-priority kind.
	out := list[:1]
	for _, x := range list[1:] {
		cur := &out[len(out)-1]
		if x.start >= cur.end {
			out = append(out, x)
			continue
		}
		if x.start == cur.start && x.end > cur.end {
			cur.wrap = x.wrap
		}
		if x.end > cur.end {
			cur.end = x.end
		}
		if x.kind < cur.kind {
			cur.kind, cur.cs, cur.ce = x.kind, x.cs, x.ce
		}
	}
	var b strings.Builder
	b.Grow(len(s) + 20*len(out))
	prev := 0
	for _, x := range out {
		b.WriteString(s[prev:x.start])
		p.writeMask(&b, s, x)
		p.count(x.kind)
		prev = x.end
	}
	b.WriteString(s[prev:])
	return b.String()
}

func less(a, b span) bool {
	if a.start != b.start {
		return a.start < b.start
	}
	return a.end > b.end
}

func (p *Policy) writeMask(b *strings.Builder, s string, x span) {
	switch x.wrap {
	case wrapQuote:
		b.WriteByte('"')
	case wrapEscQuote:
		b.WriteString(`\"`)
	}
	switch {
	case p.hashKey != nil:
		b.WriteString("[HASH:")
		b.WriteString(p.kinds[x.kind])
		b.WriteByte(':')
		text := s[x.start:x.end]
		if x.kind == kindCard {
			text = digitsOnly(cardText(s, x))
		}
		p.writeHash(b, text)
		b.WriteByte(']')
	case x.kind == kindCard && p.cardLast4:
		b.WriteString("[REDACTED:card:")
		b.WriteString(lastDigits(cardText(s, x), 4))
		b.WriteByte(']')
	default:
		b.WriteString(p.masks[x.kind])
	}
	switch x.wrap {
	case wrapQuote:
		b.WriteByte('"')
	case wrapEscQuote:
		b.WriteString(`\"`)
	}
}

// cardText is the card number of a finding named "card", which may have been
// merged into a wider one.
func cardText(s string, x span) string {
	if x.ce > x.cs {
		return s[x.cs:x.ce]
	}
	return s[x.start:x.end]
}

func digitsOnly(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func lastDigits(s string, n int) string {
	var buf [8]byte
	k := len(buf)
	for i := len(s) - 1; i >= 0 && len(buf)-k < n; i-- {
		if isDigit(s[i]) {
			k--
			buf[k] = s[i]
		}
	}
	return string(buf[k:])
}

// Byte classes used by the scanners.

func isAlpha(c byte) bool  { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isAlnum(c byte) bool  { return isAlpha(c) || isDigit(c) }
func isB64URL(c byte) bool { return isAlnum(c) || c == '-' || c == '_' }

// isTokenChar reports a byte of an RFC 6750 b64token.
func isTokenChar(c byte) bool {
	return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// maskAt reports whether s[i:] starts with a mask this package wrote, so that
// redacting twice changes nothing.
func maskAt(s string, i int) bool {
	r := s[i:]
	return strings.HasPrefix(r, "[REDACTED") || strings.HasPrefix(r, "[HASH:")
}

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

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
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

// Key quoting styles.
const (
	quoteNone   = 0
	quoteEscDbl = 1 // \"key\": inside a JSON string
)

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
	"hidden", "n/a", "undefined", "error", "bad", "wrong", "incorrect",
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

// panicString formats a recovered panic value without calling methods of
// arbitrary values more than fmt would.
func panicString(r any) string { return fmt.Sprint(r) }
