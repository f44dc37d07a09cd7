package redact

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
)

// Kinds of redaction, as they appear in masks ("[REDACTED:card]") and as the
// keys of [Policy.Counts]. The slice index is the priority when two findings
// overlap: the lower index names the merged mask.
const (
	kindKey    = iota // a sensitive key, tagged field or header: "[REDACTED]"
	kindPEM           // PEM private-key block
	kindJWT           // JSON Web Token
	kindAWS           // AWS access key id, or an AWS secret in key=value form
	kindGCP           // GCP API key, OAuth client secret or access token
	kindAzure         // Azure storage account key, SAS signature, shared access key
	kindBearer        // HTTP Bearer or Basic credentials
	kindCard          // payment card number passing Luhn
	kindSSN           // US social security number
	kindEmail         // e-mail address
	kindKV            // value of a sensitive key inside free text, URL password
	numBuiltin
)

var builtinKinds = [numBuiltin]string{
	kindKey:    "key",
	kindPEM:    "private_key",
	kindJWT:    "jwt",
	kindAWS:    "aws_key",
	kindGCP:    "gcp_key",
	kindAzure:  "azure_key",
	kindBearer: "bearer",
	kindCard:   "card",
	kindSSN:    "ssn",
	kindEmail:  "email",
	kindKV:     "kv",
}

// Mask is what replaces the value of a sensitive key, a tagged struct field or
// a sensitive header.
const Mask = "[REDACTED]"

// Detector finds one kind of secret inside strings. Add it to a policy with
// [WithDetector].
//
// Find is called with every string the policy inspects, after the built-in
// detectors, so it should be cheap on strings it has nothing to say about and
// return nil for them (that keeps clean strings allocation-free). It returns
// the byte ranges [start, end) of s to replace with "[REDACTED:<Kind>]"; empty
// or out-of-range pairs are ignored, overlapping ranges are merged. Find must
// be safe for concurrent use and must not retain s. If Find panics the whole
// string is replaced, so a broken detector fails closed.
type Detector struct {
	// Kind names what is found: 1–32 bytes of lower-case ASCII letters,
	// digits and '_', not a built-in kind.
	Kind string
	// Find returns the ranges of s to replace.
	Find func(s string) [][2]int
}

// RegexpDetector returns a detector of kind that replaces every match of re.
// Regular expressions are slower than the built-in scanners and run on every
// inspected string: anchor them on something rare.
func RegexpDetector(kind string, re *regexp.Regexp) Detector {
	if re == nil {
		return Detector{Kind: kind}
	}
	return Detector{Kind: kind, Find: func(s string) [][2]int {
		locs := re.FindAllStringIndex(s, -1)
		if len(locs) == 0 {
			return nil
		}
		out := make([][2]int, len(locs))
		for i, l := range locs {
			out[i] = [2]int{l[0], l[1]}
		}
		return out
	}}
}

// Option configures a [Policy] built by [New].
type Option func(*config)

type config struct {
	keys      []string
	detectors []Detector
	hashKey   []byte
	hashSet   bool
	cardLast4 bool
	disabled  []string
}

// WithKeys adds sensitive keys to the built-in list. Each key is matched like
// the built-in words: case-insensitively, ignoring separators, as a whole
// segment or run of segments of an attribute key, field name, header name or
// key=value key ("tenant_id" also matches "tenantId", "X-Tenant-Id" and
// "db.tenant_id"). An empty key, or one without letters or digits, makes
// [New] fail.
func WithKeys(keys ...string) Option {
	return func(c *config) { c.keys = append(c.keys, keys...) }
}

// WithDetector adds a detector for values of a kind the built-ins do not know.
// New fails if the kind is malformed, built in or added twice, or Find is nil.
func WithDetector(d Detector) Option {
	return func(c *config) { c.detectors = append(c.detectors, d) }
}

// WithHashKey replaces masks with a keyed hash, so that equal secrets can still
// be correlated across records without being readable: a sensitive key's
// value becomes "[HASH:1a2b3c4d5e6f]" and a detected value
// "[HASH:email:1a2b3c4d5e6f]" — the first 6 bytes of HMAC-SHA256(key, value)
// in hex (card numbers are hashed on their digits alone). Composite values
// under a sensitive key (groups, structs, maps) are still masked. Keep the key
// secret: with it, guessable values can be confirmed. New fails on an empty
// key.
func WithHashKey(key []byte) Option {
	return func(c *config) {
		c.hashKey = append([]byte(nil), key...)
		c.hashSet = true
	}
}

// WithCardLast4 shows the last four digits of detected card numbers, as in
// "[REDACTED:card:1111]", the way receipts do. Ignored in hash mode.
func WithCardLast4(on bool) Option {
	return func(c *config) { c.cardLast4 = on }
}

// WithoutDetectors turns built-in detectors off by kind: "private_key", "jwt",
// "aws_key", "gcp_key", "azure_key", "bearer", "card", "ssn", "email", "kv".
// With "kv" off, sensitive key=value pairs inside free text and URL passwords
// are no longer looked for (AWS and Azure key pairs still are, unless their
// kinds are off too). Sensitive keys of attributes, fields and headers are not
// detectors and stay on. New fails on an unknown kind.
func WithoutDetectors(kinds ...string) Option {
	return func(c *config) { c.disabled = append(c.disabled, kinds...) }
}

