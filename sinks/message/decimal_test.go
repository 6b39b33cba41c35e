package message

import (
	"encoding/json"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/decimal128"
	"github.com/apache/arrow/go/v15/arrow/decimal256"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
)

// Decimals go out exactly as their digits say: a numeric(38,2) of
// 12345678901234567890123456789012345.67 must not come out rounded
// through a binary float, nor 0.1 as 0.1000000000000000055.
func TestDecimalsAreExact(t *testing.T) {
	for _, tc := range []struct {
		digits string
		scale  int32
		want   string
	}{
		{"1", 1, "0.1"}, {"12345", 2, "123.45"}, {"-5", 3, "-0.005"}, {"7", -2, "700"}, {"0", -2, "0"},
		{"0", 2, "0.00"}, {"-120", 1, "-12.0"}, {"1234567890123456789012345678901234567", 2, "12345678901234567890123456789012345.67"},
	} {
		got := string(appendDecimalText(nil, tc.digits, tc.scale))
		if got != tc.want || !json.Valid([]byte(got)) {
			t.Errorf("%s scale %d: %s, want %s", tc.digits, tc.scale, got, tc.want)
		}
	}
	mem := arrowtest.CheckedMem(t)
	b128 := array.NewDecimal128Builder(mem, &arrow.Decimal128Type{Precision: 38, Scale: 2})
	defer b128.Release()
	n, _ := decimal128.FromString("12345678901234567890123456789012345.67", 38, 2)
	b128.Append(n)
	a128 := b128.NewArray()
	defer a128.Release()
	b256 := array.NewDecimal256Builder(mem, &arrow.Decimal256Type{Precision: 40, Scale: 1})
	defer b256.Release()
	m, _ := decimal256.FromString("0.1", 40, 1)
	b256.Append(m)
	a256 := b256.NewArray()
	defer a256.Release()
	for _, c := range []struct {
		a    arrow.Array
		want string
	}{{a128, "12345678901234567890123456789012345.67"}, {a256, "0.1"}} {
		w := newWriter(c.a.DataType(), "properties.total")
		w.bind(c.a)
		out, _ := w.write(nil, nil, 0)
		if string(out) != c.want {
			t.Errorf("%s: wrote %s, want %s", c.a.DataType(), out, c.want)
		}
	}
}
