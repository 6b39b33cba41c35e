package pipeline

import (
	"fmt"
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/bitutil"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// Row fates in a dense per-row mask, for DropMask.
const (
	FateKeep   uint8 = iota
	FateFilter       // drop silently, counted in Batch.Filtered
	FateReject       // dead-letter with the reason given in the rejects map
)

// RowFate says what becomes of one record row in Drop.
type RowFate struct {
	Reject *Reject // non-nil: dead-letter the row with this reason
	Filter bool    // true: drop the row silently as filtered
}

// Drop removes rows from the record. fates is indexed by record row; rows
// whose fate is zero are kept. Rejected rows move to Rejects with their
// split offset filled in; filtered rows are counted. See DropMask.
func (b *Batch) Drop(mem memory.Allocator, fates map[int]RowFate) error {
	if len(fates) == 0 || b.Record == nil {
		return nil
	}
	mask := make([]uint8, b.Record.NumRows())
	rejects := map[int]*Reject{}
	for i, f := range fates {
		switch {
		case f.Reject != nil:
			mask[i] = FateReject
			rejects[i] = f.Reject
		case f.Filter:
			mask[i] = FateFilter
		}
	}
	return b.DropMask(mem, mask, rejects)
}

// DropMask removes the rows whose mask entry is not FateKeep: rejected rows
// move to Rejects (in row order, split offset filled in, reason from
// rejects), filtered rows are counted, and Rows maps the surviving rows back
// to split offsets. The record is rebuilt once.
//
// It does not use arrow's compute.FilterRecordBatch: in arrow/go v15.0.2 its
// take kernel for string and binary columns (kernels.VarBinaryImpl) grows
// the output buffer by one value at a time when it runs out, and
// GoAllocator copies on every reallocation, which is quadratic in the
// surviving bytes (a 1M-row batch keeping 300k rows did not finish in 5
// minutes). Here each column is copied once into buffers sized up front, in
// runs of consecutive kept rows.
func (b *Batch) DropMask(mem memory.Allocator, mask []uint8, rejects map[int]*Reject) error {
	if b.Record == nil {
		return nil
	}
	n := int(b.Record.NumRows())
	if len(mask) != n {
		return fmt.Errorf("drop mask of %d rows for a batch of %d", len(mask), n)
	}
	var runs [][2]int // [start, end) of kept rows
	kept := 0
	for i := 0; i < n; {
		if mask[i] == FateKeep {
			j := i + 1
			for j < n && mask[j] == FateKeep {
				j++
			}
			runs = append(runs, [2]int{i, j})
			kept += j - i
			i = j
			continue
		}
		if mask[i] == FateReject {
			r := Reject{Reason: "rejected"}
			if rejects[i] != nil {
				r = *rejects[i]
			}
			r.Row = b.Row(i)
			b.Rejects = append(b.Rejects, r)
		} else {
			b.Filtered++
		}
		i++
	}
	if kept == n {
		return nil
	}
	rows := make([]int64, 0, kept)
	for _, r := range runs {
		for i := r[0]; i < r[1]; i++ {
			rows = append(rows, b.Row(i))
		}
	}
	rec := b.Record
	cols := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, c := range rec.Columns() {
		out, err := takeRuns(mem, c, runs, kept)
		if err != nil {
			return fmt.Errorf("dropping rows from batch %s[%d:%d], column %s: %w", b.Split, b.Start, b.End, rec.ColumnName(i), err)
		}
		cols[i] = out
	}
	b.ReplaceRecord(array.NewRecord(rec.Schema(), cols, int64(kept)))
	b.Rows = rows
	return nil
}

// takeRuns copies the rows in runs (n rows in all) of arr into a new array.
// Flat types and dictionaries' indices are copied directly; anything else
// (lists, structs) is concatenated from slices, which is linear too but costs
// an allocation per run.
func takeRuns(mem memory.Allocator, arr arrow.Array, runs [][2]int, n int) (arrow.Array, error) {
	if n == 0 {
		return array.NewSlice(arr, 0, 0), nil
	}
	dt := arr.DataType()
	if ext, ok := arr.(array.ExtensionArray); ok {
		st, err := takeRuns(mem, ext.Storage(), runs, n)
		if err != nil {
			return nil, err
		}
		defer st.Release()
		return array.NewExtensionArrayWithStorage(dt.(arrow.ExtensionType), st), nil
	}
	if d, ok := arr.(*array.Dictionary); ok {
		// The indices are a flat column; the dictionary is shared as is.
		idx, err := takeRuns(mem, d.Indices(), runs, n)
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
