package redact

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
)

// Key matching.
//
// A key is split into segments: runs of ASCII letters and digits, cut at every
// other byte (`_`, `-`, `.`, space, `[`, …), at lower→upper case changes
// ("userPassword" → user|Password), before the last capital of an acronym
// ("APIKey" → API|Key) and between letters and digits ("password2" →
// password|2). Matching is case-insensitive and never allocates: the words are
// held in a trie that the segments of the key are walked through byte by byte.
//
// A word matches when
//   - it equals one segment or a run of adjacent segments joined together
//     ("api_key", "X-Api-Key", "apiKey" and "apikey" all match "apikey");
//   - for a few long, unambiguous words (password, passwd, passphrase, apikey,
//     secretkey, privatekey, accesstoken, refreshtoken, authtoken,
//     clientsecret, sessionid, sessid), it occurs anywhere inside a segment
//     ("PGPASSWORD", "JSESSIONID");
//   - for "session" and "pass", it is the whole key.
//
// A match is void when the segment right after it is a qualifier that makes
// the key describe the secret rather than hold it ("token_count", "auth_type",
// "password_length", "cookie_name", "secret_arn"), or when the segment right
// before it is one of has, is, num, max, min, no, next, page, idempotency
// ("max_token", "next_page_token", "has_password").
//
// Plurals are deliberately not words for "token": "tokens_used",
// "max_tokens", "input_tokens" (LLM accounting) and "tokenizer_version" stay
// visible, while "secrets", "credentials" and "cookies" are words.
// "author", "authority" and "authored_at" never match "auth", because "auth"
// must be a whole segment.

const (
	fSeg        uint8 = 1 << iota // the word as a run of whole segments
	fWhole                        // the word as the entire key
	fSub                          // the word anywhere inside one segment
	fQualAfter                    // a qualifier following a match voids it
	fQualBefore                   // a qualifier preceding a match voids it
)

// builtinKeyWords is the built-in list of sensitive words, with how they match.
var builtinKeyWords = []struct {
	word  string
	flags uint8
}{
	// Distinctive enough to match inside a segment.
	{"password", fSeg | fSub},
	{"passwd", fSeg | fSub},
	{"passphrase", fSeg | fSub},
	{"apikey", fSeg | fSub},
	{"secretkey", fSeg | fSub},
	{"privatekey", fSeg | fSub},
	{"accesstoken", fSeg | fSub},
	{"refreshtoken", fSeg | fSub},
	{"authtoken", fSeg | fSub},
	{"clientsecret", fSeg | fSub},
	{"sessionid", fSeg | fSub},
	{"sessid", fSeg | fSub},
	// Whole segments or runs of segments.
	{"pwd", fSeg},
	{"pass", fSeg},
	{"passcode", fSeg},
	{"secret", fSeg},
	{"secrets", fSeg},
	{"token", fSeg},
	{"authorization", fSeg},
	{"auth", fSeg},
	{"cookie", fSeg},
	{"cookies", fSeg},
	{"credential", fSeg},
	{"credentials", fSeg},
	{"creds", fSeg},
	{"cvv", fSeg},
	{"cvc", fSeg},
	{"ssn", fSeg},
	{"pin", fSeg},
	{"otp", fSeg},
	{"totp", fSeg},
	{"jwt", fSeg},
	{"bearer", fSeg},
	{"signature", fSeg},
	{"sig", fSeg},
	{"csrf", fSeg},
	{"xsrf", fSeg},
	{"accesskey", fSeg},
	{"signingkey", fSeg},
	{"encryptionkey", fSeg},
	{"masterkey", fSeg},
	{"accountkey", fSeg},
	{"sessionkey", fSeg},
	{"privkey", fSeg},
	{"creditcard", fSeg},
	{"cardnumber", fSeg},
	{"cardnum", fSeg},
	{"ccnumber", fSeg},
	{"ccnum", fSeg},
	{"sharedaccesskey", fSeg},
	{"sharedaccesssignature", fSeg},
	{"subscriptionkey", fSeg},
	// Only as the whole key: "session_duration" is not a secret, "session" may be.
	{"session", fWhole},
}

// qualifiersAfter void a match they follow: the key names a property of the
// secret, not the secret.
var qualifiersAfter = []string{
	"count", "counts", "type", "types", "kind", "length", "len", "size",
	"limit", "limits", "used", "usage", "ttl", "expiry", "expires",
	"expiration", "exp", "expired", "expire", "age", "lifetime", "issued",
	"enabled", "disabled", "required", "present", "provided", "set", "valid",
	"invalid", "validated", "verified", "ok", "policy", "policies", "strength",
	"version", "algorithm", "alg", "scheme", "method", "mode", "name", "names",
	"url", "uri", "endpoint", "path", "file", "location", "rotation",
	"rotated", "updated", "created", "changed", "status", "state", "result",
	"error", "err", "errors", "source", "provider", "issuer", "duration",
	"latency", "ms", "seconds", "time", "timeout", "at", "format", "arn",
	"domain", "field", "fields", "rate", "attempts", "retries", "failures",
	"min", "max", "minimum", "maximum",
}

