package tracing_test

import (
	"testing"

	itracing "github.com/observekit/observe/internal/tracing"
	"github.com/observekit/observe/tracing"
)

func TestInstrumentationNameIsObserves(t *testing.T) {
	if tracing.InstrumentationName != itracing.InstrumentationName {
		t.Fatalf("public %q, observe's spans use %q", tracing.InstrumentationName, itracing.InstrumentationName)
	}
}
