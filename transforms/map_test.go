package transforms

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

var (
	str = arrow.BinaryTypes.String
	i64 = arrow.PrimitiveTypes.Int64
	f64 = arrow.PrimitiveTypes.Float64
)

func ordersRecord(t testing.TB, mem memory.Allocator) arrow.Record {
	return mkRecord(t, mem,
		col{"order_id", str, `["o1","o2"]`},
		col{"customer_id", str, `["c1",null]`},
		col{"amount", f64, `[9.5,20]`},
		col{"currency", str, `["EUR","USD"]`},
		col{"client_ip", str, `["1.2.3.4","5.6.7.8"]`},
		col{"_file", str, `["a.csv","a.csv"]`},
	)
}

func TestMap(t *testing.T) {
	tests := []struct {
		name      string
		conf      string
		wantCols  []string
		wantRows  []string
		wantError string
	}{
		{
			name:     "columns constants and nested objects",
			conf:     "type: track\nevent: {const: Order Completed}\nuserId: customer_id\nmessageId: order_id\nproperties: {total: amount, currency: currency}\ncontext: {ip: client_ip}",
			wantCols: []string{"type", "userId", "event", "messageId", "properties.currency", "properties.total", "context.ip", "_file"},
			wantRows: []string{
				"type=track userId=c1 event=Order Completed messageId=o1 properties.currency=EUR properties.total=9.5 context.ip=1.2.3.4 _file=a.csv",
				"type=track event=Order Completed messageId=o2 properties.currency=USD properties.total=20 context.ip=5.6.7.8 _file=a.csv",
			},
		},
		{
			name:     "star takes every unused column",
			conf:     "type: {column: currency}\nuserId: customer_id\nproperties: \"*\"",
			wantCols: []string{"type", "userId", "properties.order_id", "properties.amount", "properties.client_ip", "_file"},
		},
		{
			name:     "star with an explicit sub-key",
			conf:     "type: track\nuserId: customer_id\nproperties: \"*\"",
			wantCols: []string{"type", "userId", "properties.order_id", "properties.amount", "properties.currency", "properties.client_ip", "_file"},
		},
		{
			name: "typed and object constants",
			conf: "type: identify\nuserId: customer_id\ntraits: {vip: {const: true}, score: {const: 3}, ratio: {const: 0.5}, tags: {const: [a, b]}}",
			wantRows: []string{
				`type=identify userId=c1 traits.ratio=0.5 traits.score=3 traits.tags=["a","b"] traits.vip=true _file=a.csv`,
				`type=identify traits.ratio=0.5 traits.score=3 traits.tags=["a","b"] traits.vip=true _file=a.csv`,
			},
		},
		{
			name:      "missing column names it and suggests",
			conf:      "type: track\nuserId: customer_idd",
			wantError: `map: userId: column "customer_idd" is not in the data (did you mean "customer_id"?); columns: order_id, customer_id, amount, currency, client_ip, _file`,
		},
		{
			name:     "dotted key escaped",
			conf:     "type: track\nproperties: {a.b: amount}",
			wantCols: []string{"type", `properties.a\.b`, "_file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := newMem(t)
			defer mem.AssertSize(t, 0)
			tr := mustTransform(t, mem, "map", tt.conf)
			b := pipeline.NewBatch("s", 0, ordersRecord(t, mem))
			defer b.Release()
			err := tr.Apply(context.Background(), b)
			if tt.wantError != "" {
				if err == nil || err.Error() != tt.wantError {
					t.Fatalf("error = %v\nwant    %s", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkAccounting(t, b)
			if tt.wantCols != nil && !equalStrings(columnNames(b.Record), tt.wantCols) {
				t.Errorf("columns = %v, want %v", columnNames(b.Record), tt.wantCols)
			}
			if tt.wantRows != nil && !equalStrings(rows(b), tt.wantRows) {
				t.Errorf("rows =\n%s\nwant\n%s", strings.Join(rows(b), "\n"), strings.Join(tt.wantRows, "\n"))
			}
		})
	}
}

func TestMapZeroCopy(t *testing.T) {
	mem := newMem(t)
	defer mem.AssertSize(t, 0)
	tr := mustTransform(t, mem, "map", "type: track\nuserId: customer_id")
	rec := ordersRecord(t, mem)
	in := rec.Column(1)
	in.Retain()
	defer in.Release()
	b := pipeline.NewBatch("s", 0, rec)
	defer b.Release()
	if err := tr.Apply(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if b.Record.Column(1).Data() != in.Data() {
		t.Error("userId was copied, want the input array reused")
	}
}

func TestMapConfigErrors(t *testing.T) {
	tests := []struct{ conf, want string }{
		{"type: 5", "write {const: 5} for a constant"},
		{"type: {const: tracks}", "type tracks is not a message type"},
		{"userId: {const: null}", "must not be null"},
		{"properties: \"*\"\ntraits: \"*\"", `only one object can take "*"`},
		{"convention: segment-warehouse\nproperties: \"*\"", `"*" and convention`},
		{"keep_ids: true\ntype: track", "keep_ids applies only with convention"},
		{"{}", "map sets nothing"},
		{"properties: {a: {b: {const: [1]}, c: {}}}", "properties.a.c: empty object"},
		{"userId: {col: x}", "expected a column name, {const: VALUE} or {column: NAME}"},
	}
	for _, tt := range tests {
		t.Run(tt.conf, func(t *testing.T) {
			_, err := buildTransform(memory.DefaultAllocator, "map", tt.conf)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "test.yaml:") {
				t.Errorf("error %q has no file position", err)
			}
		})
	}
	// Several problems come back at once.
	_, err := buildTransform(memory.DefaultAllocator, "map", "type: 5\nuserId: 7")
	if err == nil || strings.Count(err.Error(), "test.yaml:") != 2 {
		t.Errorf("want two errors at once, got %v", err)
	}
}

func TestMapWarehouseConvention(t *testing.T) {
	tests := []struct {
		name     string
		conf     string
		cols     []col
		wantCols []string
		wantErr  string
	}{
		{
			name: "tracks table",
			conf: "convention: segment-warehouse",
			cols: []col{
				{"id", str, `["m1"]`}, {"user_id", str, `["u1"]`}, {"anonymous_id", str, `[null]`},
				{"event", str, `["order_completed"]`}, {"event_text", str, `["Order Completed"]`},
				{"timestamp", str, `["2024-01-01T00:00:00Z"]`}, {"received_at", str, `["x"]`}, {"sent_at", str, `["x"]`},
				{"original_timestamp", str, `["x"]`}, {"uuid_ts", str, `["x"]`}, {"loaded_at", str, `["x"]`},
				{"context_ip", str, `["1.1.1.1"]`}, {"context_page_url", str, `["https://x"]`},
				{"context_user_agent", str, `["ua"]`}, {"context_device_advertising_id", str, `["ad"]`},
				{"total", f64, `[3]`},
			},
			wantCols: []string{"type", "userId", "anonymousId", "event", "timestamp", "context.ip", "context.page.url",
				"context.userAgent", "context.device.advertisingId", "properties.total"},
		},
		{
			name:     "event slug when there is no event_text, keep ids",
			conf:     "convention: segment-warehouse\nkeep_ids: true",
			cols:     []col{{"id", str, `["m1"]`}, {"user_id", str, `["u1"]`}, {"event", str, `["signup"]`}},
			wantCols: []string{"type", "messageId", "userId", "event"},
		},
		{
			name:     "identifies table: traits, explicit override",
			conf:     "convention: segment-warehouse\ntype: identify\nuserId: email",
			cols:     []col{{"user_id", str, `["u1"]`}, {"email", str, `["a@b"]`}, {"plan", str, `["pro"]`}},
			wantCols: []string{"type", "userId", "traits.plan"},
		},
		{
			name:     "pages table: name",
			conf:     "convention: segment-warehouse\ntype: page",
			cols:     []col{{"anonymous_id", str, `["a1"]`}, {"name", str, `["Home"]`}, {"url", str, `["https://x"]`}},
			wantCols: []string{"type", "anonymousId", "name", "properties.url"},
		},
		{
			name:    "no event and no type",
			conf:    "convention: segment-warehouse",
			cols:    []col{{"user_id", str, `["u1"]`}},
			wantErr: "cannot tell the message type",
		},
		{
			// Columns named like fields the type does not take are the
			// table's other columns (flattened properties or traits).
			name:     "tracks table: a group_id property stays a property",
			conf:     "convention: segment-warehouse",
			cols:     []col{{"user_id", str, `["u1"]`}, {"event_text", str, `["E"]`}, {"group_id", str, `["g1"]`}, {"previous_id", str, `["p"]`}},
			wantCols: []string{"type", "userId", "event", "properties.group_id", "properties.previous_id"},
		},
		{
			name:     "identifies table: an event_text trait stays a trait",
			conf:     "convention: segment-warehouse\ntype: identify",
			cols:     []col{{"user_id", str, `["u1"]`}, {"event_text", str, `["x"]`}},
			wantCols: []string{"type", "userId", "traits.event_text"},
		},
		{
			name:     "aliases table",
			conf:     "convention: segment-warehouse\ntype: alias",
			cols:     []col{{"user_id", str, `["u1"]`}, {"previous_id", str, `["a1"]`}, {"context_ip", str, `["1.1.1.1"]`}, {"received_at", str, `["x"]`}},
			wantCols: []string{"type", "userId", "previousId", "context.ip"},
		},
		{
			name:    "aliases table with other columns: nowhere to put them",
			conf:    "convention: segment-warehouse\ntype: alias",
			cols:    []col{{"user_id", str, `["u1"]`}, {"previous_id", str, `["a1"]`}, {"plan", str, `["pro"]`}},
			wantErr: "alias messages carry no properties or traits (Segment would drop them), so columns plan have nowhere to go",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := applyTransform(t, "map", tt.conf, tt.wantErr, tt.cols...)
			if b == nil {
				return
			}
			if !equalStrings(columnNames(b.Record), tt.wantCols) {
				t.Errorf("columns = %v\nwant      %v", columnNames(b.Record), tt.wantCols)
			}
		})
	}
}

func TestWarehouseContextPath(t *testing.T) {
	for in, want := range map[string]string{
		"context_ip":                         "context.ip",
		"context_page_url":                   "context.page.url",
		"context_campaign_source":            "context.campaign.source",
		"context_library_name":               "context.library.name",
		"context_user_agent":                 "context.userAgent",
		"context_os_version":                 "context.os.version",
		"context_device_ad_tracking_enabled": "context.device.adTrackingEnabled",
		"contextual":                         "",
	} {
		got, _ := WarehouseContextPath(in)
		if got != want {
			t.Errorf("WarehouseContextPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMapRequires(t *testing.T) {
	tests := []struct {
		conf string
		out  pipeline.Columns
		want pipeline.Columns
	}{
		{"type: track\nuserId: customer_id\nproperties: {total: amount}", pipeline.AllColumns,
			pipeline.Columns{Names: []string{"amount", "customer_id"}}},
		{"type: track\nuserId: customer_id", pipeline.Columns{Names: []string{"userId", "_file"}},
			pipeline.Columns{Names: []string{"_file", "customer_id"}}},
		{"userId: u\nproperties: \"*\"", pipeline.Columns{Names: []string{"userId"}}, pipeline.AllColumns},
		{"convention: segment-warehouse", pipeline.Columns{Names: []string{"userId"}}, pipeline.AllColumns},
	}
	for _, tt := range tests {
		tr := mustTransform(t, memory.DefaultAllocator, "map", tt.conf)
		got := tr.(pipeline.Projector).Requires(tt.out)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%q: Requires = %v, want %v", tt.conf, got, tt.want)
		}
	}
}

func TestMapConstantsAcrossBatchSizes(t *testing.T) {
	mem := newMem(t)
	defer mem.AssertSize(t, 0)
	tr := mustTransform(t, mem, "map", "type: track\nevent: {const: E}\nproperties: {p: {const: {a: 1}}}")
	for _, n := range []int{3, 1, 5, 0} {
		vals := "[" + strings.TrimSuffix(strings.Repeat(`"x",`, n), ",") + "]"
		b := pipeline.NewBatch("s", 0, mkRecord(t, mem, col{"x", str, vals}))
		if err := tr.Apply(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		if int(b.NumRows()) != n || b.Record.Column(0).Len() != n || b.Record.Column(2).Len() != n {
			t.Errorf("batch of %d: got %d rows", n, b.NumRows())
		}
		if n > 0 && (b.Record.Column(1).(interface{ Value(int) string }).Value(n-1) != "E" ||
			!record.IsJSON(b.Record.Column(2).DataType())) {
			t.Errorf("batch of %d: bad constants %v", n, rows(b))
		}
		b.Release()
	}
}

func ExampleMap() {
	mem := memory.NewGoAllocator()
	tr, err := buildTransform(mem, "map", `type: track
event: {const: Order Completed}
userId: customer_id
properties: {total: amount}`)
	if err != nil {
		fmt.Println(err)
		return
	}
	rec := mkRecord(&testing.T{}, mem,
		col{"customer_id", str, `["c1","c2"]`},
		col{"amount", f64, `[9.5,20]`},
		col{"unused", str, `["a","b"]`})
	b := pipeline.NewBatch("orders.csv", 0, rec)
	defer b.Release()
	if err := tr.Apply(context.Background(), b); err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rows(b) {
		fmt.Println(r)
	}
	// Output:
	// type=track userId=c1 event=Order Completed properties.total=9.5
	// type=track userId=c2 event=Order Completed properties.total=20
}

// With a constant type, a field the type does not take (Segment's Spec, as
// record.TypeFields holds it) is refused when the pipeline is validated, at
// the line and column of its value, with where it belongs. Traits on track, page and
// screen are refused, not moved: context: {traits: ...} is where they go.
func TestMapRefusesFieldsTheTypeDoesNotTake(t *testing.T) {
	tests := []struct{ conf, want string }{
		{"type: track\nevent: e\nuserId: u\ntraits: {email: email}",
			"test.yaml:9:15: /transforms/0/map/traits: track messages carry no traits: Segment ignores top-level traits on track (map them to context.traits: write context: {traits: {...}})"},
		{"type: page\nname: n\nanonymousId: a\ntraits: \"*\"",
			"test.yaml:9:15: /transforms/0/map/traits: page messages carry no traits: Segment ignores top-level traits on page (map them to context.traits: write context: {traits: {...}})"},
		{"type: {const: screen}\nname: n\nuserId: u\ntraits: traits_json",
			"test.yaml:9:15: /transforms/0/map/traits: screen messages carry no traits: Segment ignores top-level traits on screen (map them to context.traits: write context: {traits: {...}})"},
		{"type: identify\nuserId: u\nproperties: {plan: plan}",
			"test.yaml:8:19: /transforms/0/map/properties: identify messages carry no properties: Segment ignores top-level properties on identify (map them to traits)"},
		{"type: track\nevent: e\nuserId: u\nname: n",
			"test.yaml:9:13: /transforms/0/map/name: track messages carry no name: Segment ignores top-level name on track (map it to properties.name: write properties: {name: ...})"},
		{"type: track\nevent: e\nuserId: u\ngroupId: account_id",
			"test.yaml:9:16: /transforms/0/map/groupId: track messages carry no groupId: Segment ignores top-level groupId on track (map it to context.groupId: write context: {groupId: ...})"},
		{"type: alias\nuserId: u\npreviousId: p\nproperties: {a: b}",
			"test.yaml:9:19: /transforms/0/map/properties: alias messages carry no properties: Segment ignores top-level properties on alias (alias takes only previousId and userId; send them on a track)"},
	}
	for _, tt := range tests {
		t.Run(tt.conf, func(t *testing.T) {
			_, err := buildTransform(memory.DefaultAllocator, "map", tt.conf)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v\nwant    %s", err, tt.want)
			}
		})
	}
	// Every such field at once.
	_, err := buildTransform(memory.DefaultAllocator, "map", "type: identify\nuserId: u\nevent: e\nproperties: {a: b}\ntraits: {c: d}")
	if err == nil || strings.Count(err.Error(), "test.yaml:") != 2 || !strings.Contains(err.Error(), "identify messages carry no event") {
		t.Errorf("want event and properties refused, got %v", err)
	}
	// What each type takes builds: traits under context on a track;
	// identify and group with traits; alias with previousId; a type from
	// a column, which the sink checks row by row.
	for _, conf := range []string{
		"type: track\nevent: e\nuserId: u\nproperties: {a: b}\ncontext: {traits: {email: email}}",
		"type: identify\nuserId: u\ntraits: {email: email}\ncontext: {ip: ip}",
		"type: group\nuserId: u\ngroupId: g\ntraits: {name: n}",
		"type: alias\nuserId: u\npreviousId: p\ncontext: {ip: ip}",
		"type: page\nanonymousId: a\nname: n\nproperties: {url: url}",
		"type: {column: kind}\nuserId: u\nevent: e\ntraits: {email: email}",
	} {
		if _, err := buildTransform(memory.DefaultAllocator, "map", conf); err != nil {
			t.Errorf("%q: %v", conf, err)
		}
	}
}
