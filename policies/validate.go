package policies

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/util"
)

// CatalogSchema is the JSON Schema (draft-07) the catalog data must satisfy,
// shipped beside the bundle as schema/catalog.schema.json.
//
//go:embed schema/catalog.schema.json
var CatalogSchema []byte

// Problem is one reason a bundle is refused, located where possible.
type Problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

// String is "file:line: message", leaving out what is unknown.
func (p Problem) String() string {
	switch {
	case p.File != "" && p.Line > 0:
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	case p.File != "":
		return p.File + ": " + p.Message
	}
	return p.Message
}

// TestCounts counts the bundle's Rego tests by outcome.
type TestCounts struct {
	Passed int `json:"passed"`
	Failed int `json:"failed"`
}

// Report is the outcome of validating a bundle. OK is true exactly when
// there are no problems and at least one Rego test ran and none failed.
type Report struct {
	OK       bool       `json:"ok"`
	Revision string     `json:"revision"`
	Problems []Problem  `json:"problems"`
	Tests    TestCounts `json:"tests"`
}

// Validate checks a bundle the way a draft must pass before activation:
// every .rego file is formatted as `opa fmt` writes it; the bundle parses
// and compiles in strict mode and has the decision rule; module packages and
// data lie under the manifest's roots; its Rego tests run, at least one and
// none failing; and the catalog satisfies [CatalogSchema] and refers only to
// departments, codes and promised days it defines; a bundle that declares
// its decision day-granular ([TimeGranularityKey]) must decide the same at
// 00:00, 12:00 and 23:59:59.999999999 of a day. Problems go into the
// report; the error is for a cancelled context.
func (b *Bundle) Validate(ctx context.Context) (*Report, error) {
	r := &Report{Revision: b.Revision(), Problems: []Problem{}}
	r.Problems = append(r.Problems, b.checkFormat()...)
	bt, problems := build(b)
	r.Problems = append(r.Problems, problems...)
	if bt != nil {
		if len(bt.compiler.GetRulesExact(decisionRef)) == 0 {
			r.Problems = append(r.Problems, Problem{Message: "no rule " + DecisionQuery})
		}
		r.Problems = append(r.Problems, b.checkRoots(bt)...)
		tests, problems, err := b.runTests(ctx, bt)
		if err != nil {
			return nil, err
		}
		r.Tests = tests
		r.Problems = append(r.Problems, problems...)
		if problems, err = b.checkDayGranular(ctx, bt); err != nil {
			return nil, err
		}
		r.Problems = append(r.Problems, problems...)
	}
	problems, err := b.checkCatalog(ctx)
	if err != nil {
		return nil, err
	}
	r.Problems = append(r.Problems, problems...)
	r.OK = len(r.Problems) == 0 && r.Tests.Failed == 0 && r.Tests.Passed > 0
	return r, nil
}

// checkFormat compares every .rego file with its `opa fmt` form. Files that
// do not parse are left to the compiler's report.
func (b *Bundle) checkFormat() []Problem {
	var problems []Problem
	for _, p := range b.paths {
		if !strings.HasSuffix(p, ".rego") {
			continue
		}
		src := b.files[p]
		formatted, err := format.SourceWithOpts(p, src, format.Opts{RegoVersion: ast.RegoV1})
		if err != nil || bytes.Equal(src, formatted) {
			continue
		}
		problems = append(problems, Problem{File: p, Line: firstDifference(src, formatted), Message: "not formatted as opa fmt writes it"})
	}
	return problems
}

func firstDifference(a, b []byte) int {
	la, lb := bytes.Split(a, []byte{'\n'}), bytes.Split(b, []byte{'\n'})
	for i := range min(len(la), len(lb)) {
		if !bytes.Equal(la[i], lb[i]) {
			return i + 1
		}
	}
	return min(len(la), len(lb))
}

// manifest is the part of an OPA .manifest this package checks.
type manifest struct {
	Roots *[]string `json:"roots"`
}

// checkRoots requires the manifest to parse and, when it lists roots, every
// package and data path to lie under one of them (as OPA enforces when it
// activates a bundle).
func (b *Bundle) checkRoots(bt *built) []Problem {
	src, ok := b.files[ManifestPath]
	if !ok {
		return nil
	}
	var m manifest
	if err := util.UnmarshalJSON(src, &m); err != nil {
		return []Problem{{File: ManifestPath, Line: jsonErrorLine(src, err), Message: "manifest: " + err.Error()}}
	}
	if m.Roots == nil {
		return nil
	}
	roots := *m.Roots
	under := func(p string) bool {
		for _, r := range roots {
			r = strings.Trim(r, "/")
			if r == "" || p == r || strings.HasPrefix(p, r+"/") {
				return true
			}
		}
		return false
	}
	var problems []Problem
	for _, p := range b.paths {
		switch {
		case strings.HasSuffix(p, ".rego"):
			m := bt.modules[p]
			pkg := strings.Join(refKeys(m.Package.Path), "/")
			if !under(pkg) {
				problems = append(problems, Problem{File: p, Line: m.Package.Location.Row, Message: fmt.Sprintf("package %s is outside the manifest roots %q", m.Package.Path, roots)})
			}
		case isDataFile(p):
			if dir := strings.Join(dataKeys(p), "/"); !under(dir) {
				problems = append(problems, Problem{File: p, Message: fmt.Sprintf("data path %s is outside the manifest roots %q", dir, roots)})
			}
		}
	}
	return problems
}

