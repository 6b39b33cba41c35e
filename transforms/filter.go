package transforms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/record"
)

func filterSpec() *config.Spec {
	return config.NewSpec("keep or drop rows by an expression over columns; dropped rows are counted as filtered",
		config.String("expr", "keep the rows where this expr-lang expression is true (https://expr-lang.org): columns by name, properties.plan for a nested path; null is nil; times are time.Time").
			Optional().Example(`event in ["Order Completed", "Signed Up"] && properties.total > 0`),
		config.String("drop", "drop the rows where this expression is true").Optional().Example(`userId == nil && anonymousId == nil`),
		config.String("after", "keep rows whose timestamp is at or after this time (RFC 3339 or a date)").Optional().Example("2024-01-01"),
		config.String("before", "keep rows whose timestamp is before this time (RFC 3339 or a date)").Optional().Example("2024-07-01"),
		config.String("field", "the timestamp column after and before read (a timestamp column: run the timestamp transform first)").
			Default(record.Timestamp),
	).Rules(
		config.AtMostOne("expr", "drop").Message("give expr (rows to keep) or drop (rows to drop), not both"),
		config.AtLeastOne("expr", "drop", "after", "before").Message("filter needs expr, drop, after or before"),
	).WithDescription(`A row for which the expression fails (say, a comparison with a null) is
rejected with the error. Rows with a null timestamp never match after/before.`).
		WithExample("one event, first half of 2024", `expr: event == "Order Completed"
after: 2024-01-01
before: 2024-07-01`).
		WithExample("drop test users", `drop: 'userId startsWith "test-"'`)
}

// Filter is the filter transform.
type Filter struct {
	src           string
	program       *vm.Program
	dropWhen      bool     // the expression says which rows to drop
	roots         []string // identifiers the expression reads
	field         string
	after, before int64 // ms, MinInt64/MaxInt64 when unset
	mem           memory.Allocator
	node          ast.Node // the parsed expression, for the vectorized form
	noVec         bool     // tests: run expr on every row
	plans         schemaCache[*filterPlan]
	namedColumns
}

// filterPlan is how the expression reads one schema: the env bindings for
// expr and the vectorized form (nil when no part of it is vectorized).
type filterPlan struct {
	binds []filterBind
	vec   vecNode
}

// filterBind puts one column into the environment: env[root] itself, or
// env[root][sub...] for a nested path.
type filterBind struct {
	col  int
	root string
	sub  []string
}

type identVisitor struct{ names map[string]bool }

func (v *identVisitor) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok {
		v.names[id.Value] = true
	}
}

