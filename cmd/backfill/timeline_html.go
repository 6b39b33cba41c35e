package main

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"os"
	"strings"
	"time"
)

// previewPage is what `preview --report FILE.html` writes: the terminal's
// timeline, flags, destination warnings and duration as one page that
// opens offline (inline CSS and SVG, no script, nothing fetched).
type previewPage struct {
	Pipeline     string
	Summary      string
	Generated    time.Time
	Timeline     *timelineReport
	Destinations []string // warnings; empty: DestinationsNote says why
	DestNote     string
	Duration     string
}

// Chart geometry, in SVG user units (pixels at 96 dpi: rsvg-convert and
// browsers render the timeline 960 x 340).
const (
	svgWidth     = 960
	tlHeight     = 340
	tlLeft       = 72
	tlRight      = 16
	tlTop        = 44
	tlBottom     = 56
	namesRowH    = 24
	namesTop     = 12
	namesLabelW  = 230
	namesCountW  = 130
	colorEvents  = "#4c78a8"
	colorFuture  = "#e45756"
	colorCluster = "#f58518"
	colorOld     = "#9d755d"
	colorGap     = "#fbd5d2"
)

const pageCSS = `body{font-family:"DejaVu Sans",Arial,sans-serif;max-width:1000px;margin:24px auto;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}ul{padding-left:20px}li{margin:4px 0}
.flag{color:#a1271c}.muted{color:#666}svg{display:block;margin:8px 0}`

func writePreviewReport(path string, p *previewPage) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	p.write(w)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (p *previewPage) write(w io.Writer) {
	esc := html.EscapeString
	fmt.Fprintf(w, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>backfill preview: %s</title><style>%s</style></head><body>\n",
		esc(p.Pipeline), pageCSS)
	fmt.Fprintf(w, "<h1>Preview of %s</h1>\n<p>%s</p>\n<p class=\"muted\">Made by backfill %s at %s. Times are UTC.</p>\n",
		esc(p.Pipeline), esc(p.Summary), esc(version), p.Generated.UTC().Format("2006-01-02 15:04:05"))
	r := p.Timeline
	fmt.Fprintf(w, "<h2>Timeline</h2>\n")
	if r.Timed == 0 {
		fmt.Fprintf(w, "<p class=\"flag\">No row has a timestamp.</p>\n")
	} else {
		per := "per " + r.Unit
		if r.Unit == unitWeek {
			per += " (weeks from Monday)"
		}
		fmt.Fprintf(w, "<p>%s rows with a timestamp, %s to %s, %s.</p>\n", commas(r.Timed),
			r.From.Format("2006-01-02"), r.To.Format("2006-01-02"), per)
		r.writeTimelineSVG(w)
	}
	if len(r.Names) > 0 {
		fmt.Fprintf(w, "<h2>By event</h2>\n<p>A track's event name, else the message type: %d distinct.</p>\n", r.DistinctNames)
		r.writeNamesSVG(w)
	}
	fmt.Fprintf(w, "<h2>Flags</h2>\n")
	if len(r.Flags) == 0 {
		fmt.Fprintf(w, "<p>None: no row at or after now, none before %s, no instant with %.0f%% of the rows, no day without events, every row has a timestamp.</p>\n",
			r.Horizon.UTC().Format("2006-01-02"), clusterShare*100)
	} else {
		fmt.Fprintf(w, "<ul>\n")
		for _, f := range r.Flags {
			fmt.Fprintf(w, "<li class=\"flag\">%s</li>\n", esc(f))
		}
		fmt.Fprintf(w, "</ul>\n")
	}
	if r.GapsNote != "" && r.Timed > 0 {
		fmt.Fprintf(w, "<p class=\"muted\">%s.</p>\n", esc(r.GapsNote))
	}
	if len(p.Destinations) > 0 || p.DestNote != "" {
		fmt.Fprintf(w, "<h2>Destinations</h2>\n")
		if len(p.Destinations) == 0 {
			fmt.Fprintf(w, "<p>%s</p>\n", esc(p.DestNote))
		} else {
			fmt.Fprintf(w, "<ul>\n")
			for _, d := range p.Destinations {
				fmt.Fprintf(w, "<li class=\"flag\">%s</li>\n", esc(d))
			}
			fmt.Fprintf(w, "</ul>\n")
		}
	}
	if p.Duration != "" {
		fmt.Fprintf(w, "<h2>Duration</h2>\n<p>%s</p>\n", esc(p.Duration))
	}
	fmt.Fprintf(w, "</body></html>\n")
}

