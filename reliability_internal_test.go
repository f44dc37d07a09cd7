package observe

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// A user option that panics makes Init return an error; nothing is started
// and the process goes on.
func TestPanicInOptionIsAnInitError(t *testing.T) {
	t.Setenv("OBSERVE_ADMIN_ADDR", "off")
	boom := Option(func(*config) { panic("option boom") })
	var obs *Observer
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("Init panicked: %v", p)
			}
		}()
		obs, err = Init(context.Background(), WithLogWriter(io.Discard), boom, WithServiceName("x"))
	}()
	if err == nil {
		_ = obs.Shutdown(context.Background())
		t.Fatal("Init accepted a panicking option")
	}
	if obs != nil {
		t.Error("Init returned an Observer along with the error")
	}
	if !strings.Contains(err.Error(), "option boom") {
		t.Errorf("error does not say what happened: %v", err)
	}
	// A panic with an error value keeps it in the chain.
	sentinel := errors.New("sentinel")
	_, err = Init(context.Background(), WithLogWriter(io.Discard), Option(func(*config) { panic(sentinel) }))
	if err == nil || !strings.Contains(err.Error(), "sentinel") {
		t.Errorf("Init with an option panicking with an error: %v", err)
	}
}
