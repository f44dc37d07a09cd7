// Command unexport renames exported identifiers of the module to unexported
// ones, with every use across the module's packages and tests (and the
// modules nested in it, such as bench/), from type-checked source. It is the
// tool for narrowing the API: re-run it with its list after a merge and the
// names that gained a user outside their package stay exported.
//
// It lives in a module of its own (it needs golang.org/x/tools/go/packages,
// which the library does not require); run it from the repository root:
//
//	go run -C internal/tools/unexport . -root ../../.. -list names.txt [-n] [-strict] [-xtests] [-inline]
//	go run -C internal/tools/unexport . -root ../../.. tracing.SetCurrent tracing.TailSampler.Kept
//
// A name is "pkg.Name" or "pkg.Type.Method", pkg being the package's path
// relative to the module ("tracing", "internal/batch") or its full import
// path; the root package is the module path's last element ("observe").
// An optional second field on a list line gives the new name (default: the
// leading capitals lowered, HTTPServer → httpServer). '#' starts a comment.
//
// A name is kept exported, and reported, when
//   - it is used by another package (external _test packages included: move
//     such a test into the package, or keep the name), or by a nested module;
//   - the new name would collide: a keyword or predeclared name, another
//     declaration of the package (its tests included), an import name of one
//     of its files, a local name in scope at a use, a field or method of the
//     same type or of a type that promotes it, or another name of the list;
//   - it is a method that satisfies an interface (of any package in the
//     build, or one that the standard library checks dynamically such as
//     String, Error, Unwrap).
//
// With -xtests, external test files (examples excepted) move into their
// package when their uses are what keeps a name exported and the move is
// safe (no import cycle, no name clash, no declarations shared with a file
// that stays). With -inline, a listed constant's uses in other packages'
// tests become its value (a test then pins the literal name or number).
//
// With -strict any kept name is an error and nothing is written. After
// writing, the tool runs `go build ./...` and `go vet ./...` in the module
// and in each nested module; if either fails, every file is restored.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/constant"
	"go/format"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/tools/go/ast/astutil"
	"golang.org/x/tools/go/packages"
)

// target is one name of the list.
type target struct {
	spec    string // as written in the list
	key     string // objectKey form: importpath.Name or importpath.Type.Method
	pkgPath string
	typ     string // receiver type for a method, else ""
	name    string
	newName string

	obj      types.Object     // in the plain (non-test) package
	kept     []string         // reasons it stays exported
	xtestUse []token.Position // uses in the package's external tests
	inlines  []edit           // qualified uses in other packages' tests, replaced by the constant's value
	xinline  map[string]edit  // the same for uses in external tests, by position, if they stay external
	edits    []edit
}

// edit replaces the bytes [off, off+len(old)) of file with new.
type edit struct {
	file    string
	off     int
	old     string
	new     string
	inlined string // for a constant replaced by its value: the import path it came from
}

// literal returns the source form of a constant's value, for the constants
// whose literal has the constant's type: untyped ones, and string, int,
// float64, bool and rune ones.
func literal(obj types.Object) (string, bool) {
	c, ok := obj.(*types.Const)
	if !ok {
		return "", false
	}
	b, ok := c.Type().(*types.Basic)
	if !ok {
		return "", false
	}
	v := c.Val()
	switch {
	case v.Kind() == constant.String && (b.Kind() == types.String || b.Kind() == types.UntypedString):
		return strconv.Quote(constant.StringVal(v)), true
	case v.Kind() == constant.Bool && (b.Kind() == types.Bool || b.Kind() == types.UntypedBool):
		return v.String(), true
	case v.Kind() == constant.Int && (b.Kind() == types.Int || b.Kind() == types.UntypedInt):
		return v.ExactString(), true
	case b.Kind() == types.Float64 || b.Kind() == types.UntypedFloat:
		f, _ := constant.Float64Val(v)
		lit := strconv.FormatFloat(f, 'g', -1, 64)
		if !strings.ContainsAny(lit, ".e") {
			lit += ".0"
		}
		return lit, true
	}
	return "", false
}

