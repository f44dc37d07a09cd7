package observe

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
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

// The admin token check: right answers, and a constant-time comparison of
// fixed-length digests, pinned in the source (a timing test would be noise
// on a shared machine; this fails if the comparison becomes ==, or
// subtle.ConstantTimeCompare on the raw strings, which returns early on a
// length mismatch).
func TestBearerComparedInConstantTime(t *testing.T) {
	const tok = "s3cret-admin"
	for _, c := range []struct {
		header string
		ok     bool
	}{
		{"Bearer " + tok, true}, {"bearer " + tok, true}, {"BEARER  " + tok + " ", true},
		{"Bearer " + tok[:len(tok)-1], false}, {"Bearer " + tok + "x", false}, {"Bearer", false},
		{"Basic " + tok, false}, {tok, false}, {"", false}, {"Bearer ", false},
	} {
		if got := bearerMatches(c.header, tok); got != c.ok {
			t.Errorf("bearerMatches(%q) = %v, want %v", c.header, got, c.ok)
		}
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "admin.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fn *ast.FuncDecl
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == "bearerMatches" {
			fn = d
		}
	}
	if fn == nil {
		t.Fatal("bearerMatches not found in admin.go")
	}
	var calls []string
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok {
					calls = append(calls, x.Name+"."+sel.Sel.Name)
				}
			}
		case *ast.BinaryExpr:
			if (n.Op == token.EQL || n.Op == token.NEQ) && mentions(n, "token") {
				t.Errorf("%s: the token is compared with %s", fset.Position(n.Pos()), n.Op)
			}
		}
		return true
	})
	joined := strings.Join(calls, " ")
	if !strings.Contains(joined, "subtle.ConstantTimeCompare") || strings.Count(joined, "sha256.Sum256") != 2 {
		t.Errorf("bearerMatches must compare SHA-256 digests with subtle.ConstantTimeCompare; it calls %v", calls)
	}
}

func mentions(n ast.Node, name string) bool {
	found := false
	ast.Inspect(n, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && id.Name == name {
			found = true
		}
		return !found
	})
	return found
}

// The errors observe hands back have the configured secrets masked (an
// exporter's error may carry a backend's echo of the request's headers),
// and are still what they wrap for errors.Is.
func TestScrubErrorMasksConfiguredSecrets(t *testing.T) {
	c := &config{
		adminToken:        "admin-s3cret",
		pyroscopePassword: "pyro-pass-42",
	}
	c.tracing.otlp.Headers = map[string]string{"Authorization": "Bearer tok-abcdef123", "x-tenant": "a"}
	c.metrics.otlp.Headers = map[string]string{"x-api-key": "key-77889900"}
	o := &Observer{cfg: c}
	inner := errors.Join(context.DeadlineExceeded, errors.New(
		"failed: 400 (body: got tok-abcdef123 and key-77889900, admin-s3cret, pyro-pass-42; tenant a)"))
	err := o.scrubError(inner)
	for _, s := range []string{"tok-abcdef123", "key-77889900", "admin-s3cret", "pyro-pass-42"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("%q left in %q", s, err.Error())
		}
	}
	if !strings.Contains(err.Error(), "tenant a") || !strings.Contains(err.Error(), "failed: 400") {
		t.Errorf("short values and the rest of the text must stay: %q", err.Error())
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("errors.Is lost the deadline")
	}
	if errors.Unwrap(err) != nil {
		t.Error("the scrubbed error unwraps to the original text")
	}
	clean := errors.New("nothing to hide")
	if o.scrubError(clean) != clean || o.scrubError(nil) != nil {
		t.Error("an error without secrets must come back as is")
	}
}
