package bench

import (
	"math"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]int64, 100)
	for i := range hundred {
		hundred[i] = int64(i + 1) // 1..100
	}
	cases := []struct {
		in   []int64
		p    float64
		want int64
	}{
		{nil, 50, 0},
		{[]int64{7}, 50, 7},
		{[]int64{7}, 99.9, 7},
		{[]int64{1, 2}, 50, 1},
		{[]int64{1, 2}, 51, 2},
		{[]int64{1, 2, 3, 4}, 75, 3},
		{hundred, 50, 50},
		{hundred, 99, 99},
		{hundred, 99.9, 100},
		{hundred, 100, 100},
		{hundred, 0, 1},
		{hundred, 1, 1},
		{hundred, 1.5, 2},
	}
	for _, c := range cases {
		if got := Percentile(c.in, c.p); got != c.want {
			t.Errorf("Percentile(%d values, %v) = %d, want %d", len(c.in), c.p, got, c.want)
		}
	}
	// p999 of 10,000 values is the 9,990th.
	big := make([]int64, 10000)
	for i := range big {
		big[i] = int64(i)
	}
	if got := Percentile(big, 99.9); got != 9989 {
		t.Errorf("p99.9 of 0..9999 = %d, want 9989", got)
	}
}

func TestSummarize(t *testing.T) {
	ns := []int64{int64(3 * time.Millisecond), int64(1 * time.Millisecond), int64(2 * time.Millisecond)}
	l := Summarize(ns)
	if l.N != 3 || l.P50ms != 2 || l.P99ms != 3 || l.P999ms != 3 || l.MaxMs != 3 || l.MeanMs != 2 {
		t.Errorf("Summarize = %+v", l)
	}
	if (Summarize(nil) != Latency{}) {
		t.Errorf("Summarize(nil) not zero")
	}
}

func TestMedian(t *testing.T) {
	if m := Median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	xs := []float64{10, 20}
	if m := Median(xs); m != 15 {
		t.Errorf("median = %v", m)
	}
	if xs[0] != 10 {
		t.Errorf("Median modified its input")
	}
	if Median(nil) != 0 {
		t.Errorf("median of nothing")
	}
}

func TestTimeline(t *testing.T) {
	s := int64(time.Second)
	arr := []arrival{
		{at: 100, lat: int64(time.Millisecond)},
		{at: s / 2, lat: int64(3 * time.Millisecond)},
		{at: s / 2, lat: int64(99 * time.Millisecond), dup: true}, // counted, no latency
		{at: 2*s + 1, lat: -1},
	}
	b := timeline([]int64{5, 7}, arr, 2*s+s/4)
	if len(b) != 3 {
		t.Fatalf("%d buckets, want 3", len(b))
	}
	if b[0].Width != 1 || b[1].Width != 1 || b[2].Width != 0.25 {
		t.Errorf("widths %v %v %v", b[0].Width, b[1].Width, b[2].Width)
	}
	if long := timeline(nil, nil, 4*s+1); len(long) != 5 {
		t.Errorf("a run of 4 s and a bit has %d buckets, want 5", len(long))
	}
	if b[0].Published != 5 || b[1].Published != 7 || b[2].Published != 0 {
		t.Errorf("published %+v", b)
	}
	if b[0].Delivered != 3 || b[1].Delivered != 0 || b[2].Delivered != 1 {
		t.Errorf("delivered %+v", b)
	}
	if b[0].P50ms != 1 || b[0].P99ms != 3 {
		t.Errorf("bucket 0 latency %+v", b[0])
	}
	if b[1].P50ms != -1 || b[2].P99ms != -1 {
		t.Errorf("buckets without samples: %+v %+v", b[1], b[2])
	}
	if !math.IsInf(1/ratio(0, 0), 1) && ratio(1, 0) != 0 {
		t.Errorf("ratio by zero")
	}
}