// qualifiersBefore void a match they precede.
var qualifiersBefore = []string{
	"has", "is", "num", "max", "min", "no", "next", "page", "idempotency",
}

// keyMatcher decides whether a key names a secret. Immutable once built.
type keyMatcher struct {
	filter  acFilter // does any word occur in the key at all?
	words   trie     // fSeg and fWhole words
	subs    trie     // fSub words, looked for inside segments
	quals   trie     // qualifiers
	minSub  int      // length of the shortest fSub word
	minWord int      // letters and digits in the shortest word

	digitWord bool // some word has no letters

	cache keyCache
}

// keyCache remembers the verdicts on recently matched keys. A service
// writes the same few dozen keys over and over, and a look-up (a hash and a
// compare) costs a fraction of matching, whose tables do not stay in the CPU
// cache of a busy server. It is two-way set-associative and lock-free: a
// key goes into one of the two slots of its set, replacing what was there,
// so memory stays bounded whatever the keys, and a key evicted by a colliding
// one is merely matched again.
type keyCache struct {
	slots [keyCacheSets * 2]atomic.Pointer[keyVerdict]
}

type keyVerdict struct {
	key       string
	sensitive bool
}

const (
	keyCacheSets   = 256
	keyCacheMaxLen = 64 // longer keys are matched every time
)

// set returns the first slot of key's set: FNV-1a, deterministic so that
// what the tests see is what runs.
func (c *keyCache) set(key string) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h%keyCacheSets) * 2
}

func (c *keyCache) get(key string) (sensitive, ok bool) {
	i := c.set(key)
	for j := i; j < i+2; j++ {
		if v := c.slots[j].Load(); v != nil && v.key == key {
			return v.sensitive, true
		}
	}
	return false, false
}

func (c *keyCache) put(key string, sensitive bool) {
	i := c.set(key)
	// A copy of the key: it may be a slice of a larger string the cache
	// must not keep alive.
	v := &keyVerdict{key: strings.Clone(key), sensitive: sensitive}
	if c.slots[i].Load() == nil {
		c.slots[i].Store(v)
		return
	}
	// The first slot holds the newer entry: the older one goes.
	c.slots[i+1].Store(c.slots[i].Load())
	c.slots[i].Store(v)
}

// trie is a flat trie: node n's child for character index c (1–36, see
// charIndex) is next[n*trieStride+c]; 0 means none (node 0 is the root and
// never a child).
type trie struct {
	next  []uint16
	flags []uint8
}

const trieStride = 37

// charIndex maps ASCII letters (either case) and digits to 1–36, anything
// else to 0.
var charIndex = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = uint8(c-'a') + 1
		t[c-'a'+'A'] = uint8(c-'a') + 1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = uint8(c-'0') + 27
	}
	return t
}()

// Byte classes for cutting keys into segments.
const (
	bcSep   = iota // anything that is not a letter or digit
	bcLower        // a–z, and bytes ≥ 0x80 (never cut inside UTF-8)
	bcUpper
	bcDigit
)

var byteClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z' || c >= 0x80:
			t[c] = bcLower
		case c >= 'A' && c <= 'Z':
			t[c] = bcUpper
		case c >= '0' && c <= '9':
			t[c] = bcDigit
		}
	}
	return t
}()

func newKeyMatcher(extra []string) (*keyMatcher, error) {
	m := &keyMatcher{minSub: 1 << 30, minWord: 1 << 30}
	add := func(w string, flags uint8) {
		m.words.insert(w, flags&(fSeg|fWhole))
		if flags&fSub != 0 {
			m.subs.insert(w, fSub)
			m.minSub = min(m.minSub, len(w))
		}
		m.minWord = min(m.minWord, len(w))
		if !hasLetter(w) {
			m.digitWord = true
		}
	}
	for _, w := range builtinKeyWords {
		add(w.word, w.flags)
	}
	for _, q := range qualifiersAfter {
		m.quals.insert(q, fQualAfter)
	}
	for _, q := range qualifiersBefore {
		m.quals.insert(q, fQualBefore)
	}
	var all []string
	for _, w := range builtinKeyWords {
		all = append(all, w.word)
	}
	for _, k := range extra {
		w, err := normalizeKey(k)
		if err != nil {
			return nil, err
		}
		add(w, fSeg)
		all = append(all, w)
	}
	m.filter = newACFilter(all)
	return m, nil
}

