// Package sampledata generates deterministic sample inputs (a fixed seed
// gives the same bytes) for examples, tests and benchmarks: orders as
// Parquet, signups as CSV, Segment archive messages as NDJSON.
package sampledata

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
)

var (
	events     = []string{"Order Completed", "Order Refunded", "Checkout Started", "Subscription Renewed"}
	currencies = []string{"USD", "EUR", "GBP", "JPY"}
	plans      = []string{"free", "starter", "pro", "enterprise"}
	countries  = []string{"US", "FR", "GB", "DE", "JP", "BR", "IN", "CA"}
	agents     = []string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
	}
	firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus"}
	lastNames  = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Torvalds"}
	// Base is the first timestamp; rows are spaced a few seconds apart.
	Base = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
)

// OrdersSchema is the schema of WriteOrdersParquet's files.
var OrdersSchema = arrow.NewSchema([]arrow.Field{
	{Name: "order_id", Type: arrow.BinaryTypes.String},
	{Name: "customer_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "anonymous_id", Type: arrow.BinaryTypes.String},
	{Name: "event_name", Type: arrow.BinaryTypes.String},
	{Name: "created_at", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
	{Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "currency", Type: arrow.BinaryTypes.String},
	{Name: "plan", Type: arrow.BinaryTypes.String},
	{Name: "country", Type: arrow.BinaryTypes.String},
	{Name: "ip", Type: arrow.BinaryTypes.String},
	{Name: "user_agent", Type: arrow.BinaryTypes.String},
	{Name: "email", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewPCG(uint64(seed), 0x5eed)) }

func pick(r *rand.Rand, l []string) string { return l[r.IntN(len(l))] }

// DefaultRowGroupRows is the row group size of WriteOrdersParquet.
const DefaultRowGroupRows = 64 << 10

// WriteOrdersParquet writes rows orders as snappy-compressed Parquet in
// row groups of DefaultRowGroupRows.
func WriteOrdersParquet(w io.Writer, rows int, seed int64) error {
	return WriteOrdersParquetRowGroups(w, rows, seed, DefaultRowGroupRows)
}

// WriteOrdersParquetRowGroups is WriteOrdersParquet with a chosen row
// group size (tests resume across row group boundaries).
func WriteOrdersParquetRowGroups(w io.Writer, rows int, seed int64, rowGroupRows int) error {
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithMaxRowGroupLength(int64(rowGroupRows)), parquet.WithDictionaryDefault(true))
	// Hide w's Close: the Parquet writer would close the caller's file.
	fw, err := pqarrow.NewFileWriter(OrdersSchema, struct{ io.Writer }{w}, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return err
	}
	r := newRand(seed)
	b := array.NewRecordBuilder(memory.DefaultAllocator, OrdersSchema)
	defer b.Release()
	chunk := min(rowGroupRows, 8192)
	for done := 0; done < rows; {
		n := min(chunk, rows-done)
		for i := done; i < done+n; i++ {
			appendOrder(b, r, i)
		}
		rec := b.NewRecord()
		err := fw.WriteBuffered(rec)
		rec.Release()
		if err != nil {
			fw.Close()
			return err
		}
		done += n
		if done%rowGroupRows == 0 && done < rows {
			fw.NewBufferedRowGroup()
		}
	}
	return fw.Close()
}

func appendOrder(b *array.RecordBuilder, r *rand.Rand, i int) {
	str := func(c int, s string) { b.Field(c).(*array.StringBuilder).Append(s) }
	cust := r.IntN(5000)
	str(0, "ord_"+strconv.Itoa(100000+i))
	if r.IntN(10) == 0 {
		b.Field(1).AppendNull()
	} else {
		str(1, "cus_"+strconv.Itoa(cust))
	}
	str(2, fmt.Sprintf("anon-%08x", r.Uint32()))
	str(3, pick(r, events))
	ts := Base.Add(time.Duration(i)*7*time.Second + time.Duration(r.IntN(5000))*time.Millisecond)
	b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMilli()))
	if r.IntN(33) == 0 {
		b.Field(5).AppendNull()
	} else {
		b.Field(5).(*array.Float64Builder).Append(float64(r.IntN(100000)) / 100)
	}
	str(6, pick(r, currencies))
	str(7, pick(r, plans))
	str(8, pick(r, countries))
	str(9, fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(223), r.IntN(256), r.IntN(256), 1+r.IntN(254)))
	str(10, pick(r, agents))
	if r.IntN(7) == 0 {
		b.Field(11).AppendNull()
	} else {
		str(11, "user"+strconv.Itoa(cust)+"@example.com")
	}
}

