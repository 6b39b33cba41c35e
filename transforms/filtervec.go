package transforms

import (
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/expr-lang/expr/ast"

	"github.com/backfillhq/backfill/pipeline/record"
)

// The filter expression is evaluated a column at a time where it is made
// of comparisons between a column and a literal, joined by &&, || and !.
// That costs a few ns per row, against ~0.3-1 µs for building an env and
// running expr's VM per row. Whatever the vectorized form cannot decide
// exactly as expr would (a function call, an object or array value, a
// JSON text that does not decode, a null in an ordered comparison, which
// is an error in expr) is vUnknown, and those
// rows, and only those, still run through expr: results and error messages
// are expr's own.
const (
	vFalse uint8 = iota
	vTrue
	vUnknown
)

// vecNode evaluates a sub-expression for every row of a batch into out.
type vecNode interface {
	eval(b *vecBatch, out []uint8)
}

// vecBatch is one record being evaluated, with the JSON paths extracted
// so far: comparisons reading one path share one scan of the column.
type vecBatch struct {
	rec  arrow.Record
	json map[string]*jsonVec // by column and path
}

func (b *vecBatch) jsonPath(col int, path []string) *jsonVec {
	k := strconv.Itoa(col) + "\x00" + strings.Join(path, "\x00")
	v, ok := b.json[k]
	if !ok {
		if b.json == nil {
			b.json = map[string]*jsonVec{}
		}
		v = extractJSONPath(b.rec.Column(col).(*record.JSONArray), path)
		b.json[k] = v
	}
	return v
}

// vecCols maps a path as written in the expression (event,
// properties.total) to the flat column that alone provides its value in
// expr's env; json maps a root to the JSON column that alone provides it,
// so paths below it are read from the column's text.
type vecCols struct {
	flat map[string]int
	json map[string]int
}

// newVecCols picks the paths whose value in the env is one scalar column
// of a type the vectorized comparisons model.
func newVecCols(s *arrow.Schema, binds []filterBind) vecCols {
	whole := map[string]bool{}
	for _, b := range binds {
		if len(b.sub) == 0 && whole[b.root] {
			whole[b.root] = false // two columns for one name: leave it to expr
		} else if len(b.sub) == 0 {
			whole[b.root] = true
		}
	}
	nested := map[string]bool{}
	for _, b := range binds {
		if len(b.sub) > 0 {
			nested[b.root] = true
		}
	}
	cols := vecCols{flat: map[string]int{}, json: map[string]int{}}
	for _, b := range binds {
		_, hasWhole := whole[b.root]
		if len(b.sub) > 0 && hasWhole {
			continue // nested columns inside a whole object: leave it to expr
		}
		if len(b.sub) == 0 && !whole[b.root] {
			continue
		}
		if len(b.sub) == 0 && !nested[b.root] && record.IsJSON(s.Field(b.col).Type) {
			cols.json[b.root] = b.col
			continue
		}
		if !vecType(s.Field(b.col).Type) {
			continue
		}
		// later binds of one path win, as they do in the env
		cols.flat[strings.Join(append([]string{b.root}, b.sub...), ".")] = b.col
	}
	return cols
}

func vecType(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.FLOAT32, arrow.FLOAT64:
		return true
	}
	return false // JSON is an extension type: its ID is EXTENSION
}

// compileVec returns the vectorized form of n, or nil when n is not one
// it models.
func compileVec(n ast.Node, cols vecCols) vecNode {
	switch x := n.(type) {
	case *ast.UnaryNode:
		if x.Operator == "!" || x.Operator == "not" {
			if in := compileVec(x.Node, cols); in != nil {
				return vecNot{in}
			}
		}
	case *ast.BinaryNode:
		switch x.Operator {
		case "&&", "and", "||", "or":
			l, r := compileVec(x.Left, cols), compileVec(x.Right, cols)
			if l == nil && r == nil {
				return nil
			}
			// a side expr must decide is vUnknown on every row; the other
			// side still decides rows through short-circuiting
			if l == nil {
				l = vecUnknown{}
			}
			if r == nil {
				r = vecUnknown{}
			}
			return &vecBool{and: x.Operator == "&&" || x.Operator == "and", l: l, r: r}
		case "==", "!=", "<", "<=", ">", ">=":
			op := x.Operator
			c, okc := cols.resolve(x.Left)
			lit, okl := literal(x.Right)
			if !okc || !okl {
				c, okc = cols.resolve(x.Right)
				lit, okl = literal(x.Left)
				op = flip(op)
			}
			if okc && okl {
				return newVecCmp(c, op, lit)
			}
		case "in":
			c, ok := cols.resolve(x.Left)
			arr, isArr := x.Right.(*ast.ArrayNode)
			if !ok || !isArr || len(arr.Nodes) == 0 {
				return nil
			}
			var lits []any
			for _, e := range arr.Nodes {
				v, ok := literal(e)
				if !ok || v == nil {
					return nil
				}
				lits = append(lits, v)
			}
			return newVecIn(c, lits)
		}
	}
	return nil
}

