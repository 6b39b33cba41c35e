package glob

import "testing"

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"**/*.parquet", "a.parquet", true},
		{"**/*.parquet", "x/y/a.parquet", true},
		{"**/*.parquet", "x/y/a.csv", false},
		{"*.parquet", "x/a.parquet", false},
		{"x/**/b/*.json", "x/b/1.json", true},
		{"x/**/b/*.json", "x/q/r/b/1.json", true},
		{"x/**/b/*.json", "y/b/1.json", false},
		{"day=2024-0[1-2]-*/*", "day=2024-02-03/p", true},
		{"a/**", "a", true},
		{"a/b", "a/b/c", false},
	}
	for _, c := range cases {
		if got := Match(c.pattern, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v", c.pattern, c.name, got)
		}
	}
	for pattern, want := range map[string]string{"2024/01/**/*.gz": "2024/01/", "*.csv": "", "a/b.csv": "a/b.csv", "a/[b]/c": "a/"} {
		if got := LiteralPrefix(pattern); got != want {
			t.Errorf("LiteralPrefix(%q) = %q, want %q", pattern, got, want)
		}
	}
}
