// Command exportcount counts the exported identifiers of the module's
// packages (not bench/, not tests) and lists those no other package of the
// module uses, from type-checked source: the input for narrowing the API.
//
//	go run ./internal/tools/exportcount            # counts per package and the total
//	go run ./internal/tools/exportcount -unused    # … and the names without a user outside their package
//
// An identifier is a package-level exported const, var, func or type, or an
// exported method of an exported type (struct fields are not counted).
// "Used" means referenced by a non-test file of another package of the
// module, examples/ and cmd/ included ("code" below); "tests" counts the
// names referenced only by other packages' tests (internal/integration's,
// external _test packages, other packages' in-package tests). A method
// reached only through an interface counts as unused.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

type listed struct {
	ImportPath   string
	Dir          string
	Export       string
	ForTest      string
	GoFiles      []string
	TestGoFiles  []string
	XTestGoFiles []string
	Module       *struct{ Path string }
}

func main() {
	unused := flag.Bool("unused", false, "list the exported names no other package uses")
	flag.Parse()
	out, err := exec.Command("go", "list", "-deps", "-test", "-export", "-json=ImportPath,Dir,Export,ForTest,GoFiles,TestGoFiles,XTestGoFiles,Module", "./...").Output()
	if err != nil {
		fail(err)
	}
	exports := map[string]string{}
	var own []listed
	mod := ""
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			fail(err)
		}
		if p.ForTest != "" || strings.Contains(p.ImportPath, " ") || strings.HasSuffix(p.ImportPath, ".test") {
			continue // test variants: the plain package's export data serves
		}
		exports[p.ImportPath] = p.Export
		if mod == "" {
			mod = modulePath()
		}
		if p.Module != nil && p.Module.Path == mod && !strings.Contains(p.ImportPath, "/internal/tools/") {
			own = append(own, p)
		}
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f := exports[path]
		if f == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
	type pkgInfo struct {
		path  string
		names map[types.Object]string // exported object → display name
	}
	var pkgs []pkgInfo
	used := map[types.Object]bool{}
	byKey := map[string]types.Object{} // "pkg.Name" → object of its own check
	// check type-checks files as package path and records which objects
	// of other packages they use, in keys; it returns the package.
	check := func(path, dir string, names []string, keys map[string]bool) *types.Package {
		var files []*ast.File
		for _, f := range names {
			af, err := parser.ParseFile(fset, filepath.Join(dir, f), nil, 0)
			if err != nil {
				fail(err)
			}
			files = append(files, af)
		}
		info := &types.Info{Uses: map[*ast.Ident]types.Object{}, Selections: map[*ast.SelectorExpr]*types.Selection{}}
		// Test files may use what only a test build exports: errors are
		// tolerated, what was resolved still counts.
		tp, _ := (&types.Config{Importer: imp, Error: func(error) {}}).Check(path, fset, files, info)
		mark := func(obj types.Object) {
			if obj == nil || obj.Pkg() == nil || obj.Pkg().Path() == strings.TrimSuffix(path, "_test") {
				return
			}
			keys[objectKey(obj)] = true
		}
		for _, obj := range info.Uses {
			mark(obj)
		}
		for _, sel := range info.Selections {
			mark(sel.Obj())
		}
		return tp
	}
	testKeys := map[string]bool{}
	for _, p := range own {
		tp := check(p.ImportPath, p.Dir, p.GoFiles, usedKeys)
		if len(p.TestGoFiles) > 0 {
			check(p.ImportPath, p.Dir, append(append([]string(nil), p.GoFiles...), p.TestGoFiles...), testKeys)
		}
		if len(p.XTestGoFiles) > 0 {
			check(p.ImportPath+"_test", p.Dir, p.XTestGoFiles, testKeys)
		}
		if len(p.GoFiles) == 0 {
			continue
		}
		pi := pkgInfo{path: p.ImportPath, names: map[types.Object]string{}}
		scope := tp.Scope()
		for _, n := range scope.Names() {
			obj := scope.Lookup(n)
			if !obj.Exported() {
				continue
			}
			pi.names[obj] = n
			byKey[objectKey(obj)] = obj
			if tn, ok := obj.(*types.TypeName); ok && !tn.IsAlias() {
				if named, ok := tn.Type().(*types.Named); ok {
					for i := 0; i < named.NumMethods(); i++ {
						m := named.Method(i)
						if m.Exported() {
							pi.names[m] = n + "." + m.Name()
							byKey[objectKey(m)] = m
						}
					}
				}
			}
		}
		pkgs = append(pkgs, pi)
	}
	testUsed := map[types.Object]bool{}
	for k := range testKeys {
		if obj := byKey[k]; obj != nil {
			testUsed[obj] = true
		}
	}
	for k := range usedKeys {
		if obj := byKey[k]; obj != nil {
			used[obj] = true
		}
	}
	total, public := 0, 0
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].path < pkgs[j].path })
	fmt.Println("exported  used by code  by tests only  by nobody  package")
	for _, p := range pkgs {
		var tests, none []string
		for obj, name := range p.names {
			switch {
			case used[obj]:
			case testUsed[obj]:
				tests = append(tests, name)
			default:
				none = append(none, name)
			}
		}
		sort.Strings(tests)
		sort.Strings(none)
		total += len(p.names)
		rel := strings.TrimPrefix(strings.TrimPrefix(p.path, mod), "/")
		if rel == "" {
			rel = "(root)"
		}
		if !strings.HasPrefix(rel, "internal/") && !strings.Contains(rel, "/internal/") {
			public += len(p.names)
		}
		fmt.Printf("%8d  %12d  %13d  %9d  %s\n", len(p.names), len(p.names)-len(tests)-len(none), len(tests), len(none), rel)
		if *unused {
			if len(tests) > 0 {
				fmt.Printf("    by tests only: %s\n", strings.Join(tests, " "))
			}
			if len(none) > 0 {
				fmt.Printf("    by nobody:     %s\n", strings.Join(none, " "))
			}
		}
	}
	fmt.Printf("%8d exported in total, %d outside internal/ directories\n", total, public)
}

var usedKeys = map[string]bool{}

// objectKey names obj across type-checks: "path.Name" or, for a method,
// "path.Type.Method".
func objectKey(obj types.Object) string {
	key := obj.Pkg().Path() + "." + obj.Name()
	if f, ok := obj.(*types.Func); ok {
		if sig, ok := f.Type().(*types.Signature); ok && sig.Recv() != nil {
			rt := sig.Recv().Type()
			if ptr, ok := rt.(*types.Pointer); ok {
				rt = ptr.Elem()
			}
			if named, ok := rt.(*types.Named); ok {
				key = obj.Pkg().Path() + "." + named.Obj().Name() + "." + obj.Name()
			}
		}
	}
	return key
}

func modulePath() string {
	out, err := exec.Command("go", "list", "-m").Output()
	if err != nil {
		fail(err)
	}
	return strings.TrimSpace(string(out))
}

func fail(err error) {
	if ee, ok := err.(*exec.ExitError); ok {
		os.Stderr.Write(ee.Stderr)
	}
	fmt.Fprintln(os.Stderr, "exportcount:", err)
	os.Exit(1)
}
