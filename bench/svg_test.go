package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

// svgDoc is what a test needs to see in a chart.
type svgDoc struct {
	series map[string]string // data-series → d
	texts  []string
	root   string
}

func parseSVG(t *testing.T, b []byte) svgDoc {
	t.Helper()
	doc := svgDoc{series: map[string]string{}}
	d := xml.NewDecoder(bytes.NewReader(b))
	var inText bool
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("invalid XML: %v\n%s", err, b)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if doc.root == "" {
				doc.root = e.Name.Local
			}
			inText = e.Name.Local == "text"
			if e.Name.Local == "path" {
				var name, dd string
				for _, a := range e.Attr {
					switch a.Name.Local {
					case "data-series":
						name = a.Value
					case "d":
						dd = a.Value
					}
				}
				doc.series[name] = dd
			}
		case xml.CharData:
			if inText {
				doc.texts = append(doc.texts, string(e))
			}
		case xml.EndElement:
			inText = false
		}
	}
	return doc
}

func TestChartSVG(t *testing.T) {
	c := Chart{
		Title:    `latency <p50 & p99> "quoted"`,
		Subtitle: "the sub-title",
		XLabel:   "seconds", YLabel: "ms",
		Series: []Series{
			{Name: "p50", X: []float64{0.5, 1.5, 2.5, 3.5}, Y: []float64{1, 2, -1, 4}},
			{Name: "p99 & more", X: []float64{0.5, 1.5, 2.5, 3.5}, Y: []float64{5, math.NaN(), 7, 8}},
		},
		Marker: 3, MarkerLabel: "publishing ends",
	}
	var b bytes.Buffer
	if err := c.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "NaN") || strings.Contains(out, "Inf") {
		t.Errorf("non-numbers in the SVG")
	}
	doc := parseSVG(t, b.Bytes())
	if doc.root != "svg" {
		t.Errorf("root element %q", doc.root)
	}
	if len(doc.series) != 2 {
		t.Fatalf("series %v", doc.series)
	}
	// A gap starts a new sub-path: two M's in each.
	for _, name := range []string{"p50", "p99 & more"} {
		d, ok := doc.series[name]
		if !ok {
			t.Fatalf("no path for %q", name)
		}
		if strings.Count(d, "M") != 2 {
			t.Errorf("%s: path %q, want two sub-paths around the gap", name, d)
		}
	}
	texts := strings.Join(doc.texts, "|")
	for _, want := range []string{`latency <p50 & p99> "quoted"`, "the sub-title", "p50", "p99 & more", "publishing ends", "seconds", "ms"} {
		if !strings.Contains(texts, want) {
			t.Errorf("text %q missing from %q", want, texts)
		}
	}
}

func TestChartSVGEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := (Chart{Title: "nothing"}).WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	doc := parseSVG(t, b.Bytes())
	if doc.root != "svg" || len(doc.series) != 0 {
		t.Errorf("empty chart: %+v", doc)
	}
	b.Reset()
	one := Chart{Series: []Series{{Name: "only", X: []float64{0.5}, Y: []float64{0}}}}
	if err := one.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	if d := parseSVG(t, b.Bytes()).series["only"]; !strings.HasPrefix(d, "M") {
		t.Errorf("single point path %q", d)
	}
}

func TestNiceStep(t *testing.T) {
	cases := []struct{ max, want float64 }{{0, 1}, {10, 2}, {9, 2}, {23, 5}, {1000, 200}, {0.3, 0.1}, {18000, 5000}, {5, 1}}
	for _, c := range cases {
		if got := niceStep(c.max, 5); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("niceStep(%v) = %v, want %v", c.max, got, c.want)
		}
	}
}