// acFilter is an Aho–Corasick automaton over the words, run on the letters
// and digits of a key with separators dropped. Every way a word can match
// (a run of segments, the whole key, inside a segment) makes it occur in that
// stream, so a key in which no word occurs is not sensitive: one table lookup
// per byte settles most keys. Keys in which a word does occur ("author" holds
// "auth") go on to the exact segment rules.
type acFilter struct {
	// delta[s*acStride+acIndex[c]] is the state after byte c in state s,
	// with acOut set when a word ends there. Separators leave the state as
	// it is; non-ASCII bytes, which no word holds, go back to the root.
	delta []uint16
}

const (
	acOut    = 1 << 15
	acStride = trieStride + 1 // column 0: separators; 1–36: letters, digits; 37: non-ASCII
)

var acIndex = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case charIndex[c] != 0:
			t[c] = charIndex[c]
		case c >= 0x80:
			t[c] = trieStride
		}
	}
	return t
}()

func newACFilter(words []string) acFilter {
	var t trie
	for _, w := range words {
		t.insert(w, 1)
	}
	n := len(t.flags)
	if n >= acOut {
		return acFilter{} // too many words for 15-bit states: no filtering
	}
	goTo := make([]uint16, n*trieStride) // letters and digits only, without acOut
	out := make([]bool, n)
	fail := make([]uint16, n)
	queue := make([]uint16, 0, n)
	for c := 1; c < trieStride; c++ {
		if s := t.next[c]; s != 0 {
			goTo[c] = s
			queue = append(queue, s)
		}
	}
	for i := 0; i < len(queue); i++ {
		s := int(queue[i])
		out[s] = t.flags[s] != 0 || out[fail[s]]
		for c := 1; c < trieStride; c++ {
			if u := t.next[s*trieStride+c]; u != 0 {
				fail[u] = goTo[int(fail[s])*trieStride+c]
				goTo[s*trieStride+c] = u
				queue = append(queue, u)
			} else {
				goTo[s*trieStride+c] = goTo[int(fail[s])*trieStride+c]
			}
		}
	}
	delta := make([]uint16, n*acStride)
	for s := 0; s < n; s++ {
		delta[s*acStride] = uint16(s) // separators: stay (never a final state: the word ended before)
		for c := 1; c < trieStride; c++ {
			d := goTo[s*trieStride+c]
			if out[d] {
				d |= acOut
			}
			delta[s*acStride+c] = d
		}
		// delta[s*acStride+trieStride] stays 0: the root
	}
	return acFilter{delta: delta}
}

// mayMatch reports whether some word occurs in the letters and digits of key.
func (f *acFilter) mayMatch(key string) bool {
	delta := f.delta
	if delta == nil {
		return true
	}
	s := 0
	for i := range len(key) {
		d := delta[s*acStride+int(acIndex[key[i]])]
		if d&acOut != 0 {
			return true
		}
		s = int(d)
	}
	return false
}

// normalizeKey turns a user-supplied key ("X-Api-Key", "tenantSecret") into a
// trie word: its ASCII letters and digits, lower-cased, separators dropped.
func normalizeKey(k string) (string, error) {
	b := make([]byte, 0, len(k))
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 0x80:
			return "", fmt.Errorf("redact: sensitive key %q: only ASCII letters, digits and separators are allowed", k)
		case isUpper(c):
			b = append(b, c|0x20)
		case charIndex[c] != 0:
			b = append(b, c)
		}
	}
	if len(b) == 0 {
		if k == "" {
			return "", errors.New("redact: empty sensitive key")
		}
		return "", fmt.Errorf("redact: sensitive key %q has no letters or digits", k)
	}
	return string(b), nil
}

func (t *trie) insert(word string, flags uint8) {
	if t.next == nil {
		t.next = make([]uint16, trieStride, 64*trieStride)
		t.flags = make([]uint8, 1, 64)
	}
	n := 0
	for i := 0; i < len(word); i++ {
		c := int(charIndex[word[i]])
		if c == 0 {
			continue
		}
		if t.next[n*trieStride+c] == 0 {
			t.next = append(t.next, make([]uint16, trieStride)...)
			t.flags = append(t.flags, 0)
			t.next[n*trieStride+c] = uint16(len(t.flags) - 1)
		}
		n = int(t.next[n*trieStride+c])
	}
	t.flags[n] |= flags
}

// walk advances node n through seg; it returns 0 when the trie has no such path.
func (t *trie) walk(n int, seg string) int {
	next := t.next
	for i := 0; i < len(seg); i++ {
		c := int(charIndex[seg[i]])
		if c == 0 {
			return 0
		}
		n = int(next[n*trieStride+c])
		if n == 0 {
			return 0
		}
	}
	return n
}

