package observe

import (
	"net/http"
	"sort"
	"time"
)

// mountAnomaly adds the anomaly admin endpoints (protected like the status
// page's APIs, so the page can show them with its session cookie):
//
//	GET /debug/anomalies                         active and recent anomalies, profile bursts kept
//	GET /debug/anomalies/profiles/{id}/{type}    a burst's profile (type cpu or goroutines), pprof format
func (o *Observer) mountAnomaly(mux *http.ServeMux) {
	mux.Handle("GET /debug/anomalies", o.protectStatus(false, http.HandlerFunc(o.serveAnomalies)))
	mux.Handle("GET /debug/anomalies/profiles/{id}/{type}", o.protectStatus(false, http.HandlerFunc(o.serveAnomalyProfile)))
}

type anomalyView struct {
	Active   []activeView   `json:"active"`
	Recent   []endedAnomaly `json:"recent"`
	Profiles []burstView    `json:"profiles"`
	Enabled  bool           `json:"enabled"`
}

type activeView struct {
	Anomaly
	Peak    float64 `json:"peak_score"`
	BurstID string  `json:"profile,omitempty"`
}

type burstView struct {
	ID             string            `json:"id"`
	Labels         map[string]string `json:"labels"`
	Start          time.Time         `json:"start"`
	End            time.Time         `json:"end"`
	CPUBytes       int               `json:"cpu_bytes"`
	CPUError       string            `json:"cpu_error,omitempty"`
	GoroutineBytes int               `json:"goroutine_bytes"`
	Pushed         int               `json:"pushed"`
}

func (o *Observer) serveAnomalies(w http.ResponseWriter, r *http.Request) {
	v := anomalyView{Active: []activeView{}, Recent: []endedAnomaly{}, Profiles: []burstView{}}
	if a := o.anomaly; a != nil {
		v.Enabled = true
		a.mu.Lock()
		for _, act := range a.det.Active() {
			if s := a.active[activeKey{act.Key, act.Kind}]; s != nil {
				v.Active = append(v.Active, activeView{Anomaly: s.Anomaly, Peak: act.Score, BurstID: s.burstID})
			}
		}
		v.Recent = append(v.Recent, a.recent...)
		for _, b := range a.bursts {
			v.Profiles = append(v.Profiles, burstView{ID: b.id, Labels: b.Labels, Start: b.Start, End: b.End,
				CPUBytes: len(b.CPU), CPUError: b.CPUErr, GoroutineBytes: len(b.Goroutines), Pushed: b.Pushed})
		}
		a.mu.Unlock()
	}
	// Newest first.
	sort.SliceStable(v.Recent, func(i, j int) bool { return v.Recent[i].Ended.After(v.Recent[j].Ended) })
	writeJSON(w, http.StatusOK, v)
}

func (o *Observer) serveAnomalyProfile(w http.ResponseWriter, r *http.Request) {
	a := o.anomaly
	if a == nil {
		http.Error(w, "anomaly detection is off", http.StatusNotFound)
		return
	}
	id, typ := r.PathValue("id"), r.PathValue("type")
	var data []byte
	found := false
	a.mu.Lock()
	for _, b := range a.bursts {
		if b.id != id {
			continue
		}
		found = true
		switch typ {
		case "cpu":
			data = b.CPU
		case "goroutines", "goroutine":
			data = b.Goroutines
		}
	}
	a.mu.Unlock()
	switch {
	case !found:
		http.Error(w, "no profile burst "+id+" (8 are kept)", http.StatusNotFound)
	case data == nil:
		http.Error(w, "no "+typ+" profile in burst "+id+" (types: cpu, goroutines)", http.StatusNotFound)
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="anomaly-`+id+`-`+typ+`.pb.gz"`)
		_, _ = w.Write(data)
	}
}