// SignupsHeader are the columns of WriteSignupsCSV.
var SignupsHeader = []string{"user_id", "email", "name", "plan", "signed_up_at", "country"}

// WriteSignupsCSV writes a header and rows signups. Some names hold a
// comma (quoted fields); some emails are empty.
func WriteSignupsCSV(w io.Writer, rows int, seed int64) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	r := newRand(seed)
	if err := cw.Write(SignupsHeader); err != nil {
		return err
	}
	rec := make([]string, len(SignupsHeader))
	for i := 0; i < rows; i++ {
		rec[0] = "usr_" + strconv.Itoa(1+i)
		rec[1] = "user" + strconv.Itoa(1+i) + "@example.com"
		if r.IntN(20) == 0 {
			rec[1] = ""
		}
		rec[2] = pick(r, firstNames) + " " + pick(r, lastNames)
		if r.IntN(10) == 0 {
			rec[2] += ", Jr."
		}
		rec[3] = pick(r, plans)
		rec[4] = Base.Add(time.Duration(i)*13*time.Minute + time.Duration(r.IntN(600))*time.Second).Format(time.RFC3339)
		rec[5] = pick(r, countries)
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

// WriteArchiveNDJSON writes rows Segment archive messages, one JSON
// object a line: mostly tracks, some identifies, with nested properties,
// traits and context. Compress by wrapping w.
func WriteArchiveNDJSON(w io.Writer, rows int, seed int64) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	r := newRand(seed)
	var buf []byte
	for i := 0; i < rows; i++ {
		cust := r.IntN(5000)
		ts := Base.Add(time.Duration(i) * 7 * time.Second)
		buf = buf[:0]
		if r.IntN(5) == 0 {
			buf = append(buf, `{"type":"identify","userId":"cus_`...)
			buf = strconv.AppendInt(buf, int64(cust), 10)
			buf = append(buf, `","traits":{"email":"user`...)
			buf = strconv.AppendInt(buf, int64(cust), 10)
			buf = append(buf, `@example.com","plan":"`...)
			buf = append(buf, pick(r, plans)...)
			buf = append(buf, `"}`...)
		} else {
			buf = append(buf, `{"type":"track","event":"`...)
			buf = append(buf, pick(r, events)...)
			buf = append(buf, `","userId":"cus_`...)
			buf = strconv.AppendInt(buf, int64(cust), 10)
			buf = append(buf, `","properties":{"order_id":"ord_`...)
			buf = strconv.AppendInt(buf, int64(100000+i), 10)
			buf = append(buf, `","total":`...)
			buf = strconv.AppendFloat(buf, float64(r.IntN(100000))/100, 'f', -1, 64)
			buf = append(buf, `,"currency":"`...)
			buf = append(buf, pick(r, currencies)...)
			buf = append(buf, `","items":[{"sku":"sku-`...)
			buf = strconv.AppendInt(buf, int64(r.IntN(500)), 10)
			buf = append(buf, `","qty":`...)
			buf = strconv.AppendInt(buf, int64(1+r.IntN(4)), 10)
			buf = append(buf, `}]}`...)
		}
		buf = append(buf, `,"anonymousId":"anon-`...)
		buf = append(buf, fmt.Sprintf("%08x", r.Uint32())...)
		buf = append(buf, `","messageId":"msg-`...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, `","timestamp":"`...)
		buf = ts.AppendFormat(buf, "2006-01-02T15:04:05.000Z")
		buf = append(buf, `","context":{"ip":"`...)
		buf = append(buf, fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(223), r.IntN(256), r.IntN(256), 1+r.IntN(254))...)
		buf = append(buf, `","userAgent":"`...)
		buf = append(buf, pick(r, agents)...)
		buf = append(buf, `","library":{"name":"analytics.js","version":"4.1.0"}},"sentAt":"`...)
		buf = ts.Add(time.Second).AppendFormat(buf, "2006-01-02T15:04:05.000Z")
		buf = append(buf, `","version":2}`...)
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}
