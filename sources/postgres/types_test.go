package postgres

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

const typesTable = `
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE types (
  id int PRIMARY KEY,
  i2 smallint, i4 integer, i8 bigint,
  f4 real, f8 double precision,
  n numeric, n2 numeric(10,2),
  b boolean,
  t text, vc varchar(10), c char(3),
  u uuid,
  d date, ts timestamp, tstz timestamptz,
  j json, jb jsonb,
  ai int[], at text[], a2 int[][], atz timestamptz[], an numeric[],
  m mood, iv interval, am mood[]
);
INSERT INTO types VALUES
 (1, -32768, 2147483647, -9223372036854775808, 1.5, -2.25e-300,
  123456789.000123456789, 12.5, true,
  'héllo "q"', 'abc', 'x',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '2024-02-29', '2024-03-10 02:30:00.123456', '2024-01-02 03:04:05.678901+02',
  '{"a": [1, 2]}', '{"b": {"c": null}}',
  '{1,NULL,3}', '{"x","y \"z\""}', '{{1,2},{3,4}}', '{"2024-01-01 00:00:00+00"}', '{1.50,-2}',
  'happy', '1 day 02:03:04', '{sad,happy}'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, 0, 0, 0, 0, 0, 0, 0, false, '', '', '', '00000000-0000-0000-0000-000000000000',
  '0044-03-15 BC', '1999-12-31 23:59:59.999999', '1970-01-01 00:00:00+00',
  '[]', '[]', '{}', '{}', '{}', '{}', '{}', 'sad', '0', '{}');
`

// Every type the source decodes, with nulls, in binary (COPY and cursor)
// and in the text format Redshift is read in: each arrives as its Arrow
// type with the same values.
func TestEveryTypeWithNulls(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	d.exec(t, typesTable)
	want := []string{
		`{"id":1,"i2":-32768,"i4":2147483647,"i8":-9223372036854775808,"f4":1.5,"f8":-2.25e-300,` +
			`"n":123456789.00012346,"n2":12.5,"b":true,"t":"héllo \"q\"","vc":"abc","c":"x  ",` +
			`"u":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","d":"2024-02-29",` +
			`"ts":"2024-03-10 07:30:00.123456","tstz":"2024-01-02 01:04:05.678901",` +
			`"j":{"a": [1, 2]},"jb":{"b": {"c": null}},` +
			`"ai":[1,null,3],"at":["x","y \"z\""],"a2":[[1,2],[3,4]],"atz":["2024-01-01T00:00:00Z"],"an":[1.50,-2],` +
			`"m":"happy","iv":"1 day 02:03:04","am":["sad","happy"]}`,
		`{"id":2,"i2":null,"i4":null,"i8":null,"f4":null,"f8":null,"n":null,"n2":null,"b":null,"t":null,"vc":null,"c":null,` +
			`"u":null,"d":null,"ts":null,"tstz":null,"j":null,"jb":null,"ai":null,"at":null,"a2":null,"atz":null,"an":null,` +
			`"m":null,"iv":null,"am":null}`,
		`{"id":3,"i2":0,"i4":0,"i8":0,"f4":0,"f8":0,"n":0,"n2":0,"b":false,"t":"","vc":"","c":"   ",` +
			`"u":"00000000-0000-0000-0000-000000000000","d":"-0043-03-15",` +
			`"ts":"2000-01-01 04:59:59.999999","tstz":"1970-01-01 00:00:00",` +
			`"j":[],"jb":[],"ai":[],"at":[],"a2":[],"atz":[],"an":[],"m":"sad","iv":"00:00:00","am":[]}`,
	}
	for _, mode := range []struct{ name, body string }{
		{"copy", "stream: copy"},
		{"cursor", "stream: cursor"},
		{"text", "stream: cursor"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			env := newEnv(t)
			src := d.source(t, env, "table: types\ntimezone: America/New_York\n"+mode.body)
			src.textWire = mode.name == "text"
			rows, rejects := readAll(t, src, nil, 2)
			if len(rejects) > 0 {
				t.Fatalf("rejects: %+v", rejects)
			}
			var got []string
			for _, l := range rows {
				for _, r := range l {
					got = append(got, r.json)
				}
			}
			sort.Strings(got) // {"id":1... {"id":2... {"id":3...
			if len(got) != len(want) {
				t.Fatalf("%d rows:\n%s", len(got), strings.Join(got, "\n"))
			}
			for i := range want {
				g := got[i]
				if mode.name == "text" {
					// to_json writes arrays with its own spacing and
					// timestamps as it prints them.
					g = strings.NewReplacer(`"2024-01-01T00:00:00+00:00"`, `"2024-01-01T00:00:00Z"`).Replace(g)
				}
				if g != want[i] {
					t.Errorf("row %d:\n got %s\nwant %s", i, g, want[i])
				}
			}
			if !strings.Contains(env.logs.String(), "iv") || !strings.Contains(env.logs.String(), "interval") {
				t.Errorf("no note for the interval column read as text:\n%s", env.logs.String())
			}
		})
	}
}

