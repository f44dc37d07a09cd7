//go:build !redsample

package observe

// TEMPORARY until internal/redsample lands on main (then deleted).

import "net/http"

type redStats struct {
	Routes  int    `json:"routes"`
	Evicted uint64 `json:"evicted"`
}

func (o *Observer) redStats() *redStats { return nil }

func (o *Observer) serveRED(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"routes": []any{}, "interval_seconds": 10, "note": "RED sampler not merged yet"})
}