func refKeys(ref ast.Ref) []string {
	var keys []string
	for _, t := range ref[1:] {
		if s, ok := t.Value.(ast.String); ok {
			keys = append(keys, string(s))
		}
	}
	return keys
}

// runTests runs the bundle's Rego tests over its data.
func (b *Bundle) runTests(ctx context.Context, bt *built) (TestCounts, []Problem, error) {
	var counts TestCounts
	// The runner compiles (and rewrites) its own copy of the modules.
	modules := make(map[string]*ast.Module, len(bt.modules))
	for p, m := range bt.modules {
		modules[p] = m.Copy()
	}
	store := newStore(bt.data)
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return counts, nil, err
	}
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().
		SetCompiler(newCompiler()).
		SetStore(store).
		SetModules(modules).
		SetTimeout(10*time.Second).
		RunTests(ctx, txn)
	if err != nil {
		return counts, problemsOf("", err), nil
	}
	var problems []Problem
	for res := range ch {
		if res.Skip {
			continue
		}
		if res.Pass() {
			counts.Passed++
			continue
		}
		counts.Failed++
		p := Problem{Message: fmt.Sprintf("test %s.%s failed", res.Package, res.Name)}
		if res.Error != nil {
			p.Message = fmt.Sprintf("test %s.%s: %v", res.Package, res.Name, res.Error)
		}
		if res.Location != nil {
			p.File, p.Line = res.Location.File, res.Location.Row
		}
		problems = append(problems, p)
	}
	if err := ctx.Err(); err != nil {
		return counts, nil, err
	}
	if counts.Passed+counts.Failed == 0 {
		problems = append(problems, Problem{Message: "the bundle has no Rego tests"})
	}
	slices.SortFunc(problems, func(a, b Problem) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		return a.Line - b.Line
	})
	return counts, problems, nil
}

// checkCatalog validates the catalog against the schema, then what a schema
// cannot say: items refer to known departments, and every enabled direction
// has the department's code and the promised days for its target division.
func (b *Bundle) checkCatalog(ctx context.Context) ([]Problem, error) {
	src, ok := b.files[CatalogPath]
	if !ok {
		return []Problem{{File: CatalogPath, Message: "the catalog is missing"}}, nil
	}
	var doc any
	if err := util.UnmarshalJSON(src, &doc); err != nil {
		return nil, nil // reported by build
	}
	problems, err := matchSchema(ctx, doc)
	if err != nil {
		return nil, err
	}
	for i := range problems {
		problems[i].File = CatalogPath
		problems[i].Line = lineOfPath(src, problems[i].field)
	}
	out := make([]Problem, 0, len(problems))
	for _, p := range problems {
		out = append(out, p.Problem)
	}
	if len(out) > 0 {
		return out, nil // the typed view below needs a well-formed catalog
	}
	var c Catalog
	if err := json.Unmarshal(src, &c); err != nil {
		return []Problem{{File: CatalogPath, Line: jsonErrorLine(src, err), Message: "catalog: " + err.Error()}}, nil
	}
	for _, code := range slices.Sorted(maps.Keys(c.Items)) {
		item := c.Items[code]
		at := func(keys ...string) int { return lineOfPath(src, append([]string{"items", code}, keys...)) }
		add := func(line int, format string, args ...any) {
			out = append(out, Problem{File: CatalogPath, Line: line, Message: fmt.Sprintf("item %s: ", code) + fmt.Sprintf(format, args...)})
		}
		dept, known := c.Departments[item.Department]
		if !known {
			add(at("department"), "department %q is not among the departments", item.Department)
		}
		from, fromOK := parseDate(item.EffectiveFrom)
		if item.EffectiveFrom != nil && !fromOK {
			add(at("effective_from"), "effective_from %q is not a date", *item.EffectiveFrom)
		}
		until, untilOK := parseDate(item.EffectiveUntil)
		if item.EffectiveUntil != nil && !untilOK {
			add(at("effective_until"), "effective_until %q is not a date", *item.EffectiveUntil)
		}
		if fromOK && untilOK && !until.After(from) {
			add(at("effective_until"), "effective_until %s is not after effective_from %s", *item.EffectiveUntil, *item.EffectiveFrom)
		}
		if !item.CrossDistrict {
			continue
		}
		for i, d := range item.Directions {
			from, to := d[0], d[1]
			line := at("directions", strconv.Itoa(i))
			if from == to {
				add(line, "direction %s → %s does not cross districts", from, to)
			}
			if _, ok := dept.Codes[to]; known && !ok {
				add(line, "department %q has no code for division %s", item.Department, to)
			}
			if _, ok := item.PromisedDays[to]; !ok {
				add(line, "no promised days for division %s", to)
			}
		}
	}
	return out, nil
}

