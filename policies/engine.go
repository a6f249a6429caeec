package policies

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"
)

// DecisionQuery is the rule the gateway evaluates.
const DecisionQuery = "data.tongban.crossdistrict.decision"

// Errors of compiling and evaluating a bundle.
var (
	// ErrCompile reports a bundle that does not parse or compile (strict).
	// The error's text names file and line of each problem; errors.As to
	// *CompileError gives them one by one.
	ErrCompile = errors.New("policies: bundle does not compile")
	// ErrUndefinedDecision reports an evaluation that produced no decision:
	// the bundle has no decision rule, or the catalog is inconsistent (an
	// item's department or promised days missing for the division).
	ErrUndefinedDecision = errors.New("policies: decision undefined")
)

var decisionRef = ast.MustParseRef(DecisionQuery)

// CompileError lists the problems that kept a bundle from compiling.
type CompileError struct {
	Problems []Problem
}

func (e *CompileError) Error() string {
	var sb strings.Builder
	sb.WriteString(ErrCompile.Error())
	for i, p := range e.Problems {
		if i == 0 {
			sb.WriteString(": ")
		} else {
			sb.WriteString("; ")
		}
		sb.WriteString(p.String())
	}
	return sb.String()
}

// Unwrap makes errors.Is(err, ErrCompile) hold.
func (e *CompileError) Unwrap() error { return ErrCompile }

// Engine is a compiled bundle, ready to decide. Its bundle, query and catalog
// never change (only its decision cache and counters do); it is safe for
// concurrent use.
type Engine struct {
	bundle   *Bundle
	query    rego.PreparedEvalQuery
	catalog  *Catalog
	revision string
	// cache is nil unless the bundle declares its decision day-granular
	// (TimeGranularityKey).
	cache *decisionCache
	// Decisions answered by Decide, from the cache and by evaluation.
	remembered, evaluated atomic.Uint64
}

// built is a bundle parsed and compiled, before the query is prepared.
type built struct {
	modules  map[string]*ast.Module
	data     map[string]any
	compiler *ast.Compiler
}

var parserOptions = ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}

// build parses the bundle's Rego and data and compiles the modules in strict
// mode. Problems name file and line.
func build(b *Bundle) (*built, []Problem) {
	var problems []Problem
	out := &built{modules: map[string]*ast.Module{}, data: map[string]any{}}
	for _, p := range b.paths {
		src := b.files[p]
		switch {
		case strings.HasSuffix(p, ".rego"):
			m, err := ast.ParseModuleWithOpts(p, string(src), parserOptions)
			if err != nil {
				problems = append(problems, problemsOf(p, err)...)
				continue
			}
			out.modules[p] = m
		case isDataFile(p):
			var v any
			var err error
			if path.Ext(p) == ".json" {
				err = util.UnmarshalJSON(src, &v)
			} else {
				err = util.Unmarshal(src, &v)
			}
			if err != nil {
				problems = append(problems, Problem{File: p, Line: jsonErrorLine(src, err), Message: "data: " + err.Error()})
				continue
			}
			if err := mergeData(out.data, dataKeys(p), v); err != nil {
				problems = append(problems, Problem{File: p, Message: err.Error()})
			}
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	out.compiler = newCompiler()
	if out.compiler.Compile(out.modules); out.compiler.Failed() {
		return nil, problemsOf("", out.compiler.Errors)
	}
	return out, nil
}

func newCompiler() *ast.Compiler {
	return ast.NewCompiler().WithStrict(true).WithDefaultRegoVersion(ast.RegoV1)
}

// dataKeys is where a data file's content goes: its directory.
func dataKeys(p string) []string {
	dir := path.Dir(p)
	if dir == "." {
		return nil
	}
	return strings.Split(dir, "/")
}

// mergeData puts v at keys in root, merging objects as OPA does.
func mergeData(root map[string]any, keys []string, v any) error {
	node := root
	for i, k := range keys {
		next, ok := node[k]
		if !ok {
			if i == len(keys)-1 {
				node[k] = v
				return nil
			}
			m := map[string]any{}
			node[k] = m
			node = m
			continue
		}
		m, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("data conflict at data.%s", strings.Join(keys[:i+1], "."))
		}
		node = m
	}
	obj, ok := v.(map[string]any)
	if !ok {
		if len(keys) == 0 {
			return errors.New("data at the bundle root must be an object")
		}
		return fmt.Errorf("data conflict at data.%s", strings.Join(keys, "."))
	}
	for k, x := range obj {
		if _, dup := node[k]; dup {
			return fmt.Errorf("data conflict at data.%s", strings.Join(append(keys, k), "."))
		}
		node[k] = x
	}
	return nil
}

func problemsOf(file string, err error) []Problem {
	var errs ast.Errors
	if errors.As(err, &errs) {
		out := make([]Problem, 0, len(errs))
		for _, e := range errs {
			p := Problem{File: file, Message: e.Code + ": " + e.Message}
			if e.Location != nil {
				if e.Location.File != "" {
					p.File = e.Location.File
				}
				p.Line = e.Location.Row
			}
			out = append(out, p)
		}
		return out
	}
	return []Problem{{File: file, Message: err.Error()}}
}

func newStore(data map[string]any) storage.Store {
	return inmem.NewFromObjectWithOpts(data,
		inmem.OptRoundTripOnWrite(false),
		inmem.OptReturnASTValuesOnRead(true))
}

// Compile compiles the bundle in strict mode, loads its data, and prepares
// the decision query once. Errors wrap ErrCompile.
func Compile(ctx context.Context, b *Bundle) (*Engine, error) {
	bt, problems := build(b)
	if len(problems) > 0 {
		return nil, &CompileError{Problems: problems}
	}
	return prepare(ctx, b, bt)
}

// prepare makes the engine of a bundle already built: its catalog, and the
// decision query prepared once.
func prepare(ctx context.Context, b *Bundle, bt *built) (*Engine, error) {
	if len(bt.compiler.GetRulesExact(decisionRef)) == 0 {
		return nil, &CompileError{Problems: []Problem{{Message: "no rule " + DecisionQuery}}}
	}
	catalog := &Catalog{}
	if src, ok := b.files[CatalogPath]; ok {
		if err := json.Unmarshal(src, catalog); err != nil {
			return nil, &CompileError{Problems: []Problem{{File: CatalogPath, Line: jsonErrorLine(src, err), Message: "catalog: " + err.Error()}}}
		}
	}
	pq, err := rego.New(
		rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(decisionRef)))),
		rego.Compiler(bt.compiler),
		rego.Store(newStore(bt.data)),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, &CompileError{Problems: problemsOf("", err)}
	}
	e := &Engine{bundle: b, query: pq, catalog: catalog, revision: b.Revision()}
	if declared, _ := dayGranular(bt.compiler); declared {
		e.cache = &decisionCache{}
	}
	return e, nil
}

