package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The fixture: package a declares the names, b uses some, a's external
// test uses others.
var fixture = map[string]string{
	"go.mod": "module example.com/m\n\ngo 1.24\n",
	"a/a.go": `package a

// Helper is used by nobody outside a.
func Helper() int { return Limit + len(Name) }

// Shared is used by package b.
func Shared() {}

// Limit is used by b's test only.
const Limit = 3

// Name is used by a's external test only.
const Name = "n"

// Size collides with size.
func Size() int { return size }

var size = 1

// T has methods.
type T struct{}

// String satisfies fmt.Stringer.
func (T) String() string { return "t" }

// Count is only used here; see [Helper].
func (T) Count() int { return Helper() }

// Use calls Count.
func Use() int { return T{}.Count() + Size() }
`,
	"a/a_test.go": `package a_test

import (
	"testing"

	"example.com/m/a"
)

func TestName(t *testing.T) {
	if a.Name != "n" || a.Use() == 0 {
		t.Fatal()
	}
}
`,
	"b/b.go": `package b

import "example.com/m/a"

// Run runs.
func Run() { a.Shared() }
`,
	"b/b_test.go": `package b

import (
	"testing"

	"example.com/m/a"
)

func TestLimit(t *testing.T) {
	if a.Limit != 3 {
		t.Fatal()
	}
}
`,
}

func TestUnexport(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tool and type-checks a module")
	}
	dir := t.TempDir()
	for name, src := range fixture {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(t.TempDir(), "unexport")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	names := "a.Helper\na.Shared\na.Limit\na.Name\na.Size\na.T.String\na.T.Count\n"
	run := func(args ...string) string {
		t.Helper()
		list := filepath.Join(dir, "names.txt")
		os.WriteFile(list, []byte(names), 0o644)
		out, err := exec.Command(bin, append([]string{"-root", dir, "-list", list}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("unexport %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// A dry run reports and writes nothing.
	out := run("-n")
	for _, want := range []string{
		"rename   a.Helper", "rename   a.T.Count",
		"kept     a.Shared                                 used by example.com/m/b at b/b.go:6",
		"kept     a.Limit                                  used by example.com/m/b at b/b_test.go:10",
		"kept     a.Name                                   used by the external test a/a_test.go:10",
		"kept     a.Size                                   size is already declared",
		"kept     a.T.String",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run: no %q in\n%s", want, out)
		}
	}
	if read("a/a.go") != fixture["a/a.go"] {
		t.Fatal("the dry run wrote")
	}

	// -xtests moves a's test in, -inline puts Limit's value in b's test.
	out = run("-xtests", "-inline")
	if !strings.Contains(out, "go build and go vet pass") {
		t.Fatalf("no build check:\n%s", out)
	}
	a := read("a/a.go")
	for _, want := range []string{
		"// helper is used by nobody outside a.\nfunc helper() int { return limit + len(name) }",
		"func (T) count() int { return helper() }", "see helper.", "T{}.count()",
		"func Shared()", "func Size()", "func (T) String()",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("a/a.go: no %q in\n%s", want, a)
		}
	}
	if at := read("a/a_test.go"); !strings.HasPrefix(at, "package a\n") || strings.Contains(at, `"example.com/m/a"`) || !strings.Contains(at, "if name != \"n\" || Use() == 0") {
		t.Errorf("a/a_test.go not moved into a:\n%s", at)
	}
	if bt := read("b/b_test.go"); !strings.Contains(bt, "if 3 != 3") || strings.Contains(bt, `"example.com/m/a"`) {
		t.Errorf("b/b_test.go: Limit not inlined or its import left:\n%s", bt)
	}

	// Re-running is a no-op for what was renamed.
	out = run("-xtests", "-inline")
	if !strings.Contains(out, "4 names of the list are unexported already") || !strings.Contains(out, "0 to rename") {
		t.Errorf("second run:\n%s", out)
	}
	cmd := exec.Command("go", "test", "./...")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the fixture's tests after the rename: %v\n%s", err, out)
	}
}
