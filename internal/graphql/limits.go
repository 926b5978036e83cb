package graphql

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// guard refuses a validated operation before any of it runs when it nests
// deeper than maxDepth, scores above maxComplexity, or selects a field
// whose permission the caller lacks. Checking the whole operation up front
// means a refused mutation document changes nothing, not even its first
// mutation.
type guard struct {
	es            graphql.ExecutableSchema
	perms         map[string]string
	maxDepth      int
	maxComplexity int
}

var (
	_ graphql.HandlerExtension        = (*guard)(nil)
	_ graphql.OperationContextMutator = (*guard)(nil)
)

func (g *guard) ExtensionName() string                   { return "TaskerGuard" }
func (g *guard) Validate(graphql.ExecutableSchema) error { return nil }

func (g *guard) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	// Introspection is allowed: the schema is public
	// (GET /v1/graphql/schema.graphqls).
	opCtx.DisableIntrospection = false
	caller, ok := callerFrom(ctx)
	if !ok {
		return newError(CodeForbidden, "no caller: the request did not pass the API's authentication")
	}
	w := walker{doc: opCtx.Doc, perms: g.perms, caller: caller}
	depth := w.walk(opCtx.Operation.SelectionSet, 1)
	if w.denied != nil {
		return w.denied
	}
	if w.badInt != nil {
		return w.badInt
	}
	if depth > g.maxDepth {
		e := newError(CodeValidation, fmt.Sprintf("the operation nests %d levels deep, deeper than the limit of %d", depth, g.maxDepth))
		e.Extensions["limit"] = "depth"
		return e
	}
	if c := complexity.Calculate(ctx, g.es, opCtx.Operation, opCtx.Variables); c > g.maxComplexity {
		e := newError(CodeValidation, fmt.Sprintf("the operation has complexity %d, more than the limit of %d", c, g.maxComplexity))
		e.Extensions["limit"] = "complexity"
		return e
	}
	return nil
}

// walker measures depth and checks permissions over a selection set,
// following fragments (validation has ruled out fragment cycles).
type walker struct {
	doc    *ast.QueryDocument
	perms  map[string]string
	caller Caller
	denied *gqlerror.Error
	// badInt is an integer literal that does not fit 64 bits: gqlparser
	// panics converting one, so it is refused before anything converts it.
	badInt *gqlerror.Error
}

// walk returns the depth of set, whose fields are at level depth.
func (w *walker) walk(set ast.SelectionSet, depth int) int {
	deepest := depth - 1
	for _, sel := range set {
		d := 0
		switch s := sel.(type) {
		case *ast.Field:
			// Introspection (__schema, __type, __typename) needs no
			// permission, but counts for depth: nesting __Type.fields
			// inside itself is as costly as any other nesting.
			if !strings.HasPrefix(s.Name, "__") {
				w.check(s)
			}
			for _, a := range s.Arguments {
				w.checkInts(a.Value)
			}
			for _, dir := range s.Directives {
				for _, a := range dir.Arguments {
					w.checkInts(a.Value)
				}
			}
			d = depth
			if len(s.SelectionSet) > 0 {
				d = w.walk(s.SelectionSet, depth+1)
			}
		case *ast.InlineFragment:
			d = w.walk(s.SelectionSet, depth)
		case *ast.FragmentSpread:
			if f := w.doc.Fragments.ForName(s.Name); f != nil {
				d = w.walk(f.SelectionSet, depth)
			}
		}
		deepest = max(deepest, d)
	}
	return deepest
}

// checkInts records the first integer literal in v that does not fit
// 64 bits.
func (w *walker) checkInts(v *ast.Value) {
	if v == nil || w.badInt != nil {
		return
	}
	if v.Kind == ast.IntValue {
		if _, err := strconv.ParseInt(v.Raw, 10, 64); err != nil {
			w.badInt = newError(CodeValidation, fmt.Sprintf("the integer %s does not fit in 64 bits; send it as a string or in a variable", v.Raw))
		}
		return
	}
	for _, c := range v.Children {
		w.checkInts(c.Value)
	}
}

// rootTypes are refused outright when a field of theirs has no
// permission (NewHandler makes that impossible; this fails closed anyway).
var rootTypes = map[string]bool{"Query": true, "Mutation": true, "Subscription": true}

// check records the first field the caller may not use.
func (w *walker) check(f *ast.Field) {
	if w.denied != nil || f.ObjectDefinition == nil {
		return
	}
	key := f.ObjectDefinition.Name + "." + f.Name
	perm, ok := w.perms[key]
	if !ok && !rootTypes[f.ObjectDefinition.Name] {
		return // a plain member of its parent, covered by the parent's permission
	}
	if !ok || !w.caller.Principal.Allows(perm) {
		e := newError(CodeForbidden, fmt.Sprintf("the token lacks the permission %s, which %s needs", perm, key))
		e.Extensions["permission"] = perm
		e.Extensions["field"] = key
		if f.Position != nil {
			e.Locations = []gqlerror.Location{{Line: f.Position.Line, Column: f.Position.Column}}
		}
		w.denied = e
	}
}
