package bench

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value such that at least p % of the values
// are less than or equal to it. sorted must be in ascending order. It returns 0
// for an empty slice; p <= 0 gives the minimum and p >= 100 the maximum.
func Percentile(sorted []int64, p float64) int64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	if p >= 100 {
		return sorted[n-1]
	}
	// The small epsilon keeps float error from pushing an exact rank up
	// (0.999 × 10000 is 9990.000000000002).
	rank := int(math.Ceil(p/100*float64(n) - 1e-9))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}

// Latency is a summary of a set of durations, in milliseconds.
type Latency struct {
	N      int     `json:"n"`
	P50ms  float64 `json:"p50_ms"`
	P99ms  float64 `json:"p99_ms"`
	P999ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
	MeanMs float64 `json:"mean_ms"`
}

// Summarize sorts ns (durations in nanoseconds) in place and summarizes them.
func Summarize(ns []int64) Latency {
	if len(ns) == 0 {
		return Latency{}
	}
	slices.Sort(ns)
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	return Latency{
		N:      len(ns),
		P50ms:  ms(Percentile(ns, 50)),
		P99ms:  ms(Percentile(ns, 99)),
		P999ms: ms(Percentile(ns, 99.9)),
		MaxMs:  ms(ns[len(ns)-1]),
		MeanMs: round3(sum / float64(len(ns)) / 1e6),
	}
}

// Median returns the median of xs (the mean of the two middle values for an
// even count), or 0 when xs is empty. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

func ms(ns int64) float64 { return round3(float64(ns) / 1e6) }

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func round1(x float64) float64 { return math.Round(x*10) / 10 }

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return math.Round(a/b*1000) / 1000
}

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return round1(float64(n) / d.Seconds())
}

// Bucket is one second of a scenario's timeline, counted from its start.
type Bucket struct {
	T         int     `json:"t"`         // seconds since the scenario started
	Width     float64 `json:"width_s"`   // 1, or less for the last, partial second
	Published int64   `json:"published"` // events answered 202 in this second
	Delivered int64   `json:"delivered"` // arrivals at the sink in this second
	P50ms     float64 `json:"p50_ms"`    // end-to-end latency of this second's first arrivals
	P99ms     float64 `json:"p99_ms"`
}

// timeline builds per-second buckets from publish counts (indexed by second)
// and arrivals (offsets from the scenario start), up to end (the offset where
// the scenario ended, in ns). A bucket without any latency sample has -1
// percentiles; the chart leaves a gap there.
func timeline(published []int64, arr []arrival, end int64) []Bucket {
	n := int((end + int64(time.Second) - 1) / int64(time.Second))
	n = max(n, len(published))
	for _, a := range arr {
		if s := int(a.at / int64(time.Second)); s+1 > n {
			n = s + 1
		}
	}
	endS := max(float64(end)/1e9, float64(n-1)+0.001)
	b := make([]Bucket, n)
	lats := make([][]int64, n)
	for i := range b {
		b[i].T = i
		b[i].Width = round3(min(1, endS-float64(i)))
		if i < len(published) {
			b[i].Published = published[i]
		}
	}
	for _, a := range arr {
		s := int(a.at / int64(time.Second))
		if s < 0 {
			s = 0
		}
		b[s].Delivered++
		if !a.dup && a.lat >= 0 {
			lats[s] = append(lats[s], a.lat)
		}
	}
	for i := range b {
		if len(lats[i]) == 0 {
			b[i].P50ms, b[i].P99ms = -1, -1
			continue
		}
		slices.Sort(lats[i])
		b[i].P50ms = ms(Percentile(lats[i], 50))
		b[i].P99ms = ms(Percentile(lats[i], 99))
	}
	return b
}