// dropUnusedImports removes from src the imports that inlined constants
// came from when nothing else in the file uses them.
func dropUnusedImports(src []byte, es []edit) ([]byte, error) {
	paths := map[string]bool{}
	for _, e := range es {
		if e.inlined != "" {
			paths[e.inlined] = true
		}
	}
	if len(paths) == 0 {
		return src, nil
	}
	fs := token.NewFileSet()
	f, err := parser.ParseFile(fs, "", src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	changed := false
	for path := range paths {
		for _, imp := range f.Imports {
			if strings.Trim(imp.Path.Value, `"`) != path {
				continue
			}
			name := path[strings.LastIndex(path, "/")+1:]
			if imp.Name != nil {
				name = imp.Name.Name
			}
			used := false
			ast.Inspect(f, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == name {
						used = true
					}
				}
				return !used
			})
			if !used {
				if imp.Name != nil {
					astutil.DeleteNamedImport(fs, f, name, path)
				} else {
					astutil.DeleteImport(fs, f, path)
				}
				changed = true
			}
		}
	}
	if !changed {
		return src, nil
	}
	var buf bytes.Buffer
	if err := format.Node(&buf, fs, f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var (
	root    = flag.String("root", ".", "the module's root directory")
	list    = flag.String("list", "", "file of names to unexport, one per line")
	dryRun  = flag.Bool("n", false, "report only; write nothing")
	strict  = flag.Bool("strict", false, "fail, writing nothing, if any name must stay exported")
	nested  = flag.String("nested", "bench", "comma-separated nested modules (directories under -root) whose uses count and are rewritten")
	xtests  = flag.Bool("xtests", false, "move external tests (not examples) into their package when that is all that keeps a name exported")
	verbose = flag.Bool("v", false, "list every reason a name is kept")
	inline  = flag.Bool("inline", false, "in other packages' tests (and external tests that stay), replace a listed constant by its value")
	noCheck = flag.Bool("nocheck", false, "skip the build and vet after writing")
)

func main() {
	flag.Parse()
	if !filepath.IsAbs(*list) && *list != "" {
		// -list is relative to where the user ran `go run -C`, which is -root's parent chain;
		// accept it relative to the current directory first, then to -root.
		if _, err := os.Stat(*list); err != nil {
			*list = filepath.Join(*root, *list)
		}
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		fail(err)
	}
	modPath := goOutput(absRoot, "list", "-m")
	specs, err := readSpecs(*list, flag.Args())
	if err != nil {
		fail(err)
	}
	if len(specs) == 0 {
		fail(fmt.Errorf("no names given (-list FILE or arguments)"))
	}

	fset := token.NewFileSet()
	mode := packages.NeedName | packages.NeedFiles | packages.NeedCompiledGoFiles | packages.NeedImports |
		packages.NeedTypes | packages.NeedTypesInfo | packages.NeedSyntax | packages.NeedModule
	load := func(dir string) []*packages.Package {
		pkgs, err := packages.Load(&packages.Config{Mode: mode, Dir: dir, Tests: true, Fset: fset}, "./...")
		if err != nil {
			fail(err)
		}
		var bad []string
		packages.Visit(pkgs, nil, func(p *packages.Package) {
			for _, e := range p.Errors {
				bad = append(bad, e.Error())
			}
		})
		if len(bad) > 0 {
			fail(fmt.Errorf("the code does not type-check as it is; fix it first:\n  %s", strings.Join(bad, "\n  ")))
		}
		return pkgs
	}
	own := load(absRoot)
	var others []*packages.Package // nested modules: users, never declarers
	var nestedDirs []string
	for _, d := range strings.Split(*nested, ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		dir := filepath.Join(absRoot, d)
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
			continue
		}
		nestedDirs = append(nestedDirs, dir)
		others = append(others, load(dir)...)
	}

	targets := make([]*target, 0, len(specs))
	for _, s := range specs {
		t, err := parseSpec(s, modPath)
		if err != nil {
			fail(err)
		}
		targets = append(targets, t)
	}
	byKey := map[string]*target{}
	for _, t := range targets {
		if byKey[t.key] != nil {
			fail(fmt.Errorf("%s is listed twice", t.spec))
		}
		byKey[t.key] = t
	}

	// The declaring objects, from the plain packages.
	plain := map[string]*packages.Package{}
	variants := map[string][]*packages.Package{} // import path → plain and test variants (not _test)
	for _, p := range own {
		if p.Module == nil || p.Module.Path != modPath || strings.HasSuffix(p.PkgPath, ".test") {
			continue
		}
		if p.ID == p.PkgPath {
			plain[p.PkgPath] = p
		}
		if !strings.HasSuffix(p.PkgPath, "_test") {
			variants[p.PkgPath] = append(variants[p.PkgPath], p)
		}
	}
	done := 0
	for _, t := range targets {
		p := plain[t.pkgPath]
		if p == nil {
			fail(fmt.Errorf("%s: no package %s in the module", t.spec, t.pkgPath))
		}
		if isDone(p.Types, t) {
			done++
			continue // renamed by an earlier run: the list stays re-runnable
		}
		obj := p.Types.Scope().Lookup(t.typ)
		if t.typ == "" {
			obj = p.Types.Scope().Lookup(t.name)
		} else if tn, ok := obj.(*types.TypeName); ok {
			obj, _, _ = types.LookupFieldOrMethod(tn.Type(), true, p.Types, t.name)
			if f, ok := obj.(*types.Func); !ok || objectKey(f) != t.key {
				obj = nil // a field, or a promoted method declared elsewhere
			}
		} else {
			obj = nil
		}
		if obj == nil {
			fail(fmt.Errorf("%s: not declared in %s", t.spec, t.pkgPath))
		}
		if !obj.Exported() {
			fail(fmt.Errorf("%s: already unexported", t.spec))
		}
		t.obj = obj
	}

	if done > 0 {
		fmt.Printf("%d names of the list are unexported already\n", done)
		var rest []*target
		for _, t := range targets {
			if t.obj != nil {
				rest = append(rest, t)
			} else {
				delete(byKey, t.key)
			}
		}
		targets = rest
	}
	ifaces := interfaceMethods(own, others)
	newNames := map[string]*target{} // pkg + "." + [type.] newName
	for _, t := range targets {
		scopeKey := t.pkgPath + "." + t.typ + "." + t.newName
		if o := newNames[scopeKey]; o != nil {
			t.kept = append(t.kept, fmt.Sprintf("new name %s is also %s's new name", t.newName, o.spec))
		}
		newNames[scopeKey] = t
		if token.IsKeyword(t.newName) || types.Universe.Lookup(t.newName) != nil {
			t.kept = append(t.kept, fmt.Sprintf("new name %s is a Go keyword or predeclared identifier (give another on the list line)", t.newName))
		}
		if !token.IsKeyword(t.newName) && (!token.IsIdentifier(t.newName) || token.IsExported(t.newName)) {
			t.kept = append(t.kept, fmt.Sprintf("new name %q is not an unexported identifier", t.newName))
		}
		for _, p := range variants[t.pkgPath] {
			if t.typ == "" {
				if o := p.Types.Scope().Lookup(t.newName); o != nil {
					t.kept = append(t.kept, fmt.Sprintf("%s is already declared at %s", t.newName, fset.Position(o.Pos())))
				}
				for _, f := range p.Syntax {
					if o := p.TypesInfo.Scopes[f].Lookup(t.newName); o != nil {
						t.kept = append(t.kept, fmt.Sprintf("%s is an import name at %s", t.newName, fset.Position(o.Pos())))
					}
				}
			} else if tn, ok := p.Types.Scope().Lookup(t.typ).(*types.TypeName); ok {
				if o, _, _ := types.LookupFieldOrMethod(tn.Type(), true, p.Types, t.newName); o != nil {
					t.kept = append(t.kept, fmt.Sprintf("%s.%s is already declared at %s", t.typ, t.newName, fset.Position(o.Pos())))
				}
			}
		}
		if t.typ != "" {
			if why := ifaces.satisfies(t.obj.(*types.Func)); why != "" {
				t.kept = append(t.kept, why)
			}
		}
	}

	// Every identifier that declares or uses a target, in every package
	// variant of the module and of the nested modules.
	seen := map[string]bool{} // file:offset: a file is in several variants
	visit := func(p *packages.Package, nestedMod bool) {
		if p.TypesInfo == nil || strings.HasSuffix(p.PkgPath, ".test") {
			return
		}
		pkgPath := p.Types.Path()
		selOf := map[*ast.Ident]*ast.SelectorExpr{}
		for _, f := range p.Syntax {
			ast.Inspect(f, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					selOf[sel.Sel] = sel
				}
				return true
			})
		}
		// inlineEdit replaces the qualified use id of t's constant by its
		// value, in a test file, if -inline and the constant has a literal.
		inlineEdit := func(t *target, id *ast.Ident, pos token.Position) (edit, bool) {
			sel := selOf[id]
			if !*inline || sel == nil || !strings.HasSuffix(pos.Filename, "_test.go") || strings.HasSuffix(pos.Filename, "example_test.go") {
				return edit{}, false
			}
			x, ok := sel.X.(*ast.Ident)
			lit, ok2 := literal(t.obj)
			if !ok || !ok2 {
				return edit{}, false
			}
			sp := fset.Position(sel.Pos())
			return edit{file: sp.Filename, off: sp.Offset, old: x.Name + "." + id.Name, new: lit, inlined: t.pkgPath}, true
		}
		record := func(id *ast.Ident, obj types.Object, def bool) {
			t := byKey[keyOf(obj)]
			if t == nil || id.Name != t.name {
				return
			}
			pos := fset.Position(id.Pos())
			if seen[pos.String()] {
				return
			}
			seen[pos.String()] = true
			switch {
			case nestedMod:
				if e, ok := inlineEdit(t, id, pos); ok {
					t.inlines = append(t.inlines, e)
					return
				}
				t.kept = append(t.kept, fmt.Sprintf("used by the nested module at %s", rel(absRoot, pos)))
			case pkgPath == t.pkgPath+"_test":
				t.xtestUse = append(t.xtestUse, pos)
				if e, ok := inlineEdit(t, id, pos); ok {
					if t.xinline == nil {
						t.xinline = map[string]edit{}
					}
					t.xinline[pos.String()] = e
				}
			case pkgPath != t.pkgPath:
				if e, ok := inlineEdit(t, id, pos); ok {
					t.inlines = append(t.inlines, e)
					return
				}
				t.kept = append(t.kept, fmt.Sprintf("used by %s at %s", pkgPath, rel(absRoot, pos)))
			default:
				if !def {
					// A local name in scope at the use would capture it.
					if t.typ == "" {
						if s := p.Types.Scope().Innermost(id.Pos()); s != nil {
							if _, o := s.LookupParent(t.newName, id.Pos()); o != nil && o.Parent() != p.Types.Scope() && o.Parent() != types.Universe {
								t.kept = append(t.kept, fmt.Sprintf("%s is declared at %s, in scope at the use %s", t.newName, rel(absRoot, fset.Position(o.Pos())), rel(absRoot, pos)))
							}
						}
					}
				}
			}
			t.edits = append(t.edits, edit{file: pos.Filename, off: pos.Offset, old: t.name, new: t.newName})
		}
		for id, obj := range p.TypesInfo.Defs {
			if obj != nil {
				record(id, obj, true)
			}
		}
		for id, obj := range p.TypesInfo.Uses {
			record(id, obj, false)
		}
		// A promoted method reached through a type that has (or gains) a
		// field or method of the new name.
		for sel, s := range p.TypesInfo.Selections {
			t := byKey[keyOf(s.Obj())]
			if t == nil || t.typ == "" {
				continue
			}
			if o, _, _ := types.LookupFieldOrMethod(s.Recv(), true, t.obj.Pkg(), t.newName); o != nil {
				t.kept = append(t.kept, fmt.Sprintf("%s has %s, at the use %s", s.Recv(), t.newName, rel(absRoot, fset.Position(sel.Sel.Pos()))))
			}
		}
		// Doc comments: the declaration's first word and [Name] links in
		// the declaring package.
		if strings.TrimSuffix(pkgPath, "_test") == pkgPath {
			for _, f := range p.Syntax {
				docEdits(fset, f, pkgPath, byKey, seen)
			}
		}
	}
	for _, p := range own {
		if p.Module != nil && p.Module.Path == modPath {
			visit(p, false)
		}
	}
	for _, p := range others {
		if p.Module != nil && p.Module.Path != modPath {
			visit(p, true)
		}
	}

	// Uses by a package's own external tests: move those tests into the
	// package (-xtests), or keep the name.
	moved := map[string]bool{} // files converted to in-package tests
	if *xtests {
		moved = convertXTests(fset, absRoot, own, targets)
	}
	for _, t := range targets {
		for _, pos := range t.xtestUse {
			if moved[pos.Filename] {
				continue
			}
			if e, ok := t.xinline[pos.String()]; ok {
				t.inlines = append(t.inlines, e)
				continue
			}
			why := fmt.Sprintf("used by the external test %s (move it into package %s, or keep the name)", rel(absRoot, pos), t.pkgPath[strings.LastIndex(t.pkgPath, "/")+1:])
			if strings.HasSuffix(pos.Filename, "example_test.go") {
				why = fmt.Sprintf("used by the example %s", rel(absRoot, pos))
			}
			t.kept = append(t.kept, why)
		}
	}

	// A type stays exported while a name that stays exported mentions it;
	// keeping one may keep another: repeat until nothing changes.
	for changed := true; changed; {
		changed = false
		for _, t := range targets {
			tn, ok := t.obj.(*types.TypeName)
			if !ok || len(t.kept) > 0 {
				continue
			}
			for _, w := range exposedBy(tn, byKey) {
				t.kept = append(t.kept, fmt.Sprintf("the exported %s mentions it (list that too, or keep this)", w))
				changed = true
			}
		}
	}

	// Report, then write what may be renamed.
	var apply, kept []*target
	for _, t := range targets {
		if len(t.kept) > 0 {
			kept = append(kept, t)
		} else {
			apply = append(apply, t)
		}
	}
	for _, t := range kept {
		why := dedupe(t.kept)
		fmt.Printf("kept     %-40s %s\n", t.spec, why[0])
		for i, r := range why[1:] {
			if i == 3 && !*verbose {
				fmt.Printf("         %-40s (%d more; -v lists them)\n", "", len(why)-4)
				break
			}
			fmt.Printf("         %-40s %s\n", "", r)
		}
	}
	for _, t := range apply {
		fmt.Printf("rename   %-40s → %s (%d places)\n", t.spec, t.newName, len(t.edits))
	}
	ninl := 0
	for _, t := range apply {
		ninl += len(t.inlines)
	}
	fmt.Printf("%d to rename, %d kept exported", len(apply), len(kept))
	if ninl > 0 {
		fmt.Printf("; %d uses in tests replaced by the constant's value", ninl)
	}
	fmt.Println()
	if *strict && len(kept) > 0 {
		fail(fmt.Errorf("-strict: %d names must stay exported; nothing written", len(kept)))
	}
	if *dryRun || len(apply) == 0 {
		return
	}
	byFile := map[string][]edit{}
	for _, t := range apply {
		for _, e := range t.edits {
			byFile[e.file] = append(byFile[e.file], e)
		}
	}
	for _, t := range apply {
		for _, e := range t.inlines {
			byFile[e.file] = append(byFile[e.file], e)
		}
	}
	for _, e := range xtestEdits {
		byFile[e.file] = append(byFile[e.file], e)
	}
	for _, e := range pendingDocEdits {
		if t := byKey[e.key]; t != nil && len(t.kept) == 0 {
			byFile[e.file] = append(byFile[e.file], e.edit)
		}
	}
	backup := map[string][]byte{}
	restore := func() {
		for f, b := range backup {
			os.WriteFile(f, b, 0o644)
		}
	}
	for f, es := range byFile {
		src, err := os.ReadFile(f)
		if err != nil {
			restore()
			fail(err)
		}
		backup[f] = src
		out, err := applyEdits(src, es)
		if err == nil {
			out, err = dropUnusedImports(out, es)
		}
		if err == nil {
			out, err = format.Source(out)
		}
		if err != nil {
			restore()
			fail(fmt.Errorf("%s: %v; nothing written", f, err))
		}
		if err := os.WriteFile(f, out, 0o644); err != nil {
			restore()
			fail(err)
		}
	}
	fmt.Printf("%d files rewritten\n", len(byFile))
	if *noCheck {
		return
	}
	for _, dir := range append([]string{absRoot}, nestedDirs...) {
		for _, args := range [][]string{{"build", "./..."}, {"vet", "./..."}} {
			cmd := exec.Command("go", args...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				restore()
				fail(fmt.Errorf("go %s in %s failed after the rename; every file restored:\n%s", strings.Join(args, " "), dir, out))
			}
		}
	}
	fmt.Println("go build and go vet pass")
}

