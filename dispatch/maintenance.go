package dispatch

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// Defaults of MaintenanceConfig.
const (
	DefaultRetention           = 30 * 24 * time.Hour
	DefaultRetentionBatch      = 1000
	DefaultMaintenanceInterval = time.Minute
)

// MaintenanceConfig tunes the housekeeping. Zero values take the defaults.
type MaintenanceConfig struct {
	// Retention is how long finished deliveries are kept; default 30 days.
	Retention time.Duration
	// Batch is how many rows one delete takes; default 1000.
	Batch int
	// Interval is how often the housekeeping runs; default 1 minute.
	Interval time.Duration
	// IsLeader reports whether this process should run the housekeeping
	// now (one replica at a time); nil: always.
	IsLeader func(ctx context.Context) bool
}

// Maintainer deletes old finished deliveries in bounded batches and
// disables webhooks whose deliveries have all failed for 5 days.
type Maintainer struct {
	logger *slog.Logger
	now    func() time.Time
	store  webhooks.Maintenance
	cfg    MaintenanceConfig

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewMaintainer returns a Maintainer; Start runs it.
func NewMaintainer(logger *slog.Logger, now func() time.Time, store webhooks.Maintenance, cfg *MaintenanceConfig) (*Maintainer, error) {
	if cfg == nil {
		cfg = &MaintenanceConfig{}
	}
	if cfg.Retention < 0 || cfg.Batch < 0 || cfg.Interval < 0 {
		return nil, errors.New("maintenance config: Retention, Batch and Interval cannot be less than zero")
	}
	c := *cfg
	c.Retention = cmp.Or(c.Retention, DefaultRetention)
	c.Batch = cmp.Or(c.Batch, DefaultRetentionBatch)
	c.Interval = cmp.Or(c.Interval, DefaultMaintenanceInterval)
	if now == nil {
		now = time.Now
	}
	return &Maintainer{logger: cmp.Or(logger, slog.New(slog.DiscardHandler)), now: now, store: store, cfg: c}, nil
}

// Start runs the housekeeping every Interval until Stop.
func (m *Maintainer) Start(ctx context.Context) error {
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(m.cfg.Interval)
		defer t.Stop()
		for {
			m.RunOnce(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Stop ends the housekeeping and waits for it.
func (m *Maintainer) Stop() {
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
}

// RunOnce runs the housekeeping once, if this process is the leader.
func (m *Maintainer) RunOnce(ctx context.Context) {
	if m.cfg.IsLeader != nil && !m.cfg.IsLeader(ctx) {
		return
	}
	now := m.now()
	if n, err := m.store.DisableFailingWebhooks(ctx, now.Add(-webhooks.AutoDisableAfter), webhooks.DisabledReasonFailing); err != nil {
		if ctx.Err() == nil {
			m.logger.Error("disable failing webhooks", "error", err)
		}
	} else if n > 0 {
		m.logger.Info("disabled webhooks whose deliveries all failed for 5 days", "webhooks", n)
	}
	cut := now.Add(-m.cfg.Retention)
	var total int64
	for ctx.Err() == nil {
		n, err := m.store.DeleteFinishedBefore(ctx, cut, m.cfg.Batch)
		if err != nil {
			if ctx.Err() == nil {
				m.logger.Error("retention", "error", err)
			}
			return
		}
		total += n
		if n < int64(m.cfg.Batch) {
			break
		}
	}
	if total > 0 {
		m.logger.Info("retention deleted old deliveries", "deliveries", total)
	}
}