func parseDate(s *string) (time.Time, bool) {
	if s == nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.DateOnly, *s)
	return t, err == nil
}

type schemaProblem struct {
	Problem
	field []string
}

var (
	propertyNameError = regexp.MustCompile(`^Property name of "(.*)" does not match`)
	schemaValue       ast.Value
	schemaQuery       = ast.MustParseBody("x := json.match_schema(input.doc, input.schema)")
)

func init() {
	var s any
	if err := util.UnmarshalJSON(CatalogSchema, &s); err != nil {
		panic("policies: catalog schema: " + err.Error())
	}
	v, err := ast.InterfaceToValue(s)
	if err != nil {
		panic("policies: catalog schema: " + err.Error())
	}
	schemaValue = v
}

// matchSchema checks doc against CatalogSchema with OPA's json.match_schema.
func matchSchema(ctx context.Context, doc any) ([]schemaProblem, error) {
	dv, err := ast.InterfaceToValue(doc)
	if err != nil {
		return nil, err
	}
	input := ast.NewObject(
		[2]*ast.Term{ast.StringTerm("doc"), ast.NewTerm(dv)},
		[2]*ast.Term{ast.StringTerm("schema"), ast.NewTerm(schemaValue)},
	)
	rs, err := rego.New(
		rego.ParsedQuery(schemaQuery),
		rego.ParsedInput(input),
		rego.StrictBuiltinErrors(true),
		rego.Store(storage.Store(newStore(map[string]any{}))),
	).Eval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policies: matching the catalog schema: %w", err)
	}
	if len(rs) != 1 {
		return nil, errors.New("policies: matching the catalog schema: no result")
	}
	res, ok := rs[0].Bindings["x"].([]any)
	if !ok || len(res) != 2 {
		return nil, fmt.Errorf("policies: matching the catalog schema: unexpected result %v", rs[0].Bindings["x"])
	}
	errs, _ := res[1].([]any)
	var out []schemaProblem
	badName := map[string]string{}
	for _, e := range errs {
		obj, _ := e.(map[string]any)
		field, _ := obj["field"].(string)
		desc, _ := obj["desc"].(string)
		var keys []string
		if field != "" && field != "(root)" {
			keys = strings.Split(field, ".")
		}
		// A property name that breaks propertyNames comes as two errors on
		// the parent field, the first naming the property: locate both at it.
		if m := propertyNameError.FindStringSubmatch(desc); m != nil {
			badName[field] = m[1]
		}
		if name, ok := badName[field]; ok {
			keys = append(keys, name)
			field += "." + name
		}
		msg := desc
		if len(keys) >= 2 && keys[0] == "items" {
			msg = fmt.Sprintf("item %s: %s: %s", keys[1], field, desc)
		} else if field != "" {
			msg = field + ": " + desc
		}
		out = append(out, schemaProblem{Problem: Problem{Message: "schema: " + msg}, field: keys})
	}
	return out, nil
}

// lineOfPath is the line of the deepest key of keys found in the JSON
// document src (array elements are keyed by their index), or 1.
func lineOfPath(src []byte, keys []string) int {
	dec := json.NewDecoder(bytes.NewReader(src))
	best := 1
	var walk func(depth int, match bool) error
	walk = func(depth int, match bool) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		delim, ok := tok.(json.Delim)
		if !ok {
			return nil
		}
		switch delim {
		case '{':
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := k.(string)
				m := match && depth < len(keys) && key == keys[depth]
				if m {
					best = lineAt(src, skipSpace(src, dec.InputOffset()))
				}
				if err := walk(depth+1, m); err != nil {
					return err
				}
			}
		case '[':
			for i := 0; dec.More(); i++ {
				m := match && depth < len(keys) && strconv.Itoa(i) == keys[depth]
				if m {
					best = lineAt(src, skipSpace(src, dec.InputOffset()))
				}
				if err := walk(depth+1, m); err != nil {
					return err
				}
			}
		}
		_, err = dec.Token() // the closing delimiter
		return err
	}
	if err := walk(0, true); err != nil && !errors.Is(err, io.EOF) {
		return best
	}
	return best
}

// skipSpace skips JSON whitespace and a separating comma from offset.
func skipSpace(src []byte, offset int64) int64 {
	for offset < int64(len(src)) && bytes.IndexByte([]byte(" \t\r\n,"), src[offset]) >= 0 {
		offset++
	}
	return offset
}
