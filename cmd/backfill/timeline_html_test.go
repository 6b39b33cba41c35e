package main

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The --report page is self-contained, and its charts render: each SVG
// drawn by rsvg-convert (librsvg2-bin) is a PNG of the size the SVG
// declares, holding the colors of its bars, the flagged day and the gaps.
func TestPreviewReportRendersToPNG(t *testing.T) {
	tl, now := gapAndClusterTimeline()
	page := &previewPage{Pipeline: "orders <2024> & co", Summary: "read 1181 rows: 1181 would be sent, 0 rejected, 0 filtered",
		Generated: now, Timeline: tl.report("2y"),
		Destinations: []string{"Google Analytics 4 drops events older than 72 hours: 880 of 1,181 rows (2024-03-01 .. 2024-03-25)"},
		Duration:     durationLine(1181, false, 1000, 1)}
	var buf bytes.Buffer
	page.write(&buf)
	html := buf.String()
	for _, external := range []string{"<script", "src=", "href=", "@import", "url("} {
		if strings.Contains(html, external) {
			t.Errorf("the page fetches something (%s): it must open offline", external)
		}
	}
	for _, w := range []string{"Preview of orders &lt;2024&gt; &amp; co", "9 days with no events inside the span", "Google Analytics 4 drops events older than 72 hours",
		"1,181 rows at 1,000/s: about 1 s", "<title>2024-04-01: 300</title>"} {
		if !strings.Contains(html, w) {
			t.Errorf("page lacks %q", w)
		}
	}
	svgs := regexp.MustCompile(`(?s)<svg id="(\w+)" xmlns="http://www.w3.org/2000/svg" width="(\d+)" height="(\d+)".*?</svg>`).FindAllStringSubmatch(html, -1)
	if len(svgs) != 2 || svgs[0][1] != "timeline" || svgs[1][1] != "names" {
		t.Fatalf("%d charts in the page", len(svgs))
	}
	size := map[string][2]int{"timeline": {svgWidth, tlHeight}, "names": {svgWidth, namesSVGHeight(len(page.Timeline.Names))}}
	colors := map[string][]string{"timeline": {colorEvents, colorFuture, colorGap}, "names": {colorEvents}}

	rsvg, err := exec.LookPath("rsvg-convert")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("rsvg-convert is missing; .ci/run installs librsvg2-bin")
		}
		t.Skip("skipping the render: rsvg-convert not found (apt-get install librsvg2-bin)")
	}
	dir := t.TempDir()
	for _, m := range svgs {
		id, w, h := m[1], atoi(t, m[2]), atoi(t, m[3])
		if size[id] != [2]int{w, h} {
			t.Errorf("%s declares %dx%d, want %v", id, w, h, size[id])
		}
		in, out := filepath.Join(dir, id+".svg"), filepath.Join(dir, id+".png")
		if err := os.WriteFile(in, []byte(m[0]), 0o644); err != nil {
			t.Fatal(err)
		}
		if msg, err := exec.Command(rsvg, "-o", out, in).CombinedOutput(); err != nil {
			t.Fatalf("rsvg-convert %s: %v\n%s", id, err, msg)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
			t.Errorf("%s renders %dx%d, want %dx%d", id, b.Dx(), b.Dy(), w, h)
		}
		for _, c := range colors[id] {
			if !hasColor(img, c) {
				t.Errorf("%s: no pixel of %s", id, c)
			}
		}
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// hasColor reports whether some pixel of img is hex ("#rrggbb").
func hasColor(img image.Image, hex string) bool {
	v, _ := strconv.ParseUint(strings.TrimPrefix(hex, "#"), 16, 32)
	want := [3]uint32{uint32(v >> 16 & 0xff), uint32(v >> 8 & 0xff), uint32(v & 0xff)}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if [3]uint32{r >> 8, g >> 8, bl >> 8} == want {
				return true
			}
		}
	}
	return false
}