// exposedBy lists the names of tn's package that stay exported (not on the
// list) and mention tn in their type: a signature, a variable's type, an
// exported field or an alias. Unexporting tn would leave them showing a
// type go doc cannot show.
func exposedBy(tn *types.TypeName, byKey map[string]*target) []string {
	var out []string
	pkg := tn.Pkg()
	mentions := func(t types.Type) bool {
		seen := map[types.Type]bool{}
		var walk func(t types.Type) bool
		walk = func(t types.Type) bool {
			if t == nil || seen[t] {
				return false
			}
			seen[t] = true
			switch t := t.(type) {
			case *types.Named:
				if t.Obj() == tn {
					return true
				}
				if args := t.TypeArgs(); args != nil {
					for i := 0; i < args.Len(); i++ {
						if walk(args.At(i)) {
							return true
						}
					}
				}
				return false
			case *types.Alias:
				return walk(types.Unalias(t))
			case *types.Pointer:
				return walk(t.Elem())
			case *types.Slice:
				return walk(t.Elem())
			case *types.Array:
				return walk(t.Elem())
			case *types.Map:
				return walk(t.Key()) || walk(t.Elem())
			case *types.Chan:
				return walk(t.Elem())
			case *types.Signature:
				return walk(t.Params()) || walk(t.Results())
			case *types.Tuple:
				for i := 0; i < t.Len(); i++ {
					if walk(t.At(i).Type()) {
						return true
					}
				}
			case *types.Struct:
				for i := 0; i < t.NumFields(); i++ {
					if f := t.Field(i); f.Exported() && walk(f.Type()) {
						return true
					}
				}
			case *types.Interface:
				for i := 0; i < t.NumExplicitMethods(); i++ {
					if m := t.ExplicitMethod(i); m.Exported() && walk(m.Type()) {
						return true
					}
				}
			}
			return false
		}
		return walk(t)
	}
	listed := func(o types.Object) bool { t := byKey[objectKey(o)]; return t != nil && len(t.kept) == 0 }
	for _, n := range pkg.Scope().Names() {
		o := pkg.Scope().Lookup(n)
		if !o.Exported() || o == tn || listed(o) {
			continue
		}
		if otn, ok := o.(*types.TypeName); ok {
			if otn.IsAlias() {
				if mentions(otn.Type()) {
					out = append(out, n)
				}
				continue
			}
			if mentions(otn.Type().Underlying()) {
				out = append(out, n)
			}
			if named, ok := otn.Type().(*types.Named); ok {
				for i := 0; i < named.NumMethods(); i++ {
					if m := named.Method(i); m.Exported() && !listed(m) && mentions(m.Type()) {
						out = append(out, n+"."+m.Name())
					}
				}
			}
			continue
		}
		if mentions(o.Type()) {
			out = append(out, n)
		}
	}
	return out
}

