// Command funclen fails when a function or method in the given directories
// (walked recursively; _test.go files are skipped) is longer than -max
// lines, counted from its func keyword to its closing brace. make lint runs
// it on cmd, runner, steps, remote and internal.
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// long is one function over the limit.
type long struct {
	pos   token.Position
	name  string
	lines int
}

func main() {
	limit := flag.Int("max", 80, "the longest a function may be, in lines")
	flag.Parse()
	var found []long
	for _, dir := range flag.Args() {
		f, err := scan(dir, *limit)
		if err != nil {
			fmt.Fprintf(os.Stderr, "funclen: %v\n", err)
			os.Exit(2)
		}
		found = append(found, f...)
	}
	sort.Slice(found, func(i, j int) bool { return found[i].lines > found[j].lines })
	for _, l := range found {
		fmt.Printf("%s: %s is %d lines, over %d: split it\n", l.pos, l.name, l.lines, *limit)
	}
	if len(found) > 0 {
		os.Exit(1)
	}
}

// scan returns the functions over limit lines in the non-test Go files under dir.
func scan(dir string, limit int) ([]long, error) {
	var found []long
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("parsing %s: %w", p, err)
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			start := fset.Position(fd.Pos())
			if n := fset.Position(fd.End()).Line - start.Line + 1; n > limit {
				found = append(found, long{pos: start, name: funcName(fd), lines: n})
			}
		}
		return nil
	})
	return found, err
}

// funcName is fd's name, with its receiver's type for a method (T.M).
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if g, ok := t.(*ast.IndexExpr); ok {
		t = g.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}