// resolve finds the column a path expression reads.
func (c vecCols) resolve(n ast.Node) (vecColRef, bool) {
	p, ok := exprPath(n)
	if !ok {
		return vecColRef{}, false
	}
	if i, ok := c.flat[strings.Join(p, ".")]; ok {
		return vecColRef{col: i}, true
	}
	if i, ok := c.json[p[0]]; ok {
		return vecColRef{col: i, json: true, path: p[1:]}, true
	}
	return vecColRef{}, false
}

// vecColRef is a flat column, or a path below (or at) a JSON column.
type vecColRef struct {
	col  int
	json bool
	path []string
}

// exprPath is the keys of a member chain: properties.plan.
func exprPath(n ast.Node) ([]string, bool) {
	switch x := n.(type) {
	case *ast.IdentifierNode:
		if isExprBuiltin(x.Value) {
			return nil, false
		}
		return []string{x.Value}, true
	case *ast.MemberNode:
		prop, ok := x.Property.(*ast.StringNode)
		if x.Optional || x.Method || !ok {
			return nil, false
		}
		p, ok := exprPath(x.Node)
		return append(p, prop.Value), ok
	}
	return nil, false
}

// literal is a constant operand: string, int, float64, bool or nil.
func literal(n ast.Node) (any, bool) {
	switch x := n.(type) {
	case *ast.BoolNode:
		return x.Value, true
	case *ast.StringNode:
		return x.Value, true
	case *ast.IntegerNode:
		return x.Value, true
	case *ast.FloatNode:
		return x.Value, true
	case *ast.NilNode:
		return nil, true
	case *ast.UnaryNode:
		if x.Operator == "-" {
			switch v := x.Node.(type) {
			case *ast.IntegerNode:
				return -v.Value, true
			case *ast.FloatNode:
				return -v.Value, true
			}
		}
	}
	return nil, false
}

func flip(op string) string {
	switch op {
	case "<":
		return ">"
	case "<=":
		return ">="
	case ">":
		return "<"
	case ">=":
		return "<="
	}
	return op
}

type vecUnknown struct{}

func (vecUnknown) eval(_ *vecBatch, out []uint8) {
	for i := range out {
		out[i] = vUnknown
	}
}

type vecNot struct{ in vecNode }

func (v vecNot) eval(b *vecBatch, out []uint8) {
	v.in.eval(b, out)
	for i, r := range out {
		if r != vUnknown {
			out[i] = r ^ 1
		}
	}
}

// vecBool is && or || with expr's short-circuit: the right side only
// matters where the left one is decided and does not settle the result,
// so an error on the right is never reached where the left settles it.
type vecBool struct {
	and  bool
	l, r vecNode
}

func (v *vecBool) eval(b *vecBatch, out []uint8) {
	v.l.eval(b, out)
	right := make([]uint8, len(out))
	v.r.eval(b, right)
	settle := vFalse // && is settled by a false left side
	if !v.and {
		settle = vTrue
	}
	for i, l := range out {
		if l != vUnknown && l != settle {
			out[i] = right[i]
		}
	}
}

// vecCmp compares a column with a literal. Null compares as nil: equal to
// nil only, and an error (vUnknown) for an ordered comparison.
type vecCmp struct {
	col int
	op  string
	lit any
}