// Cached reports whether the engine remembers its decisions: its bundle
// declares decision_time_granularity: day ([TimeGranularityKey]).
func (e *Engine) Cached() bool { return e.cache != nil }

// Revision is the revision of the engine's bundle.
func (e *Engine) Revision() string { return e.revision }

// Bundle is the bundle the engine was compiled from.
func (e *Engine) Bundle() *Bundle { return e.bundle }

// Catalog is the engine's item catalog, for display. It is shared: callers
// must not modify it.
func (e *Engine) Catalog() *Catalog { return e.catalog }

// Decide is the decision for one input. Decision.Revision is left empty;
// see [Decision]. When the bundle declares its decision day-granular, an
// input already decided on the same day (+08:00) by this engine is answered
// from memory, without evaluation; otherwise it is [Engine.Evaluate].
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	if e.cache == nil {
		e.evaluated.Add(1)
		return e.Evaluate(ctx, in)
	}
	key := cacheKey(in)
	if d, ok := e.cache.get(key); ok {
		e.remembered.Add(1)
		return d, nil
	}
	e.evaluated.Add(1)
	d, err := e.Evaluate(ctx, in)
	if err != nil {
		return d, err
	}
	e.cache.put(key, d)
	return d, nil
}

// DecideCounts is how many decisions Decide has answered on this engine
// since it was compiled: remembered from the cache, and evaluated.
func (e *Engine) DecideCounts() (remembered, evaluated uint64) {
	return e.remembered.Load(), e.evaluated.Load()
}

// Evaluate evaluates the decision for one input, always.
func (e *Engine) Evaluate(ctx context.Context, in Input) (Decision, error) {
	rs, err := e.query.Eval(ctx, rego.EvalParsedInput(in.Value()))
	if err != nil {
		return Decision{}, fmt.Errorf("policies: evaluating decision: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, ErrUndefinedDecision
	}
	return decisionOf(rs[0].Expressions[0].Value)
}

// decisionOf converts the evaluated decision document.
func decisionOf(v any) (Decision, error) {
	doc, ok := v.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("%w: decision is %T, not an object", ErrUndefinedDecision, v)
	}
	bad := func(field string) (Decision, error) {
		return Decision{}, fmt.Errorf("%w: decision field %q has type %T", ErrUndefinedDecision, field, doc[field])
	}
	var d Decision
	if d.Allow, ok = doc["allow"].(bool); !ok {
		return bad("allow")
	}
	if x, present := doc["mode"]; present {
		if d.Mode, ok = x.(string); !ok {
			return bad("mode")
		}
	}
	if x, present := doc["target_impl_code"]; present {
		if d.TargetImplCode, ok = x.(string); !ok {
			return bad("target_impl_code")
		}
	}
	if x, present := doc["promised_days"]; present {
		n, ok := x.(json.Number)
		if !ok {
			return bad("promised_days")
		}
		days, err := n.Int64()
		if err != nil {
			return bad("promised_days")
		}
		d.PromisedDays = int(days)
	}
	missing, ok := doc["missing_materials"].([]any)
	if !ok {
		return bad("missing_materials")
	}
	d.MissingMaterials = make([]string, len(missing))
	for i, m := range missing {
		if d.MissingMaterials[i], ok = m.(string); !ok {
			return bad("missing_materials")
		}
	}
	reasons, ok := doc["reasons"].([]any)
	if !ok {
		return bad("reasons")
	}
	d.Reasons = make([]Reason, len(reasons))
	for i, r := range reasons {
		obj, ok := r.(map[string]any)
		if !ok {
			return bad("reasons")
		}
		code, ok1 := obj["code"].(string)
		msg, ok2 := obj["message"].(string)
		if !ok1 || !ok2 {
			return bad("reasons")
		}
		d.Reasons[i] = Reason{Code: code, Message: msg}
	}
	if d.Allow != (len(d.Reasons) == 0) {
		return Decision{}, fmt.Errorf("%w: allow is %v with %d reasons", ErrUndefinedDecision, d.Allow, len(d.Reasons))
	}
	return d, nil
}

// jsonErrorLine is the 1-based line of a JSON syntax error, or 0.
func jsonErrorLine(src []byte, err error) int {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return lineAt(src, se.Offset)
	case errors.As(err, &te):
		return lineAt(src, te.Offset)
	}
	return 0
}

func lineAt(src []byte, offset int64) int {
	if offset > int64(len(src)) {
		offset = int64(len(src))
	}
	return 1 + bytes.Count(src[:offset], []byte{'\n'})
}