// The Arrow types each column arrives as.
func TestArrowTypes(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	d.exec(t, typesTable)
	for _, mod := range []string{"float64", "decimal", "string"} {
		env := newEnv(t)
		src := d.source(t, env, "table: types\nnumeric: "+mod)
		splits, err := src.Splits(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		rd, err := src.Open(context.Background(), splits[0], pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 10})
		if err != nil {
			t.Fatal(err)
		}
		b, err := rd.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		sc := b.Record.Schema()
		typeOf := func(n string) arrow.DataType { return sc.Field(sc.FieldIndices(n)[0]).Type }
		wants := map[string]string{"i2": "int16", "i4": "int32", "i8": "int64", "f4": "float32", "f8": "float64", "b": "bool",
			"t": "utf8", "u": "utf8", "d": "date32", "ts": "timestamp[us, tz=UTC]", "tstz": "timestamp[us, tz=UTC]", "iv": "utf8"}
		switch mod {
		case "float64":
			wants["n"], wants["n2"] = "float64", "float64"
		case "decimal":
			wants["n"], wants["n2"] = "decimal(38, 18)", "decimal(10, 2)"
		case "string":
			wants["n"], wants["n2"] = "utf8", "utf8"
		}
		for n, w := range wants {
			if got := typeOf(n).String(); got != w {
				t.Errorf("numeric %s: %s is %s, want %s", mod, n, got, w)
			}
		}
		for _, n := range []string{"j", "jb", "ai", "a2", "am"} {
			if !record.IsJSON(typeOf(n)) {
				t.Errorf("%s is %s, want the JSON column type", n, typeOf(n))
			}
		}
		if mod != "float64" {
			// The exact digits (the message encoder writes a decimal's
			// text as a JSON number).
			// (arrow's own Decimal128.ValueStr goes through a binary
			// float: the digits are checked on the integer.)
			col := func(n string) string {
				a := b.Record.Column(sc.FieldIndices(n)[0])
				if d, ok := a.(*array.Decimal128); ok {
					return exactDecimal(d.Value(0).BigInt().String(), d.DataType().(*arrow.Decimal128Type).Scale)
				}
				return a.ValueStr(0)
			}
			got := col("n") + " " + col("n2")
			want := map[string]string{"decimal": "123456789.000123456789000000 12.50", "string": "123456789.000123456789 12.50"}[mod]
			if got != want {
				t.Errorf("numeric %s: %s, want %s", mod, got, want)
			}
		}
		b.Release()
		rd.Close()
	}
}

// exactDecimal writes an unscaled integer with scale digits after the point.
func exactDecimal(digits string, scale int32) string {
	neg := strings.HasPrefix(digits, "-")
	digits = strings.TrimPrefix(digits, "-")
	for int32(len(digits)) <= scale {
		digits = "0" + digits
	}
	out := digits[:int32(len(digits))-scale]
	if scale > 0 {
		out += "." + digits[int32(len(digits))-scale:]
	}
	if neg {
		out = "-" + out
	}
	return out
}
