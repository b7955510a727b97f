package dispatch

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/egress"
)

// Metrics are the delivery engine's Prometheus metrics. Labels never carry
// a key, a URL or a shop id. A nil *Metrics records nothing.
type Metrics struct {
	attempts *prometheus.CounterVec
	latency  prometheus.Histogram
	inFlight prometheus.Gauge
}

// QueueStatter reads the queue gauges at scrape time.
type QueueStatter interface {
	QueueStats(ctx context.Context) (*webhooks.QueueStats, error)
}

// NewMetrics registers the engine's metrics, and queue gauges read from qs
// at scrape time, on reg.
func NewMetrics(reg prometheus.Registerer, qs QueueStatter) *Metrics {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pancake_delivery_attempts_total",
			Help: "Delivery attempts by outcome (success, http_error, timeout, refused, dns, tls, blocked, other).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pancake_delivery_attempt_duration_seconds",
			Help:    "Duration of delivery attempts.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15},
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pancake_delivery_attempts_in_flight",
			Help: "Delivery attempts being made now.",
		}),
	}
	reg.MustRegister(m.attempts, m.latency, m.inFlight)
	if qs != nil {
		reg.MustRegister(&queueCollector{qs: qs,
			due:       prometheus.NewDesc("pancake_queue_due", "Queued deliveries due now that no server has claimed (all servers of the database).", nil, nil),
			claimed:   prometheus.NewDesc("pancake_queue_claimed", "Queued deliveries a server has claimed: waiting for a worker or being sent (all servers of the database).", nil, nil),
			scheduled: prometheus.NewDesc("pancake_queue_scheduled", "Queued deliveries due later (retries), not claimed (all servers of the database).", nil, nil),
			oldest:    prometheus.NewDesc("pancake_queue_oldest_due_age_seconds", "Age of the oldest due delivery no server has claimed.", nil, nil),
			health:    prometheus.NewDesc("pancake_webhooks", "Webhooks by health status.", []string{"status"}, nil),
		})
	}
	return m
}

func (m *Metrics) observe(res egress.Result) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(res.Outcome()).Inc()
	m.latency.Observe(res.Duration.Seconds())
}

func (m *Metrics) track(delta float64) {
	if m != nil {
		m.inFlight.Add(delta)
	}
}

// queueStatsFor is how long the queue gauges read by one scrape serve the
// next ones: /metrics needs no key, and each read counts every queued
// delivery, so scrapes in a loop cost one read in 5 s, not one each.
const queueStatsFor = 5 * time.Second

type queueCollector struct {
	qs                                      QueueStatter
	due, claimed, scheduled, oldest, health *prometheus.Desc

	mu   sync.Mutex // one read at a time; the others wait for its result
	read time.Time  // when last and err were read
	last *webhooks.QueueStats
	err  error
}

// stats returns the queue gauges, read again when the last read is older
// than queueStatsFor.
func (c *queueCollector) stats() (*webhooks.QueueStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.read.IsZero() && time.Since(c.read) < queueStatsFor {
		return c.last, c.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.last, c.err = c.qs.QueueStats(ctx)
	c.read = time.Now()
	return c.last, c.err
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.due
	ch <- c.claimed
	ch <- c.scheduled
	ch <- c.oldest
	ch <- c.health
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.stats()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.due, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.due, prometheus.GaugeValue, float64(st.Due))
	ch <- prometheus.MustNewConstMetric(c.claimed, prometheus.GaugeValue, float64(st.Claimed))
	ch <- prometheus.MustNewConstMetric(c.scheduled, prometheus.GaugeValue, float64(st.Scheduled))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, st.OldestDueAge.Seconds())
	for _, s := range []string{webhooks.HealthHealthy, webhooks.HealthWarning, webhooks.HealthError} {
		ch <- prometheus.MustNewConstMetric(c.health, prometheus.GaugeValue, float64(st.WebhooksHealth[s]), s)
	}
}
