package bench

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Series is one line of a chart. A point whose Y is negative or NaN is a gap.
type Series struct {
	Name  string
	Color string // CSS colour; a default palette is used when empty
	X, Y  []float64
}

// Chart is a simple line chart drawn as SVG by hand.
type Chart struct {
	Title          string
	Subtitle       string // a smaller second line under the title
	XLabel, YLabel string
	Series         []Series
	// Marker, when > 0, draws a dashed vertical line at that x with MarkerLabel.
	Marker      float64
	MarkerLabel string
	Width       int // default 800
	Height      int // default 360
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"}

// WriteSVG writes the chart as a standalone SVG document.
func (c Chart) WriteSVG(w io.Writer) error {
	W, H := c.Width, c.Height
	if W <= 0 {
		W = 800
	}
	if H <= 0 {
		H = 360
	}
	const left, right, top, bottom = 70.0, 20.0, 52.0, 70.0
	pw, ph := float64(W)-left-right, float64(H)-top-bottom

	// Ranges: x from 0, y from 0; both at least 1 wide.
	xmax, ymax := 0.0, 0.0
	for _, s := range c.Series {
		for i := range s.X {
			if i >= len(s.Y) || !valid(s.Y[i]) || !valid(s.X[i]) {
				continue
			}
			xmax = math.Max(xmax, s.X[i])
			ymax = math.Max(ymax, s.Y[i])
		}
	}
	xmax = math.Max(xmax, c.Marker)
	xstep := niceStep(xmax, 10)
	ystep := niceStep(ymax, 5)
	xmax = math.Max(xstep, math.Ceil(xmax/xstep)*xstep)
	ymax = math.Max(ystep, math.Ceil(ymax/ystep)*ystep)
	px := func(x float64) float64 { return left + x/xmax*pw }
	py := func(y float64) float64 { return top + ph - y/ymax*ph }

	b := bufio.NewWriter(w)
	fmt.Fprintf(b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(b, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(b, `<text x="%g" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", left, esc(c.Title))
	if c.Subtitle != "" {
		fmt.Fprintf(b, `<text x="%g" y="38" fill="#555">%s</text>`+"\n", left, esc(c.Subtitle))
	}

	// Grid and ticks.
	fmt.Fprintf(b, `<g stroke="#ddd" stroke-width="1">`+"\n")
	for y := 0.0; y <= ymax+ystep/2; y += ystep {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`+"\n", left, py(y), left+pw, py(y))
	}
	for x := 0.0; x <= xmax+xstep/2; x += xstep {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`+"\n", px(x), top, px(x), top+ph)
	}
	fmt.Fprintf(b, "</g>\n")
	fmt.Fprintf(b, `<g fill="#333">`+"\n")
	for y := 0.0; y <= ymax+ystep/2; y += ystep {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, py(y)+4, fmtTick(y))
	}
	for x := 0.0; x <= xmax+xstep/2; x += xstep {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(x), top+ph+16, fmtTick(x))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", left+pw/2, top+ph+34, esc(c.XLabel))
	fmt.Fprintf(b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">%s</text>`+"\n", top+ph/2, top+ph/2, esc(c.YLabel))
	fmt.Fprintf(b, "</g>\n")
	fmt.Fprintf(b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#888"/>`+"\n", left, top, pw, ph)

	if c.Marker > 0 {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="5,4"/>`+"\n", px(c.Marker), top, px(c.Marker), top+ph)
		// The label goes on the side of the line with more room.
		x, anchor := px(c.Marker)+4, "start"
		if c.Marker > xmax*0.7 {
			x, anchor = px(c.Marker)-4, "end"
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#555" text-anchor="%s">%s</text>`+"\n", x, top+12, anchor, esc(c.MarkerLabel))
	}

	// Series, then the legend below the plot.
	for i, s := range c.Series {
		color := s.Color
		if color == "" {
			color = palette[i%len(palette)]
		}
		var d strings.Builder
		pen := false
		for j := range s.X {
			if j >= len(s.Y) || !valid(s.Y[j]) || !valid(s.X[j]) {
				pen = false
				continue
			}
			if pen {
				d.WriteString(" L")
			} else {
				if d.Len() > 0 {
					d.WriteByte(' ')
				}
				d.WriteString("M")
				pen = true
			}
			fmt.Fprintf(&d, "%.1f,%.1f", px(s.X[j]), py(s.Y[j]))
		}
		fmt.Fprintf(b, `<path data-series="%s" d="%s" fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round"/>`+"\n", esc(s.Name), d.String(), color)
		// Dots make single points (a path of one M) visible.
		fmt.Fprintf(b, `<g fill="%s">`, color)
		for j := range s.X {
			if j < len(s.Y) && valid(s.Y[j]) && valid(s.X[j]) {
				fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="2"/>`, px(s.X[j]), py(s.Y[j]))
			}
		}
		fmt.Fprintf(b, "</g>\n")
		lx, ly := left+float64(i)*170, float64(H)-14
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`, lx, ly-4, lx+24, ly-4, color)
		fmt.Fprintf(b, `<text class="legend" x="%.1f" y="%.1f">%s</text>`+"\n", lx+30, ly, esc(s.Name))
	}
	fmt.Fprintf(b, "</svg>\n")
	return b.Flush()
}

func valid(v float64) bool { return v >= 0 && !math.IsNaN(v) && !math.IsInf(v, 0) }

// niceStep returns a round step (1, 2 or 5 × 10^k) splitting [0, max] into
// about n intervals.
func niceStep(max float64, n int) float64 {
	if max <= 0 || n <= 0 {
		return 1
	}
	raw := max / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func fmtTick(v float64) string {
	if math.Abs(v-math.Round(v)) < 1e-9 {
		return strconv.FormatInt(int64(math.Round(v)), 10)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