// isDone reports whether t's old name is gone from pkg and its new name is
// there: an earlier run renamed it.
func isDone(pkg *types.Package, t *target) bool {
	lookup := func(name string) types.Object {
		if t.typ == "" {
			return pkg.Scope().Lookup(name)
		}
		tn, ok := pkg.Scope().Lookup(t.typ).(*types.TypeName)
		if !ok {
			return nil
		}
		o, _, _ := types.LookupFieldOrMethod(tn.Type(), true, pkg, name)
		return o
	}
	return lookup(t.name) == nil && lookup(t.newName) != nil
}

// keyOf is objectKey for the objects a target can be: package-level names,
// methods, and an embedded field named after a target type.
func keyOf(obj types.Object) string {
	if obj == nil || obj.Pkg() == nil {
		return ""
	}
	switch o := obj.(type) {
	case *types.Var:
		if !o.IsField() || !o.Embedded() {
			if o.Parent() != o.Pkg().Scope() {
				return ""
			}
			return objectKey(o)
		}
		t := o.Type()
		if p, ok := t.(*types.Pointer); ok {
			t = p.Elem()
		}
		if n, ok := t.(*types.Named); ok && n.Obj().Pkg() != nil {
			return objectKey(n.Obj())
		}
		return ""
	case *types.Func:
		if sig := o.Type().(*types.Signature); sig.Recv() == nil && o.Parent() != o.Pkg().Scope() {
			return ""
		}
		return objectKey(o)
	case *types.PkgName, *types.Label:
		return ""
	default:
		if obj.Parent() != obj.Pkg().Scope() {
			return ""
		}
		return objectKey(obj)
	}
}

