package glob_test

import (
	"fmt"

	"github.com/backfillhq/backfill/sources/glob"
)

// A "**" segment stands for any number of folders, none included; the
// other segments are path.Match patterns. LiteralPrefix is where a listing
// of the matching keys can start.
func ExampleMatch() {
	pattern := "exports/orders/**/*.parquet"
	for _, key := range []string{
		"exports/orders/part-0.parquet",
		"exports/orders/day=2024-03-01/part-1.parquet",
		"exports/orders/day=2024-03-01/hr=07/part-2.parquet",
		"exports/orders/day=2024-03-01/_SUCCESS",
		"exports/refunds/part-0.parquet",
	} {
		fmt.Println(glob.Match(pattern, key), key)
	}
	fmt.Printf("list from %q\n", glob.LiteralPrefix(pattern))
	fmt.Println(glob.Check("exports/**.parquet"))
	// Output:
	// true exports/orders/part-0.parquet
	// true exports/orders/day=2024-03-01/part-1.parquet
	// true exports/orders/day=2024-03-01/hr=07/part-2.parquet
	// false exports/orders/day=2024-03-01/_SUCCESS
	// false exports/refunds/part-0.parquet
	// list from "exports/orders/"
	// "exports/**.parquet": ** must be a whole path segment (a/**/b)
}
