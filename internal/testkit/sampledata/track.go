package sampledata

import (
	"fmt"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// TrackSchema is the columns of TrackEvents: 12, named by message path.
var TrackSchema = arrow.NewSchema([]arrow.Field{
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

var trackNames = []string{"Order Completed", "Product Viewed", "Product Added", "Checkout Started",
	"Cart Viewed", "Coupon Applied", "Payment Info Entered", "Product Removed"}
var trackCurrencies = []string{"USD", "EUR", "GBP", "JPY"}
var trackCoupons = []string{"SPRING10", "WELCOME", "FREESHIP", "VIP20", "NONE"}

// TrackEvents makes rows [start, start+n) of Segment-like track events
// whose columns are named by message path (the record contract after
// map): about 370 bytes of JSON each once encoded. Deterministic, for
// benchmarks of the encoder and the sinks.
func TrackEvents(mem memory.Allocator, start, n int) arrow.Record {
	b := array.NewRecordBuilder(mem, TrackSchema)
	defer b.Release()
	s := func(i int) *array.StringBuilder { return b.Field(i).(*array.StringBuilder) }
	base := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for j := 0; j < n; j++ {
		i := start + j
		x := uint64(i)*0x9E3779B97F4A7C15 + 1
		s(0).Append("track")
		s(1).Append(trackNames[x%uint64(len(trackNames))])
		s(2).Append(fmt.Sprintf("u%07d", x%5_000_000))
		s(3).Append(fmt.Sprintf("a%x", x>>20&0xffffffffff))
		b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(base + int64(i)*31_000))
		s(5).Append(fmt.Sprintf("o%d", i))
		b.Field(6).(*array.Float64Builder).Append(float64(x%100_000) / 100)
		s(7).Append(trackCurrencies[x%4])
		b.Field(8).(*array.Int64Builder).Append(int64(x%9 + 1))
		s(9).Append(trackCoupons[x%5])
		s(10).Append(fmt.Sprintf("10.%d.%d.%d", x>>8&0xff, x>>16&0xff, x&0xff))
		s(11).Append(fmt.Sprintf("/checkout/%d", x%100_000))
	}
	return b.NewRecord()
}