// objectKey names obj across type-checks (and test variants):
// "path.Name" or, for a method, "path.Type.Method".
func objectKey(obj types.Object) string {
	path := obj.Pkg().Path()
	key := path + "." + obj.Name()
	if f, ok := obj.(*types.Func); ok {
		if sig, ok := f.Type().(*types.Signature); ok && sig.Recv() != nil {
			rt := sig.Recv().Type()
			if ptr, ok := rt.(*types.Pointer); ok {
				rt = ptr.Elem()
			}
			switch n := rt.(type) {
			case *types.Named:
				key = path + "." + n.Obj().Name() + "." + obj.Name()
			case *types.Interface:
				return "" // a method of an unnamed interface
			}
		}
	}
	return key
}

type docEdit struct {
	key string
	edit
}

var pendingDocEdits []docEdit

var linkRE = regexp.MustCompile(`\[([A-Z][A-Za-z0-9_]*)(?:\.([A-Z][A-Za-z0-9_]*))?\]`)

// docEdits records, for file f of package pkgPath, the renames of a
// target's name as the first word of its doc comment and in [Name] and
// [Type.Name] doc links (which become plain words: a link to an unexported
// name does not render).
func docEdits(fset *token.FileSet, f *ast.File, pkgPath string, byKey map[string]*target, seen map[string]bool) {
	add := func(key string, pos token.Pos, old, new string) {
		p := fset.Position(pos)
		id := "doc:" + p.String()
		if seen[id] {
			return
		}
		seen[id] = true
		pendingDocEdits = append(pendingDocEdits, docEdit{key: key, edit: edit{file: p.Filename, off: p.Offset, old: old, new: new}})
	}
	first := func(doc *ast.CommentGroup, key string) {
		t := byKey[key]
		if doc == nil || t == nil || len(doc.List) == 0 {
			return
		}
		c := doc.List[0]
		if !strings.HasPrefix(c.Text, "// ") {
			return
		}
		rest := c.Text[3:]
		if strings.HasPrefix(rest, "A ") || strings.HasPrefix(rest, "An ") || strings.HasPrefix(rest, "The ") {
			return
		}
		if strings.HasPrefix(rest, t.name) {
			next, _ := utf8.DecodeRuneInString(rest[len(t.name):])
			if next == utf8.RuneError || !(unicode.IsLetter(next) || unicode.IsDigit(next) || next == '_') {
				add(key, c.Slash+3, t.name, t.newName)
			}
		}
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			key := pkgPath + "." + d.Name.Name
			if d.Recv != nil && len(d.Recv.List) == 1 {
				key = pkgPath + "." + recvName(d.Recv.List[0].Type) + "." + d.Name.Name
			}
			first(d.Doc, key)
		case *ast.GenDecl:
			for _, s := range d.Specs {
				var names []*ast.Ident
				var doc *ast.CommentGroup
				switch s := s.(type) {
				case *ast.TypeSpec:
					names, doc = []*ast.Ident{s.Name}, s.Doc
					if it, ok := s.Type.(*ast.InterfaceType); ok {
						for _, m := range it.Methods.List {
							if len(m.Names) == 1 {
								first(m.Doc, pkgPath+"."+s.Name.Name+"."+m.Names[0].Name)
							}
						}
					}
				case *ast.ValueSpec:
					names, doc = s.Names, s.Doc
				}
				if doc == nil && len(d.Specs) == 1 {
					doc = d.Doc
				}
				for _, n := range names {
					first(doc, pkgPath+"."+n.Name)
				}
			}
		}
	}
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			for _, m := range linkRE.FindAllStringSubmatchIndex(c.Text, -1) {
				a := c.Text[m[2]:m[3]]
				key := pkgPath + "." + a
				word := a
				if m[4] >= 0 {
					b := c.Text[m[4]:m[5]]
					key, word = key+"."+b, a+"."+b
				}
				t := byKey[key]
				if t == nil {
					continue
				}
				repl := t.newName
				if t.typ != "" {
					repl = t.typ + "." + t.newName
					if tt := byKey[pkgPath+"."+t.typ]; tt != nil {
						repl = tt.newName + "." + t.newName
					}
				}
				add(key, c.Slash+token.Pos(m[0]), "["+word+"]", repl)
			}
			// A package-level target named in prose: whole words that are
			// clearly identifiers (two capitals or more, like DebugProofTTL),
			// not qualified by another package.
			for _, t := range byKey {
				if t.typ != "" || t.pkgPath != pkgPath || capitals(t.name) < 2 {
					continue
				}
				for i := 0; ; {
					j := strings.Index(c.Text[i:], t.name)
					if j < 0 {
						break
					}
					at := i + j
					i = at + len(t.name)
					before, _ := utf8.DecodeLastRuneInString(c.Text[:at])
					after, _ := utf8.DecodeRuneInString(c.Text[i:])
					if isWord(before) || before == '.' || before == '[' || isWord(after) {
						continue
					}
					add(t.key, c.Slash+token.Pos(at), t.name, t.newName)
				}
			}
			// [Type.Method] where only Type is a target.
			for _, m := range linkRE.FindAllStringSubmatchIndex(c.Text, -1) {
				if m[4] < 0 {
					continue
				}
				a := c.Text[m[2]:m[3]]
				t := byKey[pkgPath+"."+a]
				if t == nil || byKey[pkgPath+"."+a+"."+c.Text[m[4]:m[5]]] != nil {
					continue
				}
				add(pkgPath+"."+a, c.Slash+token.Pos(m[0]), c.Text[m[0]:m[1]], t.newName+"."+c.Text[m[4]:m[5]])
			}
		}
	}
}