func svgOpen(w io.Writer, id string, width, height int) {
	fmt.Fprintf(w, "<svg id=\"%s\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"12\">\n",
		id, width, height, width, height)
	fmt.Fprintf(w, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", width, height)
}

// writeTimelineSVG draws a column per bucket, colored by its flag, with a
// light band over days without events, a y axis and dated ticks.
func (r *timelineReport) writeTimelineSVG(w io.Writer) {
	esc := html.EscapeString
	svgOpen(w, "timeline", svgWidth, tlHeight)
	plotW, plotH := float64(svgWidth-tlLeft-tlRight), float64(tlHeight-tlTop-tlBottom)
	var maxN int64
	for _, b := range r.Buckets {
		maxN = max(maxN, b.N)
	}
	if maxN == 0 {
		maxN = 1
	}
	// legend
	x := float64(tlLeft)
	for _, l := range []struct{ color, text string }{{colorEvents, "events"}, {colorFuture, "at or after now"},
		{colorCluster, "cluster at one instant"}, {colorOld, "before the horizon"}, {colorGap, "day without events"}} {
		fmt.Fprintf(w, "<rect x=\"%.1f\" y=\"14\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%.1f\" y=\"24\">%s</text>\n", x, l.color, x+16, esc(l.text))
		x += 16 + float64(len(l.text))*7 + 18
	}
	// y grid and labels
	for _, f := range []float64{0, 0.5, 1} {
		y := float64(tlTop) + plotH*(1-f)
		fmt.Fprintf(w, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n", tlLeft, y, svgWidth-tlRight, y)
		fmt.Fprintf(w, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", tlLeft-6, y+4, commas(int64(f*float64(maxN)+0.5)))
	}
	n := len(r.Buckets)
	bw := plotW / float64(max(n, 1))
	gap := 0.0
	if bw > 4 {
		gap = 1
	}
	for i, b := range r.Buckets {
		bx := float64(tlLeft) + float64(i)*bw
		if b.Gap {
			fmt.Fprintf(w, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%.1f\" fill=\"%s\"><title>%s: no events</title></rect>\n",
				bx, tlTop, bw, plotH, colorGap, b.Label)
		}
		if b.N == 0 {
			continue
		}
		color := colorEvents
		switch {
		case b.Future:
			color = colorFuture
		case b.Cluster:
			color = colorCluster
		case b.Old:
			color = colorOld
		}
		h := plotH * float64(b.N) / float64(maxN)
		if h < 1 {
			h = 1
		}
		fmt.Fprintf(w, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>%s: %s</title></rect>\n",
			bx+gap/2, float64(tlTop)+plotH-h, max(bw-gap, 0.5), h, color, b.Label, commas(b.N))
		if note := b.marker(); (b.Future || b.Cluster) && note != "" {
			// name the flag beside the column; a cluster's column is often the tallest
			anchor, tx := "end", bx-3
			if bx < float64(tlLeft)+plotW/2 {
				anchor, tx = "start", bx+bw+3
			}
			fmt.Fprintf(w, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" fill=\"%s\">%s: %s</text>\n",
				tx, float64(tlTop)+plotH-h+12, anchor, colorFuture, esc(strings.TrimPrefix(note, "! ")), commas(b.N))
		}
	}
	// x axis and at most 8 dated ticks
	base := float64(tlTop) + plotH
	fmt.Fprintf(w, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#333333\"/>\n", tlLeft, base, svgWidth-tlRight, base)
	step := max(1, (n+7)/8)
	for i := 0; i < n; i += step {
		tx := float64(tlLeft) + (float64(i)+0.5)*bw
		fmt.Fprintf(w, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>\n", tx, base, tx, base+4)
		fmt.Fprintf(w, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", tx, base+18, esc(r.Buckets[i].Label))
	}
	fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"#666666\">rows per %s (UTC)</text>\n", svgWidth-tlRight, tlHeight-10, r.Unit)
	fmt.Fprintf(w, "</svg>\n")
}

// namesSVGHeight is the names chart's height for its rows.
func namesSVGHeight(rows int) int { return namesTop*2 + rows*namesRowH }

// writeNamesSVG draws the top names as horizontal bars.
func (r *timelineReport) writeNamesSVG(w io.Writer) {
	esc := html.EscapeString
	height := namesSVGHeight(len(r.Names))
	svgOpen(w, "names", svgWidth, height)
	var maxN int64
	for _, n := range r.Names {
		maxN = max(maxN, n.N)
	}
	barMax := float64(svgWidth - namesLabelW - namesCountW - 20)
	for i, n := range r.Names {
		y := namesTop + i*namesRowH
		fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", namesLabelW-8, y+16, esc(clip(n.Name, 32)))
		bl := barMax * float64(n.N) / float64(max(maxN, 1))
		fmt.Fprintf(w, "<rect x=\"%d\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\"/>\n", namesLabelW, y+4, max(bl, 1), namesRowH-8, colorEvents)
		fmt.Fprintf(w, "<text x=\"%.1f\" y=\"%d\">%s (%s)</text>\n", float64(namesLabelW)+bl+6, y+16, commas(n.N), pct(n.N, r.Rows))
	}
	fmt.Fprintf(w, "</svg>\n")
}
