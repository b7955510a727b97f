package httpapi

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics count requests by route pattern (never the raw URL, which
// may hold a key) and status code, and time them by route.
type httpMetrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	published prometheus.Counter
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pancake_http_requests_total",
		Help: "HTTP requests served, by route pattern and status code.",
	}, []string{"route", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pancake_http_request_duration_seconds",
		Help:    "Time to serve HTTP requests, by route pattern.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15, 30},
	}, []string{"route"})
	published := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pancake_events_published_total",
		Help: "Events accepted (202) by the publish endpoints, single and batch; a repeated idempotency key counts again.",
	})
	var err error
	if requests, err = register(reg, requests); err != nil {
		return nil, err
	}
	if duration, err = register(reg, duration); err != nil {
		return nil, err
	}
	if published, err = register(reg, published); err != nil {
		return nil, err
	}
	return &httpMetrics{requests: requests, duration: duration, published: published}, nil
}

// register registers c, or returns the collector already registered under
// its name (a second Server on the same registry shares the metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// countPublished counts n events accepted; m may be nil.
func (m *httpMetrics) countPublished(n int) {
	if m != nil {
		m.published.Add(float64(n))
	}
}

func (m *httpMetrics) observe(route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}