func capitals(s string) int {
	n := 0
	for _, r := range s {
		if unicode.IsUpper(r) {
			n++
		}
	}
	return n
}

func isWord(r rune) bool {
	return r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_')
}

func recvName(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.ParenExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}

// applyEdits replaces, checking that each edit's old text is where it says.
func applyEdits(src []byte, es []edit) ([]byte, error) {
	sort.Slice(es, func(i, j int) bool { return es[i].off < es[j].off })
	var out bytes.Buffer
	last := 0
	for _, e := range es {
		if e.off < last {
			if e.off+len(e.old) <= last {
				continue // inside an edit already made (a link and a first word)
			}
			return nil, fmt.Errorf("overlapping edits at offset %d", e.off)
		}
		if e.off+len(e.old) > len(src) || string(src[e.off:e.off+len(e.old)]) != e.old {
			return nil, fmt.Errorf("offset %d: expected %q", e.off, e.old)
		}
		out.Write(src[last:e.off])
		out.WriteString(e.new)
		last = e.off + len(e.old)
	}
	out.Write(src[last:])
	return out.Bytes(), nil
}

// ifaceSet knows every interface method of the build, to keep the methods
// that satisfy one.
type ifaceSet struct {
	byName map[string][]*types.Interface
	where  map[*types.Interface]string
}

