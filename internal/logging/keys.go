package logging

import (
	"hash/maphash"
	"strings"
	"sync/atomic"

	"github.com/observekit/observe/redact"
)

// attrKey is what a line writer knows about one attribute key, worked out
// once: whether the redaction policy counts it as sensitive, whether it is
// one of the line's header fields, and its JSON encoding.
type attrKey struct {
	key       string
	json      []byte // "key": (quoted, escaped, with the colon)
	sensitive bool
	reserved  bool
}

// keyCacheSlots bounds a sink's key cache; keys longer than
// keyCacheMaxLen are worked out every time.
const (
	keyCacheSlots  = 512
	keyCacheMaxLen = 64
)

// keyCache holds the attrKeys of recently written keys. A service writes
// the same few dozen keys over and over: asking the policy about a key and
// escaping it once per key instead of once per attribute is most of what
// redaction cost a line. It is direct-mapped and lock-free: a key goes into
// the slot its hash picks, replacing what was there (counted in evicted),
// so memory stays bounded whatever the keys.
type keyCache struct {
	seed    maphash.Seed
	slots   [keyCacheSlots]atomic.Pointer[attrKey]
	evicted atomic.Uint64
}

// lookup returns what s knows about key, or nil for a key too long to keep.
func (s *sink) lookup(key string) *attrKey {
	if len(key) > keyCacheMaxLen {
		return nil
	}
	c := &s.keys
	slot := &c.slots[maphash.String(c.seed, key)%keyCacheSlots]
	if k := slot.Load(); k != nil && k.key == key {
		return k
	}
	k := &attrKey{key: strings.Clone(key), reserved: isReserved(key)}
	k.json = append(s.enc.appendJSONString(nil, key), ':')
	if s.policy != nil {
		k.sensitive = s.policy.IsSensitiveKey(key)
	}
	if slot.Swap(k) != nil {
		c.evicted.Add(1)
	}
	return k
}

// policyOf returns r as observe's own policy, whose rules the fast path
// knows (a value under a key that is not sensitive changes only if it is a
// string, through Policy.String), or nil for any other Redactor.
func policyOf(r Redactor) *redact.Policy {
	p, _ := r.(*redact.Policy)
	return p
}
