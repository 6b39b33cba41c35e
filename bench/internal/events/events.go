// Package events makes the benchmark's data set: Segment-like track events
// with 12 columns named by their message path (the record contract), about
// 370 bytes of JSON each (with messageId and context.library), written to and read from Parquet.
package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
)

// Schema is the data set's 12 columns.
var Schema = arrow.NewSchema([]arrow.Field{
	{Name: "type", Type: arrow.BinaryTypes.String},
	{Name: "event", Type: arrow.BinaryTypes.String},
	{Name: "userId", Type: arrow.BinaryTypes.String},
	{Name: "anonymousId", Type: arrow.BinaryTypes.String},
	{Name: "timestamp", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
	{Name: "properties.orderId", Type: arrow.BinaryTypes.String},
	{Name: "properties.revenue", Type: arrow.PrimitiveTypes.Float64},
	{Name: "properties.currency", Type: arrow.BinaryTypes.String},
	{Name: "properties.quantity", Type: arrow.PrimitiveTypes.Int64},
	{Name: "properties.coupon", Type: arrow.BinaryTypes.String},
	{Name: "context.ip", Type: arrow.BinaryTypes.String},
	{Name: "context.page.path", Type: arrow.BinaryTypes.String},
}, nil)

var names = []string{"Order Completed", "Product Viewed", "Product Added", "Checkout Started",
	"Cart Viewed", "Coupon Applied", "Payment Info Entered", "Product Removed"}
var currencies = []string{"USD", "EUR", "GBP", "JPY"}
var coupons = []string{"SPRING10", "WELCOME", "FREESHIP", "VIP20", "NONE"}

// Build makes rows [start, start+n) deterministically.
func Build(mem memory.Allocator, start, n int) arrow.Record {
	b := array.NewRecordBuilder(mem, Schema)
	defer b.Release()
	s := func(i int) *array.StringBuilder { return b.Field(i).(*array.StringBuilder) }
	base := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for j := 0; j < n; j++ {
		i := start + j
		x := uint64(i)*0x9E3779B97F4A7C15 + 1
		s(0).Append("track")
		s(1).Append(names[x%uint64(len(names))])
		s(2).Append(fmt.Sprintf("u%07d", x%5_000_000))
		s(3).Append(fmt.Sprintf("a%x", x>>20&0xffffffffff))
		b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(base + int64(i)*31_000))
		s(5).Append(fmt.Sprintf("o%d", i))
		b.Field(6).(*array.Float64Builder).Append(float64(x%100_000) / 100)
		s(7).Append(currencies[x%4])
		b.Field(8).(*array.Int64Builder).Append(int64(x%9 + 1))
		s(9).Append(coupons[x%5])
		s(10).Append(fmt.Sprintf("10.%d.%d.%d", x>>8&0xff, x>>16&0xff, x&0xff))
		s(11).Append(fmt.Sprintf("/checkout/%d", x%100_000))
	}
	return b.NewRecord()
}

// Write makes a Parquet file of rows, 64Ki rows per row group.
func Write(path string, rows int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithMaxRowGroupLength(1<<16))
	w, err := pqarrow.NewFileWriter(Schema, f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return err
	}
	mem := memory.NewGoAllocator()
	for start := 0; start < rows; start += 1 << 16 {
		rec := Build(mem, start, min(1<<16, rows-start))
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	return w.Close()
}

// Read streams a Parquet file's records of batchRows rows to fn; fn owns
// each record it gets (it must Release it).
func Read(ctx context.Context, path string, batchRows int, fn func(arrow.Record) error) error {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return err
	}
	defer pf.Close()
	mem := memory.NewGoAllocator()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(batchRows)}, mem)
	if err != nil {
		return err
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return err
	}
	defer rr.Release()
	for rr.Next() {
		rec := rr.Record()
		rec.Retain()
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