// dynamic are methods the standard library finds by assertion on anonymous
// interfaces (errors.Unwrap, fmt's verbs, encoding's marshalers, …).
var dynamic = map[string]bool{
	"Error": true, "String": true, "GoString": true, "Format": true, "Unwrap": true, "Is": true, "As": true,
	"MarshalJSON": true, "UnmarshalJSON": true, "MarshalText": true, "UnmarshalText": true,
	"MarshalBinary": true, "UnmarshalBinary": true, "LogValue": true, "Timeout": true, "Temporary": true,
}

func interfaceMethods(sets ...[]*packages.Package) *ifaceSet {
	s := &ifaceSet{byName: map[string][]*types.Interface{}, where: map[*types.Interface]string{}}
	addIface := func(it *types.Interface, where string) {
		if _, ok := s.where[it]; ok {
			return
		}
		s.where[it] = where
		for i := 0; i < it.NumMethods(); i++ {
			s.byName[it.Method(i).Name()] = append(s.byName[it.Method(i).Name()], it)
		}
	}
	done := map[*types.Package]bool{}
	var walk func(tp *types.Package)
	walk = func(tp *types.Package) {
		if done[tp] {
			return
		}
		done[tp] = true
		for _, n := range tp.Scope().Names() {
			if tn, ok := tp.Scope().Lookup(n).(*types.TypeName); ok {
				if it, ok := tn.Type().Underlying().(*types.Interface); ok {
					addIface(it, tp.Path()+"."+n)
				}
			}
		}
		for _, imp := range tp.Imports() {
			walk(imp)
		}
	}
	for _, set := range sets {
		packages.Visit(set, nil, func(p *packages.Package) {
			if p.Types != nil {
				walk(p.Types)
			}
			if p.TypesInfo != nil {
				for _, tv := range p.TypesInfo.Types {
					if it, ok := tv.Type.(*types.Interface); ok {
						addIface(it, "an interface literal in "+p.PkgPath)
					}
				}
			}
		})
	}
	return s
}

