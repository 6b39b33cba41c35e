package transforms

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

var fixedNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func TestTimestamp(t *testing.T) {
	tsType := func(u arrow.TimeUnit, tz string) arrow.DataType { return &arrow.TimestampType{Unit: u, TimeZone: tz} }
	tests := []struct {
		name     string
		conf     string
		in       col
		want     []string // output timestamp per kept row
		rejects  []string
		filtered int64
		wantErr  string
	}{
		{name: "RFC 3339 strings with zones and fractions", conf: "{}",
			in:   col{"timestamp", str, `["2024-01-02T03:04:05Z","2024-01-02T03:04:05.123+02:00","2024-01-02T03:04:05.5-05:00"]`},
			want: []string{"2024-01-02 03:04:05Z", "2024-01-02 01:04:05.123Z", "2024-01-02 08:04:05.5Z"}},
		{name: "ISO without zone in UTC, space, date only, +0000", conf: "{}",
			in:   col{"timestamp", str, `["2024-01-02T03:04:05.250","2024-01-02 03:04:05","2024-01-02","2024-01-02T03:04:05+0100"]`},
			want: []string{"2024-01-02 03:04:05.25Z", "2024-01-02 03:04:05Z", "2024-01-02 00:00:00Z", "2024-01-02 02:04:05Z"}},
		{name: "timezone for zone-less values only", conf: "timezone: Europe/Paris",
			in:   col{"timestamp", str, `["2024-07-01 10:00:00","2024-07-01T10:00:00Z"]`},
			want: []string{"2024-07-01 08:00:00Z", "2024-07-01 10:00:00Z"}},
		{name: "custom layouts and layout names", conf: "field: d\nlayouts: [\"02/01/2006 15:04\", RFC1123]",
			in:   col{"d", str, `["31/12/2023 23:59","Mon, 01 Jan 2024 10:00:00 UTC"]`},
			want: []string{"2023-12-31 23:59:00Z", "2024-01-01 10:00:00Z"}},
		{name: "invalid strings rejected with the layouts", conf: "layouts: [RFC3339]",
			in:      col{"timestamp", str, `["2024-13-45","2024-01-01T00:00:00Z"]`},
			want:    []string{"2024-01-01 00:00:00Z"},
			rejects: []string{`0:timestamp:timestamp: "2024-13-45" is not a time in any of the layouts [RFC3339]`}},
		{name: "missing rejected by default", conf: "{}",
			in:      col{"timestamp", str, `[null,"","2024-01-01"]`},
			want:    []string{"2024-01-01 00:00:00Z"},
			rejects: []string{"0:timestamp:timestamp: missing (null or empty)", "1:timestamp:timestamp: missing (null or empty)"}},
		{name: "on_missing skip filters", conf: "on_missing: skip",
			in: col{"timestamp", str, `[null,"2024-01-01"]`}, want: []string{"2024-01-01 00:00:00Z"}, filtered: 1},
		{name: "on_missing now", conf: "on_missing: now",
			in: col{"timestamp", str, `[null]`}, want: []string{"2025-06-01 12:00:00Z"}},
		{name: "on_invalid skip and now", conf: "on_invalid: now",
			in: col{"timestamp", str, `["garbage"]`}, want: []string{"2025-06-01 12:00:00Z"}},
		{name: "on_invalid skip", conf: "on_invalid: skip",
			in: col{"timestamp", str, `["garbage","2024-01-01"]`}, want: []string{"2024-01-01 00:00:00Z"}, filtered: 1},
		{name: "future refused by default", conf: "{}",
			in:      col{"timestamp", str, `["2030-01-01T00:00:00Z"]`},
			rejects: []string{"0:timestamp:timestamp: 2030-01-01T00:00:00.000Z is after not_after 2025-06-01T12:00:00.000Z (future times are refused: set not_after to allow them)"}},
		{name: "not_after none, not_before", conf: "not_after: none\nnot_before: 2015-01-01",
			in:      col{"timestamp", str, `["2030-01-01T00:00:00Z","2014-12-31T23:59:59Z"]`},
			want:    []string{"2030-01-01 00:00:00Z"},
			rejects: []string{"1:timestamp:timestamp: 2014-12-31T23:59:59.000Z is before not_before 2015-01-01T00:00:00.000Z"}},
		{name: "unix seconds ints", conf: "unit: s",
			in: col{"timestamp", i64, `[1704067200,null]`}, want: []string{"2024-01-01 00:00:00Z"},
			rejects: []string{"1:timestamp:timestamp: missing (null or empty)"}},
		{name: "unix ms floats and numeric strings", conf: "unit: ms",
			in: col{"timestamp", str, `["1704067200123","1704067200000.9"]`}, want: []string{"2024-01-01 00:00:00.123Z", "2024-01-01 00:00:00Z"}},
		{name: "unix float seconds", conf: "unit: s",
			in: col{"timestamp", f64, `[1704067200.5]`}, want: []string{"2024-01-01 00:00:00.5Z"}},
		{name: "unix overflow", conf: "unit: s",
			in:      col{"timestamp", i64, `[9000000000000000000]`},
			rejects: []string{"0:timestamp:timestamp: 9000000000000000000 is out of range as unix s"}},
		{name: "numbers without unit", conf: "{}", in: col{"timestamp", i64, `[1]`},
			wantErr: `timestamp: column "timestamp" holds numbers (int64): set unit`},
		{name: "unsupported type", conf: "{}", in: col{"timestamp", arrow.FixedWidthTypes.Boolean, `[true]`},
			wantErr: `column "timestamp" is bool`},
		{name: "missing column", conf: "field: created", in: col{"created_at", str, `["x"]`},
			wantErr: `column "created" is not in the data (did you mean "created_at"?)`},
		{name: "arrow timestamp seconds with zone", conf: "{}",
			in: col{"timestamp", tsType(arrow.Second, "America/New_York"), `["2024-01-01T00:00:00Z"]`}, want: []string{"2024-01-01 00:00:00Z"}},
		{name: "arrow timestamp us without zone in a timezone", conf: "timezone: Europe/Paris",
			in: col{"timestamp", tsType(arrow.Microsecond, ""), `["2024-01-01T10:00:00.123456"]`}, want: []string{"2024-01-01 09:00:00.123Z"}},
		{name: "arrow timestamp ns", conf: "{}",
			in: col{"timestamp", tsType(arrow.Nanosecond, "UTC"), `["1969-12-31T23:59:59.9999999Z"]`}, want: []string{"1969-12-31 23:59:59.999Z"}},
		{name: "date32", conf: "{}",
			in: col{"timestamp", arrow.FixedWidthTypes.Date32, `["2024-02-29"]`}, want: []string{"2024-02-29 00:00:00Z"}},
		{name: "JSON strings", conf: "{}",
			in: col{"timestamp", record.JSON, `["2024-02-29"]`}, want: []string{"2024-02-29 00:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := newMem(t)
			t.Cleanup(func() { mem.AssertSize(t, 0) })
			tr := mustTransform(t, mem, "timestamp", tt.conf).(*Timestamp)
			tr.now = func() time.Time { return fixedNow }
			inRec := mkRecord(t, mem, tt.in)
			other := col{"keep", str, `[` + strings.TrimSuffix(strings.Repeat(`"k",`, int(inRec.NumRows())), ",") + `]`}
			inRec.Release()
			b := apply(t, mem, tr, tt.wantErr, other, tt.in)
			if b == nil {
				return
			}
			if b.Filtered != tt.filtered {
				t.Errorf("filtered = %d, want %d", b.Filtered, tt.filtered)
			}
			if !equalStrings(reasons(b), tt.rejects) {
				t.Errorf("rejects = %q\nwant      %q", reasons(b), tt.rejects)
			}
			var got []string
			if b.Record != nil {
				out := b.Record.Column(colIndex(b.Record.Schema(), "timestamp"))
				if !arrow.TypeEqual(out.DataType(), TimestampType) {
					t.Fatalf("type = %s", out.DataType())
				}
				for i := 0; i < out.Len(); i++ {
					got = append(got, out.ValueStr(i))
				}
				if b.Record.Column(0).Len() != out.Len() || columnNames(b.Record)[0] != "keep" {
					t.Errorf("other columns touched: %v", columnNames(b.Record))
				}
			}
			if !equalStrings(got, tt.want) {
				t.Errorf("timestamps = %q\nwant         %q", got, tt.want)
			}
		})
	}
}

