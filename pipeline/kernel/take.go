// Package kernel holds the Arrow kernels the engine's batches need and
// arrow/go v15 lacks or gets wrong: taking rows in runs (its take kernel is
// quadratic on strings) and decoding dictionary columns.
package kernel

import (
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/bitutil"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// TakeRuns copies the rows in runs ([start, end) pairs, n rows in all) of
// arr into a new array.
// Flat types and dictionaries' indices are copied directly; anything else
// (lists, structs) is concatenated from slices, which is linear too but costs
// an allocation per run.
func TakeRuns(mem memory.Allocator, arr arrow.Array, runs [][2]int, n int) (arrow.Array, error) {
	if n == 0 {
		return array.NewSlice(arr, 0, 0), nil
	}
	dt := arr.DataType()
	if ext, ok := arr.(array.ExtensionArray); ok {
		st, err := TakeRuns(mem, ext.Storage(), runs, n)
		if err != nil {
			return nil, err
		}
		defer st.Release()
		return array.NewExtensionArrayWithStorage(dt.(arrow.ExtensionType), st), nil
	}
	if d, ok := arr.(*array.Dictionary); ok {
		// The indices are a flat column; the dictionary is shared as is.
		idx, err := TakeRuns(mem, d.Indices(), runs, n)
		if err != nil {
			return nil, err
		}
		defer idx.Release()
		return array.NewDictionaryArray(dt, idx, d.Dictionary()), nil
	}
	data := arr.Data()
	off := data.Offset()
	bufs := data.Buffers()

	var validity *memory.Buffer
	nulls := 0
	if arr.NullN() > 0 && dt.ID() != arrow.NULL {
		validity = copyBits(mem, bufs[0].Bytes(), off, runs, n)
		defer validity.Release()
		nulls = n - bitutil.CountSetBits(validity.Bytes(), 0, n)
	}
	var outBufs []*memory.Buffer
	switch dt.ID() {
	case arrow.NULL:
		return array.NewNull(n), nil
	case arrow.BOOL:
		vals := copyBits(mem, bufs[1].Bytes(), off, runs, n)
		defer vals.Release()
		outBufs = []*memory.Buffer{validity, vals}
	case arrow.STRING, arrow.BINARY:
		offs, vals := copyVarBinary(mem, arrow.Int32Traits.CastFromBytes(bufs[1].Bytes())[off:], bufs[2].Bytes(), runs, n)
		defer offs.Release()
		defer vals.Release()
		outBufs = []*memory.Buffer{validity, offs, vals}
	case arrow.LARGE_STRING, arrow.LARGE_BINARY:
		offs, vals := copyVarBinary(mem, arrow.Int64Traits.CastFromBytes(bufs[1].Bytes())[off:], bufs[2].Bytes(), runs, n)
		defer offs.Release()
		defer vals.Release()
		outBufs = []*memory.Buffer{validity, offs, vals}
	default:
		fw, ok := dt.(arrow.FixedWidthDataType)
		if !ok || dt.ID() == arrow.DICTIONARY || fw.BitWidth()%8 != 0 || len(data.Children()) > 0 || len(bufs) != 2 {
			return concatRuns(mem, arr, runs)
		}
		w := fw.BitWidth() / 8
		vals := memory.NewResizableBuffer(mem)
		defer vals.Release()
		vals.Resize(n * w)
		dst, src := vals.Bytes(), bufs[1].Bytes()
		pos := 0
		for _, r := range runs {
			pos += copy(dst[pos:], src[(off+r[0])*w:(off+r[1])*w])
		}
		outBufs = []*memory.Buffer{validity, vals}
	}
	out := array.NewData(dt, n, outBufs, nil, nulls, 0)
	defer out.Release()
	return array.MakeFromData(out), nil
}

// copyBits gathers the bits of runs (offset by off) into a new bitmap.
func copyBits(mem memory.Allocator, src []byte, off int, runs [][2]int, n int) *memory.Buffer {
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(int(bitutil.BytesForBits(int64(n))))
	dst := buf.Bytes()
	pos := 0
	for _, r := range runs {
		if l := r[1] - r[0]; l == 1 {
			bitutil.SetBitTo(dst, pos, bitutil.BitIsSet(src, off+r[0]))
			pos++
		} else {
			bitutil.CopyBitmap(src, off+r[0], l, dst, pos)
			pos += l
		}
	}
	return buf
}

// copyVarBinary gathers the values of runs from a string/binary column
// (offs already advanced by the array offset) into new offset and data
// buffers, each allocated once.
func copyVarBinary[T int32 | int64](mem memory.Allocator, offs []T, data []byte, runs [][2]int, n int) (*memory.Buffer, *memory.Buffer) {
	var total T
	for _, r := range runs {
		total += offs[r[1]] - offs[r[0]]
	}
	var zero T
	width := int(unsafe.Sizeof(zero))
	ob := memory.NewResizableBuffer(mem)
	ob.Resize((n + 1) * width)
	db := memory.NewResizableBuffer(mem)
	db.Resize(int(total))
	var outOffs []T
	switch any(zero).(type) {
	case int32:
		outOffs = any(arrow.Int32Traits.CastFromBytes(ob.Bytes())).([]T)
	default:
		outOffs = any(arrow.Int64Traits.CastFromBytes(ob.Bytes())).([]T)
	}
	dst := db.Bytes()
	var cur T
	pos := 0
	for _, r := range runs {
		base := offs[r[0]]
		for i := r[0]; i < r[1]; i++ {
			outOffs[pos] = cur + offs[i] - base
			pos++
		}
		end := offs[r[1]]
		copy(dst[cur:], data[base:end])
		cur += end - base
	}
	outOffs[n] = cur
	return ob, db
}

// concatRuns is the general fallback: one slice per run, concatenated.
func concatRuns(mem memory.Allocator, arr arrow.Array, runs [][2]int) (arrow.Array, error) {
	parts := make([]arrow.Array, len(runs))
	for i, r := range runs {
		parts[i] = array.NewSlice(arr, int64(r[0]), int64(r[1]))
	}
	defer func() {
		for _, p := range parts {
			p.Release()
		}
	}()
	return array.Concatenate(parts, mem)
}
