package instance

import (
	"testing"

	"github.com/observekit/observe/internal/logging"
)

// owner embeds a Link as observe.Observer does.
type owner struct{ Link }

func TestOf(t *testing.T) {
	if s := Of(nil); s == nil || s.Tracing != nil || s.Metrics != nil || s.Levels != nil || s.Profiler != nil {
		t.Fatalf("Of(nil) = %+v, want an empty Set", s)
	}
	o := &owner{}
	if s := Of(o); s == nil || s.Levels != nil {
		t.Fatalf("unbound: %+v, want an empty Set", s)
	}
	lc := logging.NewLevelController(0)
	defer lc.Close()
	set := &Set{Levels: lc}
	Bind(&o.Link, set)
	if Of(o) != set {
		t.Fatal("Of does not return the bound Set")
	}
}
