package logging

import (
	"sync/atomic"
	"time"
)

// The time field of every line, in RFC 3339 with nanoseconds, UTC. Lines
// written within one second share everything up to the seconds, so that
// part is formatted once per second and kept; only the fraction is
// written per line. The result is byte for byte what
// t.UTC().AppendFormat(b, time.RFC3339Nano) gives (TestAppendLineTime).

// secondPrefix is "2006-01-02T15:04:05" for one Unix second.
type secondPrefix struct {
	sec    int64
	prefix [19]byte
}

var lastSecond atomic.Pointer[secondPrefix]

// appendLineTime appends t as time.RFC3339Nano in UTC.
func appendLineTime(b []byte, t time.Time) []byte {
	sec := t.Unix()
	p := lastSecond.Load()
	if p == nil || p.sec != sec {
		u := t.UTC()
		if y := u.Year(); y < 1000 || y > 9999 {
			return u.AppendFormat(b, time.RFC3339Nano)
		}
		p = &secondPrefix{sec: sec}
		u.AppendFormat(p.prefix[:0], "2006-01-02T15:04:05")
		lastSecond.Store(p)
	}
	b = append(b, p.prefix[:]...)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, 'Z')
}