func TestTimestampReusesMillisUTC(t *testing.T) {
	mem := newMem(t)
	defer mem.AssertSize(t, 0)
	tr := mustTransform(t, mem, "timestamp", "{}")
	rec := mkRecord(t, mem, col{"timestamp", TimestampType, `["2024-01-01T00:00:00Z"]`})
	in := rec.Column(0).Data()
	b := pipeline.NewBatch("s", 0, rec)
	defer b.Release()
	if err := tr.Apply(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if b.Record.Column(0).Data() != in {
		t.Error("a timestamp[ms, UTC] column was rebuilt")
	}
}

func TestTimestampConfigErrors(t *testing.T) {
	tests := []struct{ conf, want string }{
		{"timezone: Mars/Base", "unknown time zone Mars/Base"},
		{"unit: sec", `"sec" is not an allowed value`},
		{"on_invalid: drop", `"drop" is not an allowed value`},
		{"not_before: yesterday", `"yesterday" is neither an RFC 3339 time nor a date`},
		{"not_before: 2024-01-01\nnot_after: 2023-01-01", "not_after is before not_before"},
		{"layouts: [YYYY-MM-DD]", `"YYYY-MM-DD" is not a Go time layout`},
		{"layouts: []", "layouts is empty"},
	}
	for _, tt := range tests {
		_, err := buildTransform(memory.DefaultAllocator, "timestamp", tt.conf)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "test.yaml:") {
			t.Errorf("%q: error = %v, want %q at a position", tt.conf, err, tt.want)
		}
	}
}
