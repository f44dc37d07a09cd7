package wiring

import (
	"sync"
	"testing"
)

type provider struct{ name string }

func TestSlot(t *testing.T) {
	var s Slot
	if v := s.Load(); v != nil {
		t.Fatalf("empty slot holds %v", v)
	}
	a := &provider{"a"}
	s.Store(a)
	if p, _ := s.Load().(*provider); p != a {
		t.Fatalf("Load = %v, want a", p)
	}
	if s.Load() != any(a) {
		t.Fatal("the stored pointer does not compare equal to itself")
	}
	// A typed nil (tracing off) reads back as a nil of that type.
	s.Store((*provider)(nil))
	if p, ok := s.Load().(*provider); !ok || p != nil {
		t.Fatalf("typed nil read back as %v, %v", p, ok)
	}
	s.Store(nil)
	if v := s.Load(); v != nil {
		t.Fatalf("cleared slot holds %v", v)
	}
}

func TestSlotConcurrent(t *testing.T) {
	var s Slot
	a, b := &provider{"a"}, &provider{"b"}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 1000 {
				if (i+j)%2 == 0 {
					s.Store(a)
				} else {
					s.Store(b)
				}
				if p, _ := s.Load().(*provider); p != a && p != b {
					t.Errorf("Load = %v", p)
					return
				}
			}
		}()
	}
	wg.Wait()
}