func newFilter(conf *config.Conf, env *pipeline.Env) (pipeline.Transform, error) {
	f := &Filter{field: conf.String("field"), after: math.MinInt64, before: math.MaxInt64, mem: env.Alloc}
	var errs []error
	field := "expr"
	f.src = conf.String("expr")
	if d := conf.String("drop"); d != "" { // the spec's rules: not with expr
		f.src, f.dropWhen, field = d, true, "drop"
	}
	if f.src != "" {
		tree, err := parser.Parse(f.src)
		if err == nil {
			f.program, err = expr.Compile(f.src, expr.AsBool())
		}
		if err != nil {
			errs = append(errs, conf.Errorf(field, "%s", strings.ReplaceAll(err.Error(), "\n", " ")))
		} else {
			f.node = tree.Node
			v := &identVisitor{names: map[string]bool{}}
			ast.Walk(&tree.Node, v)
			for n := range v.names {
				f.roots = append(f.roots, n)
			}
			sort.Strings(f.roots)
		}
	}
	for _, k := range []string{"after", "before"} {
		if s := conf.String(k); s != "" {
			ms, err := parseBound(s)
			if err != nil {
				errs = append(errs, conf.Errorf(k, "%v", err))
			} else if k == "after" {
				f.after = ms
			} else {
				f.before = ms
			}
		}
	}
	if f.after >= f.before && f.before != math.MaxInt64 {
		errs = append(errs, conf.Errorf("before", "before is not later than after: no row would pass"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, r := range f.roots {
		if !isExprBuiltin(r) {
			f.nameCol(conf, r, conf.Path()+"/"+field, identNode(conf.Node(field), r))
		}
	}
	if f.after != math.MinInt64 || f.before != math.MaxInt64 {
		f.nameField(conf, "field")
	}
	return f, nil
}

func (f *Filter) plan(s *arrow.Schema) (*filterPlan, error) {
	binds, err := f.bind(s)
	if err != nil {
		return nil, err
	}
	p := &filterPlan{binds: binds}
	if !f.noVec {
		p.vec = compileVec(f.node, newVecCols(s, binds))
	}
	return p, nil
}

func (f *Filter) bind(s *arrow.Schema) ([]filterBind, error) {
	var binds []filterBind
	for _, root := range f.roots {
		found := false
		for i, fd := range s.Fields() {
			segs := record.SplitPath(fd.Name)
			if segs[0] == root {
				binds = append(binds, filterBind{col: i, root: root, sub: segs[1:]})
				found = true
			}
		}
		if !found && !isExprBuiltin(root) {
			return nil, missingColumn("filter: "+f.src, root, s)
		}
	}
	// whole objects first, so nested columns land inside them
	sort.SliceStable(binds, func(i, j int) bool { return len(binds[i].sub) < len(binds[j].sub) })
	return binds, nil
}

// isExprBuiltin tells expr's own names (functions, nil, true) from columns.
func isExprBuiltin(name string) bool {
	switch name {
	case "nil", "true", "false", "now", "date", "duration", "len", "all", "any", "none", "one", "filter", "map", "count",
		"sum", "mean", "median", "min", "max", "abs", "ceil", "floor", "round", "int", "float", "string", "trim",
		"upper", "lower", "split", "join", "lastIndexOf", "indexOf", "hasPrefix", "hasSuffix", "toJSON", "fromJSON",
		"keys", "values", "type", "first", "last", "get", "sort", "sortBy", "groupBy", "reduce", "find", "findIndex",
		"findLast", "findLastIndex", "timezone", "toBase64", "fromBase64", "repeat", "replace", "trimPrefix", "trimSuffix",
		"concat", "flatten", "uniq", "reverse", "bitand", "bitor", "bitxor", "bitnand", "bitnot", "bitshl", "bitshr", "bitushr",
		"#", "$env":
		return true
	}
	return false
}

// Apply evaluates the bounds and the vectorized form of the expression a
// column at a time, then runs expr only on the rows those leave undecided,
// and drops rows with one mask.
func (f *Filter) Apply(_ context.Context, b *pipeline.Batch) error {
	if b.Record == nil {
		return nil
	}
	b.DecodeDictionaries(f.mem, f.reads)
	rec := b.Record
	n := int(rec.NumRows())
	mask := make([]uint8, n) // pipeline.FateKeep, pipeline.FateFilter or pipeline.FateReject per row
	var rejects map[int]*pipeline.Reject
	dropped := false
	if f.after != math.MinInt64 || f.before != math.MaxInt64 {
		idx := colIndex(rec.Schema(), f.field)
		if idx < 0 {
			return missingColumn("filter: after/before", f.field, rec.Schema())
		}
		ts, ok := rec.Column(idx).(*array.Timestamp)
		if !ok {
			return fmt.Errorf("filter: after/before need %q to be a timestamp column, not %s: put the timestamp transform before filter", f.field, rec.Column(idx).DataType())
		}
		per := int64(ts.DataType().(*arrow.TimestampType).Unit.Multiplier())
		hasNulls := ts.NullN() > 0
		for i, v := range ts.TimestampValues() {
			ms := unitToMs(int64(v), per)
			if ms < f.after || ms >= f.before || (hasNulls && ts.IsNull(i)) {
				mask[i] = pipeline.FateFilter
				dropped = true
			}
		}
	}
	if f.program != nil {
		plan, err := f.plans.get(rec.Schema(), f.plan)
		if err != nil {
			return err
		}
		var res []uint8
		if plan.vec != nil {
			res = make([]uint8, n)
			plan.vec.eval(&vecBatch{rec: rec}, res)
		}
		env := map[string]any{}
		var machine vm.VM
		for i := 0; i < n; i++ {
			if mask[i] != pipeline.FateKeep {
				continue
			}
			r := vUnknown
			if res != nil {
				r = res[i]
			}
			if r == vUnknown {
				for _, bd := range plan.binds {
					v := exprValue(rec.Column(bd.col), i)
					if len(bd.sub) == 0 {
						env[bd.root] = v
						continue
					}
					setNested(env, bd.root, bd.sub, v)
				}
				out, err := machine.Run(f.program, env)
				if err != nil {
					if rejects == nil {
						rejects = map[int]*pipeline.Reject{}
					}
					rj := reject("filter", "", "filter: %s: %s", f.src, strings.ReplaceAll(err.Error(), "\n", " "))
					mask[i], rejects[i], dropped = pipeline.FateReject, rj.Reject, true
					continue
				}
				r = b2v(out.(bool))
			}
			if (r == vTrue) == f.dropWhen {
				mask[i], dropped = pipeline.FateFilter, true
			}
		}
	}
	if !dropped {
		return nil
	}
	return b.DropMask(f.mem, mask, rejects)
}

// setNested sets env[root][sub0][sub1]... = v, making maps on the way.
func setNested(env map[string]any, root string, sub []string, v any) {
	m, ok := env[root].(map[string]any)
	if !ok {
		m = map[string]any{}
		env[root] = m
	}
	for _, s := range sub[:len(sub)-1] {
		next, ok := m[s].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[s] = next
		}
		m = next
	}
	m[sub[len(sub)-1]] = v
}

// exprValue is row i as a Go value expr compares naturally.
func exprValue(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch x := a.(type) {
	case *record.JSONArray:
		var v any
		if json.Unmarshal(x.ValueBytes(i), &v) != nil {
			return x.Value(i)
		}
		return v
	case *array.String:
		return x.Value(i)
	case *array.LargeString:
		return x.Value(i)
	case *array.Boolean:
		return x.Value(i)
	case *array.Float32, *array.Float64:
		return numAsFloat(a, i)
	case *array.Int8, *array.Int16, *array.Int32, *array.Int64, *array.Uint8, *array.Uint16, *array.Uint32, *array.Uint64:
		return int(numAsInt(a, i))
	case *array.Timestamp:
		return x.Value(i).ToTime(x.DataType().(*arrow.TimestampType).Unit)
	case *array.Date32:
		return x.Value(i).ToTime()
	case *array.Date64:
		return x.Value(i).ToTime()
	}
	return a.ValueStr(i)
}

// reads selects the columns the expression reads: its roots, and the
// sub-path columns under a root (properties.plan under properties).
func (f *Filter) reads(name string) bool {
	for _, r := range f.roots {
		if !isExprBuiltin(r) && (name == r || strings.HasPrefix(name, r+".")) {
			return true
		}
	}
	return false
}

// Requires adds the columns the expression and the bounds read.
func (f *Filter) Requires(out pipeline.Columns) pipeline.Columns {
	if out.All {
		return out
	}
	names := []string{}
	if f.after != math.MinInt64 || f.before != math.MaxInt64 {
		names = append(names, f.field)
	}
	for _, r := range f.roots {
		if !isExprBuiltin(r) {
			names = append(names, r) // a root names a column or a JSON object column
		}
	}
	return requireNames(out, names...)
}