// satisfies says why m must keep its name, or "".
func (s *ifaceSet) satisfies(m *types.Func) string {
	if dynamic[m.Name()] {
		return fmt.Sprintf("%s is a method name the standard library looks for dynamically", m.Name())
	}
	recv := m.Type().(*types.Signature).Recv().Type()
	if p, ok := recv.(*types.Pointer); ok {
		recv = p.Elem()
	}
	for _, it := range s.byName[m.Name()] {
		if it.NumMethods() == 0 {
			continue
		}
		if types.Implements(recv, it) || types.Implements(types.NewPointer(recv), it) {
			return fmt.Sprintf("it satisfies %s", s.where[it])
		}
	}
	return ""
}

func readSpecs(file string, args []string) ([][2]string, error) {
	var specs [][2]string
	for _, a := range args {
		specs = append(specs, [2]string{a, ""})
	}
	if file == "" {
		return specs, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		switch len(fields) {
		case 0:
		case 1:
			specs = append(specs, [2]string{fields[0], ""})
		case 2:
			specs = append(specs, [2]string{fields[0], fields[1]})
		default:
			return nil, fmt.Errorf("%s:%d: want \"pkg.Name [newName]\", got %q", file, n, sc.Text())
		}
	}
	return specs, sc.Err()
}

func parseSpec(s [2]string, modPath string) (*target, error) {
	spec := s[0]
	slash := strings.LastIndex(spec, "/")
	dot := strings.Index(spec[slash+1:], ".")
	if dot < 0 {
		return nil, fmt.Errorf("%s: want pkg.Name or pkg.Type.Method", spec)
	}
	pkg, rest := spec[:slash+1+dot], spec[slash+1+dot+1:]
	switch {
	case pkg == modPath[strings.LastIndex(modPath, "/")+1:]:
		pkg = modPath
	case !strings.HasPrefix(pkg, modPath):
		pkg = modPath + "/" + pkg
	}
	t := &target{spec: spec, pkgPath: pkg, name: rest}
	if i := strings.Index(rest, "."); i >= 0 {
		t.typ, t.name = rest[:i], rest[i+1:]
	}
	if !token.IsIdentifier(t.name) || (t.typ != "" && !token.IsIdentifier(t.typ)) {
		return nil, fmt.Errorf("%s: want pkg.Name or pkg.Type.Method", spec)
	}
	t.key = pkg + "." + rest
	t.newName = s[1]
	if t.newName == "" {
		t.newName = lower(t.name)
	}
	return t, nil
}

// lower lowers the leading capitals: Name → name, HTTPServer → httpServer,
// URL → url, IsZero → isZero.
func lower(s string) string {
	r := []rune(s)
	i := 0
	for i < len(r) && unicode.IsUpper(r[i]) {
		i++
	}
	switch {
	case i == 0:
		return s
	case i == 1 || i == len(r):
	case unicode.IsLower(r[i]):
		i-- // the last capital starts the next word
	}
	for j := 0; j < i; j++ {
		r[j] = unicode.ToLower(r[j])
	}
	return string(r)
}

func dedupe(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func rel(root string, p token.Position) string {
	if r, err := filepath.Rel(root, p.Filename); err == nil {
		p.Filename = r
	}
	p.Offset = 0
	return fmt.Sprintf("%s:%d", p.Filename, p.Line)
}

func goOutput(dir string, args ...string) string {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		fail(fmt.Errorf("go %s: %v", strings.Join(args, " "), err))
	}
	return strings.TrimSpace(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "unexport:", err)
	os.Exit(1)
}
