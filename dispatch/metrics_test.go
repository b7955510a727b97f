package dispatch_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/dispatch"
)

type countingStatter struct {
	reads atomic.Int64
	err   error
}

func (c *countingStatter) QueueStats(context.Context) (*webhooks.QueueStats, error) {
	c.reads.Add(1)
	if c.err != nil {
		return nil, c.err
	}
	return &webhooks.QueueStats{Due: 7, WebhooksHealth: map[string]int64{}}, nil
}

// TestScrapesInALoopReadTheQueueOnce: /metrics is open to anyone, and
// reading the queue gauges counts every queued delivery; scrapes close
// together share one read, failed or not.
func TestScrapesInALoopReadTheQueueOnce(t *testing.T) {
	t.Parallel()
	for _, qs := range []*countingStatter{{}, {err: errors.New("database is locked")}} {
		reg := prometheus.NewRegistry()
		dispatch.NewMetrics(reg, qs)
		h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
		for range 50 {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			if has := strings.Contains(rec.Body.String(), "\npancake_queue_due 7\n"); rec.Code != http.StatusOK || has != (qs.err == nil) {
				t.Fatalf("scrape (read error %v): %d, pancake_queue_due 7 there: %v\n%s", qs.err, rec.Code, has, rec.Body)
			}
		}
		if n := qs.reads.Load(); n != 1 {
			t.Errorf("50 scrapes (read error %v) read the queue %d times; want 1", qs.err, n)
		}
	}
}
