package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/pipeline"
)

func TestParseRelName(t *testing.T) {
	for in, want := range map[string]string{
		"events":                `"events"`,
		"Public.Events":         `"public"."events"`,
		`"My Schema"."Ev.ents"`: `"My Schema"."Ev.ents"`,
		`analytics."a""b"`:      `"analytics"."a""b"`,
		` public.events `:       `"public"."events"`,
		`"x"`:                   `"x"`,
	} {
		r, err := parseRelName(in)
		if err != nil || r.sql() != want {
			t.Errorf("%s: %s, %v; want %s", in, r.sql(), err, want)
		}
	}
	for _, bad := range []string{"", "a.b.c", `"open`, "a b", `"a"x`, "a..b"} {
		if _, err := parseRelName(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if quoteLiteral(`it's \ x`, false) != `'it''s \ x'` || quoteLiteral(`it's \ x`, true) != `'it''s \\ x'` {
		t.Error("quoteLiteral")
	}
}

// golden builds a source and a reader for split without a server, and
// returns the SQL the reader would open with at offset.
func golden(t *testing.T, body string, p *plan, cols []column, split int, offset int64, positions map[string][]boundary) (*Source, string) {
	t.Helper()
	conf, err := load(body)
	if err != nil {
		t.Fatal(err)
	}
	src, err := New(conf, &pipeline.Env{Name: "golden", State: pipeline.NewMemoryState(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*Source)
	s.plan, s.cols, s.positions = p, cols, positions
	splits := s.splitsOf(p)
	rd, err := s.Open(context.Background(), splits[split], pipeline.ReadOptions{Offset: offset, Columns: pipeline.AllColumns, BatchRows: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r := rd.(*reader)
	return s, r.statement(r.initial)
}

var goldenCols = []column{
	{Name: "id", OID: oidInt8, Kind: kInt64, Decoded: true},
	{Name: "at", OID: oidTimestamptz, Kind: kTimestamptz, Decoded: true},
	{Name: "props", OID: oidJSONB, Kind: kJSONB, Decoded: true},
	{Name: "ip", OID: 869, Kind: kText, Type: "inet"},
	{Name: "tags", OID: 1009, Kind: kArray, Elem: kText, Decoded: true},
}

// The statements the source sends, as text: key ranges, resumes after a
// key (unique, with ctid, with ties), the cursor window, where.
func TestGoldenPostgresSQL(t *testing.T) {
	p := &plan{For: "x", Hash: "h", Key: "id", KeyKind: kInt64, Order: orderUnique, CursorLo: "2024-01-01 00:00:00+00",
		CursorHi: "2024-02-01 00:00:00+00", Ranges: []keyRange{{Lo: 1, Hi: 500}, {Lo: 500, Hi: 999, HiIncl: true}}}
	body := "url: postgres://h/db\ntable: public.events\nwhere: \"at > '2023-01-01'\"\ncursor: {column: at}"
	base := `SELECT "id", "at", "props", "ip"::text, "tags", "id" FROM "public"."events" WHERE (at > '2023-01-01') AND "at" > '2024-01-01 00:00:00+00' AND "at" <= '2024-02-01 00:00:00+00'`
	s, got := golden(t, body, p, goldenCols, 1, 0, nil)
	want := base + ` AND "id" >= 500 AND "id" <= 999 ORDER BY "id"`
	if got != want {
		t.Errorf("range:\n got %s\nwant %s", got, want)
	}
	if copySQL(got) != "COPY ("+want+") TO STDOUT (FORMAT binary)" {
		t.Error(copySQL(got))
	}
	if s.splitsOf(p)[1].ID != "public.events#h/1" {
		t.Errorf("split id %s", s.splitsOf(p)[1].ID)
	}
	pos := map[string][]boundary{"public.events#h/0": {{Off: 100, Key: 140, Ties: 1}, {Off: 200, Key: 260, Ties: 1}}}
	_, got = golden(t, body, p, goldenCols, 0, 200, pos)
	if want := base + ` AND "id" >= 1 AND "id" < 500 AND "id" > 260 ORDER BY "id"`; got != want {
		t.Errorf("resume:\n got %s\nwant %s", got, want)
	}
	_, got = golden(t, body, p, goldenCols, 0, 250, pos)
	if want := base + ` AND "id" >= 1 AND "id" < 500 AND "id" > 260 ORDER BY "id" OFFSET 50`; got != want {
		t.Errorf("resume past the last boundary:\n got %s\nwant %s", got, want)
	}
	tp := *p
	tp.Order, tp.Key, tp.KeyKind = orderTID, "at", kTimestamptz
	tp.Ranges = []keyRange{{Lo: 0, Hi: 86400e6}, {Nulls: true}}
	pos = map[string][]boundary{"public.events#h/0": {{Off: 100, Key: 3600e6, Ties: 3, TID: "(12,7)"}}}
	_, got = golden(t, body, &tp, goldenCols, 0, 100, pos)
	wantTID := `SELECT "id", "at", "props", "ip"::text, "tags", "at", ctid FROM "public"."events" WHERE (at > '2023-01-01') AND "at" > '2024-01-01 00:00:00+00' AND "at" <= '2024-02-01 00:00:00+00'` +
		` AND "at" >= '2000-01-01 00:00:00.000000+00'::timestamptz AND "at" < '2000-01-02 00:00:00.000000+00'::timestamptz` +
		` AND ("at", ctid) > ('2000-01-01 01:00:00.000000+00'::timestamptz, '(12,7)'::tid) ORDER BY "at", ctid`
	if got != wantTID {
		t.Errorf("ctid:\n got %s\nwant %s", got, wantTID)
	}
	_, got = golden(t, body, &tp, goldenCols, 1, 30, nil)
	if want := base[:strings.Index(base, `, "id" FROM`)] + ` FROM "public"."events" WHERE (at > '2023-01-01') AND "at" > '2024-01-01 00:00:00+00' AND "at" <= '2024-02-01 00:00:00+00' AND "at" IS NULL ORDER BY ctid OFFSET 30`; got != want {
		t.Errorf("nulls:\n got %s\nwant %s", got, want)
	}
}

// Redshift: a transaction per split, a cursor fetched 1000 rows at a
// time, SUPER serialized to JSON, other types cast to VARCHAR, keys with
// ties resumed from the key's first row; and the UNLOAD statement.
func TestGoldenRedshiftSQL(t *testing.T) {
	cols := []column{
		{Name: "id", OID: oidInt8, Kind: kInt64, Decoded: true},
		{Name: "ts", OID: oidTimestamp, Kind: kTimestamp, Decoded: true},
		{Name: "doc", OID: oidSuper, Kind: kJSON, Decoded: true},
		{Name: "g", OID: 3000, Kind: kText, Type: "geometry"},
		{Name: "name", OID: oidVarchar, Kind: kText, Decoded: true},
	}
	p := &plan{For: "x", Hash: "h", Key: "id", KeyKind: kInt64, Order: orderTies, Ranges: []keyRange{{Lo: 1, Hi: 100, HiIncl: true}, {Nulls: true}}}
	body := "dialect: redshift\nurl: postgres://c.redshift.amazonaws.com:5439/dev\ntable: analytics.events\nsplit_by: id"
	pos := map[string][]boundary{"analytics.events#h/0": {{Off: 100, Key: 42, Ties: 2}}}
	s, got := golden(t, body, p, cols, 0, 100, pos)
	want := `SELECT "id", "ts", JSON_SERIALIZE("doc"), CAST("g" AS VARCHAR(65535)), "name", "id" FROM "analytics"."events" WHERE "id" >= 1 AND "id" <= 100 AND "id" >= 42 ORDER BY "id"`
	if got != want {
		t.Errorf("cursor:\n got %s\nwant %s", got, want)
	}
	if s.stream != streamCursor || !s.textWire {
		t.Error("Redshift reads with a cursor in the text format")
	}
	if beginSQL(true) != "BEGIN READ ONLY" || declareSQL("Q") != "DECLARE backfill_split NO SCROLL CURSOR FOR Q" || fetchSQL(1000) != "FETCH FORWARD 1000 FROM backfill_split" {
		t.Error(beginSQL(true), declareSQL("Q"), fetchSQL(1000))
	}
	conf, _ := load(body)
	src, _ := New(conf, &pipeline.Env{Name: "golden", State: pipeline.NewMemoryState(nil, nil)})
	rs := src.(*Source)
	rs.plan, rs.cols = p, cols
	rd, _ := rs.Open(context.Background(), rs.splitsOf(p)[0], pipeline.ReadOptions{Columns: pipeline.AllColumns})
	if rd.(*reader).fetchN != 100 && rd.(*reader).fetchN != 1000 {
		t.Errorf("fetch %d", rd.(*reader).fetchN)
	}
	rd.Close()

	// UNLOAD, of a cursor window, with a zone for timestamps.
	body = "dialect: redshift\nurl: postgres://c/dev\ntable: analytics.events\ntimezone: Europe/Paris\ncursor: {column: id}\nwhere: \"name <> 'x'\"\n" +
		"unload: {s3: \"s3://bucket/unload\", iam_role: \"arn:aws:iam::1:role/r\", region: eu-west-1}"
	conf, err := load(body)
	if err != nil {
		t.Fatal(err)
	}
	src, err = New(conf, &pipeline.Env{Name: "golden", State: pipeline.NewMemoryState(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	us := src.(*Source)
	q, err := us.unloadQuery(cols, pipeline.AllColumns, &plan{CursorLo: "10", CursorHi: "20"})
	if err != nil {
		t.Fatal(err)
	}
	gotU := unloadSQL(q, us.unload.s3+"golden/run/", us.unload.iamRole, us.unload.region, us.unload.maxFileSize)
	wantU := `UNLOAD ('SELECT "id", CONVERT_TIMEZONE(''Europe/Paris'', ''UTC'', "ts") AS "ts", JSON_SERIALIZE("doc") AS "doc", ` +
		`CAST("g" AS VARCHAR(65535)) AS "g", "name" FROM "analytics"."events" WHERE (name <> ''x'') AND "id" > ''10'' AND "id" <= ''20''') ` +
		`TO 's3://bucket/unload/golden/run/' IAM_ROLE 'arn:aws:iam::1:role/r' FORMAT AS PARQUET MANIFEST ALLOWOVERWRITE MAXFILESIZE 256 MB REGION 'eu-west-1'`
	if gotU != wantU {
		t.Errorf("unload:\n got %s\nwant %s", gotU, wantU)
	}
}

func TestSplitRange(t *testing.T) {
	for _, c := range []struct {
		lo, hi int64
		n      int
		want   string
	}{
		{1, 100, 4, "[{1 26 false false} {26 51 false false} {51 76 false false} {76 100 true false}]"},
		{5, 5, 8, "[{5 5 true false}]"},
		{1, 3, 8, "[{1 2 false false} {2 3 false false} {3 3 true false}]"},
		{math.MinInt64, math.MaxInt64, 2, fmt.Sprint([]keyRange{{Lo: math.MinInt64, Hi: -1}, {Lo: -1, Hi: math.MaxInt64, HiIncl: true}})},
	} {
		if got := fmt.Sprint(splitRange(c.lo, c.hi, c.n)); got != c.want {
			t.Errorf("%d..%d/%d: %s, want %s", c.lo, c.hi, c.n, got, c.want)
		}
	}
}

func numericBytes(ndigits, weight int, sign uint16, dscale int, digits ...uint16) []byte {
	b := make([]byte, 8+2*len(digits))
	binary.BigEndian.PutUint16(b[0:], uint16(ndigits))
	binary.BigEndian.PutUint16(b[2:], uint16(int16(weight)))
	binary.BigEndian.PutUint16(b[4:], sign)
	binary.BigEndian.PutUint16(b[6:], uint16(dscale))
	for i, d := range digits {
		binary.BigEndian.PutUint16(b[8+2*i:], d)
	}
	return b
}

func TestNumericText(t *testing.T) {
	for want, v := range map[string][]byte{
		"0":            numericBytes(0, 0, 0, 0),
		"0.00":         numericBytes(0, 0, 0, 2),
		"12345.678":    numericBytes(3, 1, 0, 3, 1, 2345, 6780),
		"-0.0001":      numericBytes(1, -1, 0x4000, 4, 1),
		"0.00000123":   numericBytes(1, -2, 0, 8, 123),
		"100000000":    numericBytes(1, 2, 0, 0, 1),
		"NaN":          numericBytes(0, 0, 0xC000, 0),
		"-Infinity":    numericBytes(0, 0, 0xF000, 0),
		"9999.9999000": numericBytes(2, 0, 0, 7, 9999, 9999),
	} {
		got, ok := numericText(nil, v)
		if !ok || string(got) != want {
			t.Errorf("%x: %s, want %s", v, got, want)
		}
	}
	for _, c := range []struct {
		in    string
		p, s  int32
		want  string
		wantR string
	}{
		{"12.345", 10, 2, "1235", ""},
		{"-12.344", 10, 2, "-1234", ""},
		{"0.05", 3, 2, "5", ""},
		{"99.999", 4, 2, "", "does not fit"},
		{"123", 4, 2, "", "does not fit"},
		{"NaN", 10, 2, "", "no decimal"},
	} {
		n, reason := decimalFromText([]byte(c.in), c.p, c.s)
		if c.wantR != "" {
			if !strings.Contains(reason, c.wantR) {
				t.Errorf("%s: reason %q", c.in, reason)
			}
			continue
		}
		if reason != "" || n.BigInt().String() != c.want {
			t.Errorf("%s as decimal(%d,%d): %s %q, want %s", c.in, c.p, c.s, n.BigInt(), reason, c.want)
		}
	}
}

// Timestamps without time zone read in a zone agree with Postgres's AT
// TIME ZONE, in the hour skipped and the hour repeated too.
func TestWallToUTC(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	for wall, want := range map[string]string{
		"2024-03-10 02:30:00": "2024-03-10T07:30:00Z", // skipped: the offset before (EST)
		"2024-11-03 01:30:00": "2024-11-03T06:30:00Z", // repeated: the later (EST)
		"2024-07-01 12:00:00": "2024-07-01T16:00:00Z",
		"1880-01-01 00:00:00": "1880-01-01T04:56:02Z", // local mean time
	} {
		w, _ := time.Parse("2006-01-02 15:04:05", wall)
		got := time.UnixMicro(wallToUTC(w.UnixMicro()+123, ny)).UTC()
		if got.Format(time.RFC3339) != want || got.Nanosecond() != 123000 {
			t.Errorf("%s: %s, want %s", wall, got.Format(time.RFC3339Nano), want)
		}
	}
}

func TestTextTimestamps(t *testing.T) {
	for in, want := range map[string]string{
		"2024-01-02 03:04:05":           "2024-01-02T03:04:05Z",
		"2024-01-02 03:04:05.5+05:30":   "2024-01-01T21:34:05.5Z",
		"2024-01-02 03:04:05.123456-08": "2024-01-02T11:04:05.123456Z",
		"0044-03-15 12:00:00 BC":        "-0043-03-15T12:00:00Z",
	} {
		us, reason := parseTimestampText(in, true)
		got := time.UnixMicro(us + pgEpochMicros).UTC().Format(time.RFC3339Nano)
		if reason != "" || got != want {
			t.Errorf("%s: %s %s, want %s", in, got, reason, want)
		}
	}
	if _, r := parseTimestampText("yesterday", true); r == "" {
		t.Error("parsed yesterday")
	}
}