func newVecCmp(c vecColRef, op string, lit any) vecNode {
	if lit == nil && op != "==" && op != "!=" {
		return nil
	}
	if _, isBool := lit.(bool); isBool && (!c.json || op != "==" && op != "!=") {
		return nil // ordered bools are an error; bool columns are not modeled
	}
	if c.json {
		return &vecJSONCmp{col: c.col, path: c.path, op: op, lit: lit}
	}
	return &vecCmp{col: c.col, op: op, lit: lit}
}

func (v *vecCmp) eval(b *vecBatch, out []uint8) {
	a := b.rec.Column(v.col)
	if v.lit == nil {
		want := v.op == "=="
		for i := range out {
			out[i] = b2v(a.IsNull(i) == want)
		}
		return
	}
	nullRes := nullResult(v.op)
	switch lit := v.lit.(type) {
	case string:
		sa, ok := stringCol(a)
		if !ok {
			fill(out, vUnknown) // string literal vs number column: leave it to expr
			return
		}
		for i := range out {
			if a.IsNull(i) {
				out[i] = nullRes
				continue
			}
			out[i] = b2v(cmpOrdered(sa.Value(i), lit, v.op))
		}
	case int, float64:
		ints, floats, ok := numCol(a)
		if !ok {
			fill(out, vUnknown)
			return
		}
		li, litInt := lit.(int)
		lf := float64(li)
		if !litInt {
			lf = lit.(float64)
		}
		switch {
		case ints != nil && litInt: // int with int: compared as integers
			l := int64(li)
			for i, x := range ints {
				out[i] = b2v(cmpOrdered(x, l, v.op))
			}
		case ints != nil: // int with float: the int as float64, as expr does
			for i, x := range ints {
				out[i] = b2v(cmpOrdered(float64(x), lf, v.op))
			}
		default:
			for i, x := range floats {
				out[i] = b2v(cmpOrdered(x, lf, v.op))
			}
		}
		if a.NullN() > 0 {
			for i := range out {
				if a.IsNull(i) {
					out[i] = nullRes
				}
			}
		}
	}
}

type stringValues interface{ Value(int) string }

func stringCol(a arrow.Array) (stringValues, bool) {
	switch x := a.(type) {
	case *array.String:
		return x, true
	case *array.LargeString:
		return x, true
	}
	return nil, false
}

// numCol widens a numeric column as exprValue does: integers to int64
// (expr's int), floats to float64.
func numCol(a arrow.Array) ([]int64, []float64, bool) {
	switch x := a.(type) {
	case *array.Int8:
		return widen[int8, int64](x.Int8Values()), nil, true
	case *array.Int16:
		return widen[int16, int64](x.Int16Values()), nil, true
	case *array.Int32:
		return widen[int32, int64](x.Int32Values()), nil, true
	case *array.Int64:
		return x.Int64Values(), nil, true
	case *array.Uint8:
		return widen[uint8, int64](x.Uint8Values()), nil, true
	case *array.Uint16:
		return widen[uint16, int64](x.Uint16Values()), nil, true
	case *array.Uint32:
		return widen[uint32, int64](x.Uint32Values()), nil, true
	case *array.Float32:
		return nil, widen[float32, float64](x.Float32Values()), true
	case *array.Float64:
		return nil, x.Float64Values(), true
	}
	return nil, nil, false
}

func widen[S int8 | int16 | int32 | uint8 | uint16 | uint32 | float32, D int64 | float64](s []S) []D {
	d := make([]D, len(s))
	for i, x := range s {
		d[i] = D(x)
	}
	return d
}

func cmpOrdered[T string | int64 | float64](a, b T, op string) bool {
	switch op {
	case "==":
		return a == b
	case "!=":
		return a != b
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	}
	return a >= b
}

func b2v(b bool) uint8 {
	if b {
		return vTrue
	}
	return vFalse
}

func fill(out []uint8, v uint8) {
	for i := range out {
		out[i] = v
	}
}

// vecIn is `column in [literals]`. A null goes to expr.
type vecIn struct {
	col    int
	strs   map[string]bool
	floats map[float64]bool
	ints   map[int64]bool // int literals, for int columns
}

