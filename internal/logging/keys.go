package logging

import (
	"hash/maphash"
	"strings"
	"sync/atomic"
	"unsafe"

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
	keyCacheBits   = 9
	keyCacheSlots  = 1 << keyCacheBits
	keyCacheMaxLen = 64
)

// keyCache holds the attrKeys of recently written keys. A service writes
// the same few dozen keys over and over: asking the policy about a key and
// escaping it once per key instead of once per attribute is most of what
// redaction cost a line. It is direct-mapped and lock-free: a key goes into
// the slot its content hash picks, replacing what was there (counted in
// evicted), so memory stays bounded whatever the keys.
//
// Keys are mostly constants of the program, the same string data every
// call: byAddr finds them by the address of their bytes first, without
// hashing them (the entry's key is still compared, so an address reused
// for other bytes is a miss, never a wrong answer).
type keyCache struct {
	seed    maphash.Seed
	slots   [keyCacheSlots]atomic.Pointer[attrKey]
	byAddr  [keyCacheSlots]atomic.Pointer[attrKey]
	evicted atomic.Uint64
}

// lookup returns what s knows about key, or nil for a key too long to keep.
func (s *sink) lookup(key string) *attrKey {
	if len(key) > keyCacheMaxLen {
		return nil
	}
	c := &s.keys
	addr := &c.byAddr[(uint64(uintptr(unsafe.Pointer(unsafe.StringData(key))))*0x9e3779b97f4a7c15)>>(64-keyCacheBits)]
	if k := addr.Load(); k != nil && k.key == key {
		return k
	}
	slot := &c.slots[maphash.String(c.seed, key)%keyCacheSlots]
	if k := slot.Load(); k != nil && k.key == key {
		addr.Store(k)
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
	addr.Store(k)
	return k
}

// policyOf returns r as observe's own policy, whose rules the fast path
// knows (a value under a key that is not sensitive changes only if it is a
// string, through Policy.String), or nil for any other Redactor.
func policyOf(r Redactor) *redact.Policy {
	p, _ := r.(*redact.Policy)
	return p
}
