package cpuring

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/pprof/profile"
)

// SpanLabel is the pprof label span↔profile links put on the CPU samples of
// a local root span (profiling.LinkSpans).
const SpanLabel = "span_id"

// slack widens a trace's time range when picking profiles: the runtime
// hands samples to the profile being written when it reads them, a few
// milliseconds after they were taken.
const slack = 200 * time.Millisecond

// ErrNoProfiles means no kept profile overlaps the time range asked for.
var ErrNoProfiles = errors.New("no CPU profile is held for that time range")

// Cut is the profile of a set of spans over a time range.
type Cut struct {
	// Profile holds only the matching samples; nil when none matched.
	Profile *Profile
	// Searched is how many kept profiles overlapped the range; Unreadable
	// how many of those could not be parsed (skipped).
	Searched, Unreadable int
}

// Profile is a merged pprof profile.
type Profile = profile.Profile

// ForSpans returns the samples of the kept profiles overlapping [from, to]
// whose span_id label is one of spanIDs, merged into one profile. With no
// overlapping profile it returns ErrNoProfiles; with profiles but no
// matching sample, a Cut whose Profile is nil.
func (r *Ring) ForSpans(spanIDs map[string]bool, from, to time.Time) (Cut, error) {
	var cut Cut
	if r == nil {
		return cut, ErrNoProfiles
	}
	items := r.overlapping(from.Add(-slack), to.Add(slack))
	cut.Searched = len(items)
	if len(items) == 0 {
		return cut, ErrNoProfiles
	}
	var parts []*profile.Profile
	for _, e := range items {
		p, err := profile.ParseData(e.data)
		if err != nil {
			cut.Unreadable++
			continue
		}
		if p = keepSpans(p, spanIDs); p != nil {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return cut, nil
	}
	merged, err := profile.Merge(parts)
	if err != nil {
		return cut, fmt.Errorf("merging %d CPU profiles: %w", len(parts), err)
	}
	merged.Comments = append(merged.Comments, fmt.Sprintf("CPU samples labelled span_id in %v, from %d profiles between %s and %s",
		sortedKeys(spanIDs), len(parts), from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano)))
	return Cut{Profile: merged, Searched: cut.Searched, Unreadable: cut.Unreadable}, nil
}

// keepSpans drops the samples of other spans; nil when none is left.
func keepSpans(p *profile.Profile, spanIDs map[string]bool) *profile.Profile {
	kept := p.Sample[:0]
	for _, s := range p.Sample {
		for _, v := range s.Label[SpanLabel] {
			if spanIDs[v] {
				kept = append(kept, s)
				break
			}
		}
	}
	if len(kept) == 0 {
		return nil
	}
	p.Sample = kept
	return p.Compact()
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
