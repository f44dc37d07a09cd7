package logging

import (
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"strings"
	"sync"
)

// errorStack returns the stack trace carried by the error in v, if any: the
// innermost one found along its Unwrap chain. It recognises
//
//   - a StackTrace() method of any result type, the pkg/errors convention
//     (errors.StackTrace, formatted with %+v), and []uintptr program
//     counters (formatted here);
//   - a StackTrace() string or Stack() []byte / Stack() string method.
//
// It never panics: a method that does is treated as carrying no stack.
func errorStack(v slog.Value) (stack string, ok bool) {
	if v.Kind() != slog.KindAny {
		return "", false
	}
	err, isErr := v.Any().(error)
	if !isErr || err == nil {
		return "", false
	}
	defer func() {
		if recover() != nil {
			stack, ok = "", false
		}
	}()
	for i := 0; err != nil && i < 32; i++ {
		if s := stackOf(err); s != "" {
			stack = s
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			// A join: look at the first error carrying a stack.
			errs := u.Unwrap()
			err = nil
			for _, e := range errs {
				if e != nil {
					err = e
					if stackOf(e) != "" {
						break
					}
				}
			}
		default:
			err = nil
		}
	}
	stack = strings.TrimLeft(stack, "\n")
	return stack, stack != ""
}

// stackOf returns the stack carried by err itself (not by errors it wraps).
func stackOf(err error) string {
	switch e := err.(type) {
	case interface{ StackTrace() string }:
		return e.StackTrace()
	case interface{ Stack() []byte }:
		return string(e.Stack())
	case interface{ Stack() string }:
		return e.Stack()
	case interface{ StackTrace() []uintptr }:
		return formatPCs(e.StackTrace())
	}
	// pkg/errors and its forks return a named type (errors.StackTrace) this
	// package cannot name; a constant method name keeps the linker's dead
	// code elimination working.
	rv := reflect.ValueOf(err)
	t := rv.Type()
	if no, _ := noStackMethod.Load(t); no != nil {
		return ""
	}
	m := rv.MethodByName("StackTrace")
	if !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 {
		noStackMethod.Store(t, true)
		return ""
	}
	out := m.Call(nil)[0]
	if pcs, ok := out.Interface().([]uintptr); ok {
		return formatPCs(pcs)
	}
	if out.Kind() == reflect.Slice && out.Len() == 0 {
		return ""
	}
	return fmt.Sprintf("%+v", out.Interface())
}

// noStackMethod caches the error types without a usable StackTrace method,
// so the common case costs a map look-up instead of a method search.
var noStackMethod sync.Map // reflect.Type -> true

func formatPCs(pcs []uintptr) string {
	if len(pcs) == 0 {
		return ""
	}
	var b strings.Builder
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		fmt.Fprintf(&b, "%s\n\t%s:%d\n", f.Function, f.File, f.Line)
		if !more {
			break
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// errorMessage returns the message of the error in v, containing a panic in
// its Error method.
func errorMessage(v slog.Value) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprintf("!PANIC in Error: %v", r)
		}
	}()
	if err, ok := v.Any().(error); ok && err != nil {
		return err.Error()
	}
	return v.String()
}
