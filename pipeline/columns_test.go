package pipeline

import (
	"reflect"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
)

// The data's columns ride on a schema's metadata beside what is there,
// replaced rather than repeated, and dropped on request.
func TestDataColumnsMetadata(t *testing.T) {
	md := arrow.NewMetadata([]string{"pandas"}, []string{"{}"})
	md = DataColumnsMetadata(md, []string{"a", "b,\"c\""})
	md = DataColumnsMetadata(md, []string{"a", "b,\"c\"", "d"})
	s := arrow.NewSchema(nil, &md)
	if got := DataColumns(s); !reflect.DeepEqual(got, []string{"a", "b,\"c\"", "d"}) || md.Len() != 2 {
		t.Fatalf("%v in %v", got, md)
	}
	out := WithoutDataColumns(md)
	if DataColumns(arrow.NewSchema(nil, &out)) != nil || out.Len() != 1 || out.Keys()[0] != "pandas" {
		t.Fatalf("without: %v", out)
	}
	if DataColumns(arrow.NewSchema(nil, nil)) != nil || DataColumns(nil) != nil {
		t.Fatal("no metadata: want nil")
	}
}