// counter is an atomic count on a cache line of its own.
type counter struct {
	n atomic.Uint64
	_ [56]byte
}

// Policy decides what is secret and how it is hidden. It is immutable after
// [New] and safe for concurrent use; the zero of *Policy (nil) behaves as
// [Default].
type Policy struct {
	keys      *keyMatcher
	class     [256]uint16 // trigger classes of the enabled built-in detectors
	on        uint32      // bit per enabled built-in kind
	user      []Detector
	kinds     []string
	masks     []string
	counts    []counter
	hashKey   []byte
	hmacs     sync.Pool
	cardLast4 bool
	types     typeCache
}

// New builds a policy from the built-in rules and opts. It fails only on
// invalid options.
func New(opts ...Option) (*Policy, error) {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	keys, err := newKeyMatcher(c.keys)
	if err != nil {
		return nil, err
	}
	p := &Policy{keys: keys, cardLast4: c.cardLast4}
	p.on = 1<<numBuiltin - 1
	for _, k := range c.disabled {
		i := builtinIndex(k)
		if i <= kindKey {
			return nil, fmt.Errorf("redact: WithoutDetectors: unknown detector kind %q (known: %s)", k, strings.Join(builtinKinds[1:], ", "))
		}
		p.on &^= 1 << i
	}
	p.kinds = append(p.kinds, builtinKinds[:]...)
	for _, d := range c.detectors {
		if err := validKind(d.Kind); err != nil {
			return nil, err
		}
		for _, k := range p.kinds {
			if k == d.Kind {
				return nil, fmt.Errorf("redact: WithDetector: kind %q is already defined", d.Kind)
			}
		}
		if d.Find == nil {
			return nil, fmt.Errorf("redact: WithDetector: kind %q has a nil Find", d.Kind)
		}
		p.user = append(p.user, d)
		p.kinds = append(p.kinds, d.Kind)
	}
	p.masks = make([]string, len(p.kinds))
	p.masks[kindKey] = Mask
	for i := 1; i < len(p.kinds); i++ {
		p.masks[i] = "[REDACTED:" + p.kinds[i] + "]"
	}
	p.counts = make([]counter, len(p.kinds))
	if c.hashSet {
		if len(c.hashKey) == 0 {
			return nil, errors.New("redact: WithHashKey: empty key")
		}
		p.hashKey = c.hashKey
		p.hmacs.New = func() any { return hmac.New(sha256.New, p.hashKey) }
	}
	p.class = buildClasses(p)
	return p, nil
}

func builtinIndex(kind string) int {
	for i, k := range builtinKinds {
		if k == kind {
			return i
		}
	}
	return -1
}

func validKind(k string) error {
	if len(k) == 0 || len(k) > 32 {
		return fmt.Errorf("redact: WithDetector: kind %q must be 1 to 32 bytes", k)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("redact: WithDetector: kind %q may hold only lower-case letters, digits and '_'", k)
		}
	}
	return nil
}

var defaultPolicy = sync.OnceValue(func() *Policy {
	p, err := New()
	if err != nil {
		panic(err) // the built-in rules are valid by construction
	}
	return p
})

// Default returns the built-in policy: every built-in key and detector, masks
// rather than hashes. It is built once, on first use, and shared by the
// process, counters included. It reads no environment variable; the observe
// root builds its own policy from OBSERVE_REDACT_KEYS and passes it down.
func Default() *Policy { return defaultPolicy() }

func (p *Policy) self() *Policy {
	if p == nil {
		return Default()
	}
	return p
}

func (p *Policy) enabled(kind int) bool { return p.on&(1<<kind) != 0 }

// IsSensitiveKey reports whether key names a secret: an attribute key, struct
// field name or json tag, map key, header name or query parameter. See the
// package documentation for the rules. It does not allocate.
func (p *Policy) IsSensitiveKey(key string) bool { return p.self().keys.match(key) }

// Counts returns how many values this policy has redacted, by kind: "key" for
// sensitive keys, tagged fields and headers, the built-in detector kinds, and
// the kinds of added detectors. Every kind is present, zero or not, so the
// result can seed a metric's label values. The counters are atomic.
func (p *Policy) Counts() map[string]uint64 {
	p = p.self()
	m := make(map[string]uint64, len(p.kinds))
	for i, k := range p.kinds {
		m[k] = p.counts[i].n.Load()
	}
	return m
}

// Kinds lists the kinds this policy can report in [Policy.Counts], built-ins
// first.
func (p *Policy) Kinds() []string {
	p = p.self()
	return append([]string(nil), p.kinds...)
}

func (p *Policy) count(kind int) { p.counts[kind].n.Add(1) }

// keyMask returns the replacement for a value under a sensitive key: the mask,
// or in hash mode the keyed hash of text when the value has a text form.
func (p *Policy) keyMask(text string, hasText bool) string {
	p.count(kindKey)
	if p.hashKey == nil || !hasText {
		return Mask
	}
	var b strings.Builder
	b.Grow(20)
	b.WriteString("[HASH:")
	p.writeHash(&b, text)
	b.WriteByte(']')
	return b.String()
}

const hexDigits = "0123456789abcdef"

// writeHash writes the first 6 bytes of HMAC-SHA256(hashKey, text) in hex.
func (p *Policy) writeHash(b *strings.Builder, text string) {
	h := p.hmacs.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(text))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	p.hmacs.Put(h)
	for _, c := range sum[:6] {
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
}
