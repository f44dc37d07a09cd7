package main

import (
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"os"
	"strings"

	"golang.org/x/tools/go/packages"
)

// xtestEdits turn external test files into in-package ones.
var xtestEdits []edit

// convertXTests moves into their package the external test files (package
// p_test, examples excepted) of each package where they are all that keeps
// a listed name exported, when that is safe: no import of the files depends
// on p, none of their declarations or imports collides with a name of p
// (its tests included) or with a new name, no universe name they use is
// declared by p, and the examples do not use what the moved files declare.
// A file moves only with the files it shares declarations with. It returns the files
// moved; the reasons a package's tests stay where they are are printed.
func convertXTests(fset *token.FileSet, root string, own []*packages.Package, targets []*target) map[string]bool {
	moved := map[string]bool{}
	want := map[string]bool{}
	for _, t := range targets {
		if len(t.kept) == 0 && len(t.xtestUse) > 0 {
			only := true
			for _, pos := range t.xtestUse {
				if strings.HasSuffix(pos.Filename, "example_test.go") {
					only = false
				}
			}
			if only {
				want[t.pkgPath] = true
			}
		}
	}
	plain := map[string]*packages.Package{}
	var xtest, testVariant = map[string]*packages.Package{}, map[string]*packages.Package{}
	for _, p := range own {
		switch {
		case p.ID == p.PkgPath:
			plain[p.PkgPath] = p
		case strings.HasSuffix(p.PkgPath, "_test"):
			xtest[strings.TrimSuffix(p.PkgPath, "_test")] = p
		case p.ID == p.PkgPath+" ["+p.PkgPath+".test]":
			testVariant[p.PkgPath] = p
		}
	}
	// dependsOn reports whether the package at path imports target, directly or not.
	memo := map[string]bool{}
	var dependsOn func(path, target string) bool
	dependsOn = func(path, target string) bool {
		if path == target {
			return true
		}
		k := path + " " + target
		if v, ok := memo[k]; ok {
			return v
		}
		memo[k] = false
		p := plain[path]
		if p == nil {
			return false // outside the module
		}
		for ip := range p.Imports {
			if dependsOn(ip, target) {
				memo[k] = true
				return true
			}
		}
		return false
	}
	for path := range want {
		x := xtest[path]
		pv := testVariant[path]
		if pv == nil {
			pv = plain[path]
		}
		if x == nil || pv == nil {
			continue
		}
		name := pv.Types.Name()
		// Per file: what keeps it external, then which files depend on
		// which (a file moves only with every file it shares declarations with).
		why := map[*ast.File][]string{}
		fileOf := map[string]*ast.File{}
		declIn := map[types.Object]*ast.File{}
		for _, f := range x.Syntax {
			fn := fset.Position(f.Pos()).Filename
			fileOf[fn] = f
			if strings.HasSuffix(fn, "example_test.go") {
				why[f] = append(why[f], "an example")
			}
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if d.Recv == nil {
						declIn[x.TypesInfo.Defs[d.Name]] = f
						if o := pv.Types.Scope().Lookup(d.Name.Name); o != nil && d.Name.Name != "_" {
							why[f] = append(why[f], fmt.Sprintf("%s is declared in both %s and %s", d.Name.Name, rel(root, fset.Position(d.Pos())), rel(root, fset.Position(o.Pos()))))
						}
					}
				case *ast.GenDecl:
					for _, sp := range d.Specs {
						var ids []*ast.Ident
						switch sp := sp.(type) {
						case *ast.TypeSpec:
							ids = []*ast.Ident{sp.Name}
						case *ast.ValueSpec:
							ids = sp.Names
						case *ast.ImportSpec:
							ip := strings.Trim(sp.Path.Value, `"`)
							if ip != path && dependsOn(ip, path) {
								why[f] = append(why[f], fmt.Sprintf("%s imports %s, which imports %s", rel(root, fset.Position(sp.Pos())), ip, path))
							}
							var pn *types.PkgName
							if sp.Name != nil {
								pn, _ = x.TypesInfo.Defs[sp.Name].(*types.PkgName)
							} else {
								pn, _ = x.TypesInfo.Implicits[sp].(*types.PkgName)
							}
							if pn != nil && ip != path {
								if o := pv.Types.Scope().Lookup(pn.Name()); o != nil {
									why[f] = append(why[f], fmt.Sprintf("the import name %s of %s is declared at %s", pn.Name(), rel(root, fset.Position(sp.Pos())), rel(root, fset.Position(o.Pos()))))
								}
							}
						}
						for _, id := range ids {
							declIn[x.TypesInfo.Defs[id]] = f
							if o := pv.Types.Scope().Lookup(id.Name); o != nil && id.Name != "_" {
								why[f] = append(why[f], fmt.Sprintf("%s is declared in both %s and %s", id.Name, rel(root, fset.Position(id.Pos())), rel(root, fset.Position(o.Pos()))))
							}
						}
					}
				}
			}
		}
		for _, t := range targets {
			if t.pkgPath != path || len(t.kept) > 0 {
				continue
			}
			if o := x.Types.Scope().Lookup(t.newName); o != nil {
				f := fileOf[fset.Position(o.Pos()).Filename]
				why[f] = append(why[f], fmt.Sprintf("it declares %s, %s's new name", t.newName, t.spec))
			}
		}
		uses := map[*ast.File]map[*ast.File]bool{} // file → files whose declarations it uses
		for id, o := range x.TypesInfo.Uses {
			p := fset.Position(id.Pos())
			f := fileOf[p.Filename]
			if g := declIn[o]; g != nil && g != f {
				if uses[f] == nil {
					uses[f] = map[*ast.File]bool{}
				}
				uses[f][g] = true
			}
			if o.Parent() == types.Universe && pv.Types.Scope().Lookup(id.Name) != nil {
				why[f] = append(why[f], fmt.Sprintf("%s at %s would mean %s's own %s", id.Name, rel(root, p), name, id.Name))
			}
		}
		// A file that stays keeps the files it uses and the files that use it.
		for changed := true; changed; {
			changed = false
			for f, gs := range uses {
				for g := range gs {
					if len(why[f]) > 0 && len(why[g]) == 0 {
						why[g] = append(why[g], "used by "+rel(root, fset.Position(f.Pos())))
						changed = true
					}
					if len(why[g]) > 0 && len(why[f]) == 0 {
						why[f] = append(why[f], "uses "+rel(root, fset.Position(g.Pos())))
						changed = true
					}
				}
			}
		}
		var files []*ast.File
		for _, f := range x.Syntax {
			if len(why[f]) == 0 {
				files = append(files, f)
			} else if *verbose {
				fmt.Printf("tests    %-40s stays external: %s\n", rel(root, fset.Position(f.Pos())), strings.Join(dedupe(why[f]), "; "))
			}
		}
		var edits []edit
		for _, f := range files {
			fn := fset.Position(f.Pos()).Filename
			src, err := os.ReadFile(fn)
			if err != nil {
				fail(err)
			}
			// The package clause.
			p := fset.Position(f.Name.Pos())
			edits = append(edits, edit{file: fn, off: p.Offset, old: f.Name.Name, new: name})
			// The import of the package itself, and its qualifier.
			var self *types.PkgName
			for _, imp := range f.Imports {
				if strings.Trim(imp.Path.Value, `"`) != path {
					continue
				}
				if imp.Name != nil {
					self, _ = x.TypesInfo.Defs[imp.Name].(*types.PkgName)
				} else {
					self, _ = x.TypesInfo.Implicits[imp].(*types.PkgName)
				}
				tf := fset.File(imp.Pos())
				line := tf.Line(imp.Pos())
				start := tf.Offset(tf.LineStart(line))
				end := len(src)
				if line < tf.LineCount() {
					end = tf.Offset(tf.LineStart(line + 1))
				}
				text := string(src[start:end])
				if strings.HasPrefix(strings.TrimSpace(text), "import ") && !strings.Contains(text, "(") {
					edits = append(edits, edit{file: fn, off: start, old: text, new: ""})
				} else if strings.TrimSpace(text) == strings.TrimSpace(string(src[tf.Offset(imp.Pos()):tf.Offset(imp.End())])) {
					edits = append(edits, edit{file: fn, off: start, old: text, new: ""})
				} else {
					s := tf.Offset(imp.Pos())
					edits = append(edits, edit{file: fn, off: s, old: string(src[s:tf.Offset(imp.End())]), new: ""})
				}
			}
			if self == nil {
				continue
			}
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if id, ok := sel.X.(*ast.Ident); ok && x.TypesInfo.Uses[id] == self {
					o := fset.Position(id.Pos()).Offset
					edits = append(edits, edit{file: fn, off: o, old: id.Name + ".", new: ""})
					if string(src[o:o+len(id.Name)+1]) != id.Name+"." {
						fail(fmt.Errorf("%s: %s is not followed by a dot", rel(root, fset.Position(id.Pos())), id.Name))
					}
				}
				return true
			})
			moved[fn] = true
		}
		xtestEdits = append(xtestEdits, edits...)
		if len(files) > 0 {
			fmt.Printf("tests    %-40s %d of %d external test files move into the package\n", path, len(files), len(x.Syntax))
		}
	}
	return moved
}
