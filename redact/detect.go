package redact

import (
	"fmt"
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
	if len(p.user) == 0 && !mayFind(cls, digits) {
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
	if len(p.user) == 0 && !mayFind(cls, digits) {
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

// mayFind reports whether scan would run any built-in scanner on a string
// of these trigger classes and digits: false means the string is clean, with
// no scan. It must stay a superset of scan's conditions (it ignores which
// kinds are enabled, so it may say true for nothing). Clean strings with a
// dash or a few digits ("eu-west-1", "u-1234") end here.
func mayFind(cls uint16, digits int) bool {
	switch {
	case cls&(clsA|clsG|clsAt|clsKV) != 0, // cloud keys, GOCSPX-, PEM (needs G), e-mail, user info, key=value
		cls&(clsJ|clsDot) == clsJ|clsDot,                // JWT
		cls&(clsDot|clsY) == clsDot|clsY && digits >= 2, // ya29.
		cls&(clsB|clsSpace) == clsB|clsSpace,            // Bearer, Basic
		digits >= 13,                                    // cards
		digits >= 9 && cls&clsDash != 0:                 // SSNs
		return true
	}
	return false
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

// panicString formats a recovered panic value without calling methods of
// arbitrary values more than fmt would.
func panicString(r any) string { return fmt.Sprint(r) }