// exact returns the flags of the word that equals seg, or 0.
func (t *trie) exact(seg string) uint8 {
	if n := t.walk(0, seg); n != 0 {
		return t.flags[n]
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// nextSegment returns the bounds of the first segment of key at or after i;
// start == len(key) when there is none.
func nextSegment(key string, i int) (start, end int) {
	n := len(key)
	for i < n && byteClass[key[i]] == bcSep {
		i++
	}
	if i >= n {
		return n, n
	}
	start = i
	pc := byteClass[key[i]]
	for i++; i < n; i++ {
		c := byteClass[key[i]]
		if c != pc {
			// Cut at separators, at letter/digit changes and at lower→Upper;
			// Upper→lower continues a capitalized word.
			if c != bcLower || pc != bcUpper {
				break
			}
		} else if c == bcUpper && i+1 < n && key[i+1] >= 'a' && key[i+1] <= 'z' {
			break // "APIKey": the K starts a new segment
		}
		pc = c
	}
	return start, i
}

// match reports whether key names a secret. It does not allocate.
func (m *keyMatcher) match(key string) bool {
	if len(key) > keyCacheMaxLen || len(key) < m.minWord {
		return m.matchUncached(key)
	}
	if sensitive, ok := m.cache.get(key); ok {
		return sensitive
	}
	sensitive := m.matchUncached(key)
	m.cache.put(key, sensitive)
	return sensitive
}

// matchUncached is match without the cache.
func (m *keyMatcher) matchUncached(key string) bool {
	n := len(key)
	if n < m.minWord || !m.filter.mayMatch(key) {
		return false
	}
	prevS, prevE := n, n // no previous segment
	s, e := nextSegment(key, 0)
	first := true
	for s < n {
		// Runs of whole segments starting at s.
		node, cs, ce := 0, s, e
		for {
			node = m.words.walk(node, key[cs:ce])
			if node == 0 {
				break
			}
			ns, ne := nextSegment(key, ce)
			if f := m.words.flags[node]; f&fSeg != 0 || f&fWhole != 0 && first && ns >= n {
				if !m.voided(key, prevS, prevE, ns, ne) {
					return true
				}
			}
			if ns >= n {
				break
			}
			cs, ce = ns, ne
		}
		// Distinctive words inside the segment.
		if e-s > m.minSub && m.substringHit(key[s:e]) {
			ns, ne := nextSegment(key, e)
			if !m.voided(key, prevS, prevE, ns, ne) {
				return true
			}
		}
		prevS, prevE = s, e
		s, e = nextSegment(key, e)
		first = false
	}
	return false
}

func (m *keyMatcher) substringHit(seg string) bool {
	next, flags := m.subs.next, m.subs.flags
	for i := 0; i+m.minSub <= len(seg); i++ {
		node := 0
		for j := i; j < len(seg); j++ {
			c := int(charIndex[seg[j]])
			if c == 0 {
				break
			}
			node = int(next[node*trieStride+c])
			if node == 0 {
				break
			}
			if flags[node] != 0 {
				return true
			}
		}
	}
	return false
}

// voided reports whether the segment before a match (prevS:prevE) or the one
// after it (ns:ne) is a qualifier.
func (m *keyMatcher) voided(key string, prevS, prevE, ns, ne int) bool {
	if prevS < prevE && m.quals.exact(key[prevS:prevE])&fQualBefore != 0 {
		return true
	}
	return ns < ne && m.quals.exact(key[ns:ne])&fQualAfter != 0
}

// kvKindOf classifies a sensitive key found inside free text: cloud-provider
// key names get their provider's kind, everything else is "kv". It does not
// allocate.
func kvKindOf(key string) int {
	var buf [64]byte
	b := buf[:0]
	for i := 0; i < len(key) && len(b) < len(buf); i++ {
		c := key[i]
		if charIndex[c] != 0 {
			if isUpper(c) {
				c |= 0x20
			}
			b = append(b, c)
		}
	}
	switch {
	case contains(b, "secretaccesskey"), contains(b, "awssecret"), contains(b, "awssessiontoken"):
		return kindAWS
	case contains(b, "accountkey"), contains(b, "sharedaccesskey"), contains(b, "sharedaccesssignature"), string(b) == "sig":
		return kindAzure
	}
	return kindKV
}

func contains(b []byte, sub string) bool {
	if len(sub) > len(b) {
		return false
	}
	for i := 0; i+len(sub) <= len(b); i++ {
		if string(b[i:i+len(sub)]) == sub {
			return true
		}
	}
	return false
}