func newVecIn(c vecColRef, lits []any) vecNode {
	if c.json {
		return newVecJSONIn(c, lits)
	}
	v := &vecIn{col: c.col}
	kinds := map[string]bool{}
	for _, l := range lits {
		switch x := l.(type) {
		case string:
			if v.strs == nil {
				v.strs = map[string]bool{}
			}
			v.strs[x] = true
			kinds["s"] = true
		case int:
			if v.ints == nil {
				v.ints = map[int64]bool{}
			}
			v.ints[int64(x)] = true
			kinds["i"] = true
		case float64:
			if v.floats == nil {
				v.floats = map[float64]bool{}
			}
			v.floats[x] = true
			kinds["f"] = true
		default:
			return nil
		}
	}
	if len(kinds) != 1 {
		return nil
	}
	return v
}

func (v *vecIn) eval(b *vecBatch, out []uint8) {
	a := b.rec.Column(v.col)
	sa, isStr := stringCol(a)
	ints, floats, isNum := numCol(a)
	switch {
	case v.strs != nil && isStr:
		for i := range out {
			out[i] = b2v(v.strs[sa.Value(i)])
		}
	case v.ints != nil && ints != nil:
		for i, x := range ints {
			out[i] = b2v(v.ints[x])
		}
	case v.floats != nil && isNum:
		if ints != nil {
			for i, x := range ints {
				out[i] = b2v(v.floats[float64(x)])
			}
		} else {
			for i, x := range floats {
				out[i] = b2v(v.floats[x])
			}
		}
	default:
		fill(out, vUnknown) // int literals with a float column, mixed kinds
		return
	}
	if a.NullN() > 0 {
		for i := range out {
			if a.IsNull(i) {
				out[i] = vUnknown
			}
		}
	}
}

// vecJSONCmp compares the value at a path into a JSON column with a
// literal. A null or missing key is nil, as for vecCmp; a value of another
// kind than the literal's, an object or an array goes to expr.
type vecJSONCmp struct {
	col  int
	path []string
	op   string
	lit  any
}

func (v *vecJSONCmp) eval(b *vecBatch, out []uint8) {
	jv := b.jsonPath(v.col, v.path)
	if v.lit == nil {
		want := v.op == "=="
		for i, k := range jv.kind {
			switch k {
			case jUnknown:
				out[i] = vUnknown
			case jNull:
				out[i] = b2v(want)
			default:
				out[i] = b2v(!want)
			}
		}
		return
	}
	nullRes := nullResult(v.op)
	want := jNum
	var ls string
	var lf float64
	switch lit := v.lit.(type) {
	case string:
		want, ls = jStr, lit
	case int:
		lf = float64(lit) // against a float64, as expr compares them
	case float64:
		lf = lit
	case bool:
		want = jBool
		if lit {
			lf = 1
		}
	}
	for i, k := range jv.kind {
		switch {
		case k == jNull:
			out[i] = nullRes
		case k != want:
			out[i] = vUnknown
		case k == jStr:
			out[i] = b2v(cmpOrdered(jv.str[i], ls, v.op))
		default: // numbers, and bools as 0 or 1 with == and != only
			out[i] = b2v(cmpOrdered(jv.num[i], lf, v.op))
		}
	}
}

// vecJSONIn is `path in [literals]` on a JSON column, decided where
// vecIn decides it for a float64 or string column.
type vecJSONIn struct {
	col  int
	path []string
	set  *vecIn
}

func newVecJSONIn(c vecColRef, lits []any) vecNode {
	set, ok := newVecIn(vecColRef{col: c.col}, lits).(*vecIn)
	if !ok || set == nil || set.ints != nil {
		return nil // int literals with float64 values: as vecIn, left to expr
	}
	return &vecJSONIn{col: c.col, path: c.path, set: set}
}

func (v *vecJSONIn) eval(b *vecBatch, out []uint8) {
	jv := b.jsonPath(v.col, v.path)
	for i, k := range jv.kind {
		switch {
		case k == jStr && v.set.strs != nil:
			out[i] = b2v(v.set.strs[jv.str[i]])
		case k == jNum && v.set.floats != nil:
			out[i] = b2v(v.set.floats[jv.num[i]])
		default:
			out[i] = vUnknown
		}
	}
}

// nullResult is what nil <op> a literal gives in expr: false for ==, true
// for !=, and an error (unknown: the row goes to expr) for an ordering.
func nullResult(op string) uint8 {
	switch op {
	case "==":
		return vFalse
	case "!=":
		return vTrue
	}
	return vUnknown
}
