package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/taskerhq/tasker/internal/store"
)

// Adaptive concurrency (docs/operating.md, "Adaptive concurrency"): the
// in-flight limit moves between AdaptiveConfig.Min and Config.MaxInFlight
// with the pressure on the whole system, in the spirit of the Rails
// engine's health-based concurrency: back off instead of piling on. Each
// instance records what it saw over the last interval (its scheduler-pass
// commit latency, its wait for pool connections, its step results,
// failures and throttled invocations) in tasker_pressure_samples; every
// instance reads all recent samples and the server's connection count
// (pg_stat_activity), so the limit reflects every scheduler instance, not
// one process's memory. Under pressure the limit halves; without, it grows
// by a tenth of the maximum per interval (AIMD).

// AdaptiveConfig tunes adaptive concurrency; zero values take the defaults.
type AdaptiveConfig struct {
	// Disabled fixes the limit at MaxInFlight.
	Disabled bool
	// Min is the lowest limit (default MaxInFlight/10, at least 1).
	Min int
	// Interval is how often the limit is re-evaluated (default 5 s).
	Interval time.Duration
	// CommitHigh is the scheduler-pass latency that counts as database
	// pressure (default 500 ms); PoolWaitHigh the mean wait for a pool
	// connection (default 100 ms).
	CommitHigh, PoolWaitHigh time.Duration
	// Connections is the connection count to the database that counts as
	// pressure (default 80 % of max_connections).
	Connections int
	// ErrorRate is the share of failed step results that counts as
	// pressure, judged over at least 20 results (default 0.5);
	// ThrottleRate the share of throttled invocations (default 0.1).
	ErrorRate, ThrottleRate float64
}

func (c AdaptiveConfig) withDefaults(max int) AdaptiveConfig {
	if c.Min <= 0 {
		c.Min = max / 10
	}
	c.Min = min(max1(c.Min), max1(max))
	if c.Interval <= 0 {
		c.Interval = 5 * time.Second
	}
	if c.CommitHigh <= 0 {
		c.CommitHigh = 500 * time.Millisecond
	}
	if c.PoolWaitHigh <= 0 {
		c.PoolWaitHigh = 100 * time.Millisecond
	}
	if c.ErrorRate <= 0 {
		c.ErrorRate = 0.5
	}
	if c.ThrottleRate <= 0 {
		c.ThrottleRate = 0.1
	}
	return c
}

// minErrorSamples is how many results the error rate needs to mean something.
const minErrorSamples = 20

// Reason codes of the in-flight limit (the reason label of the
// tasker_in_flight_limit metric).
const (
	ReasonHealthy    = "healthy"
	ReasonRecovering = "recovering"
	ReasonPressure   = "pressure"
	ReasonFixed      = "fixed"
)

// health holds this instance's observations since its last sample and the
// current limit.
type health struct {
	mu          sync.Mutex
	results     int
	failures    int
	throttles   int
	commitSum   time.Duration
	commitN     int
	lastAcqN    int64
	lastAcqDur  time.Duration
	limit       int // 0 until first used
	reason      string
	detail      string
	last        store.Pressure
	adaptedAt   time.Time
	adaptingNow bool
	reported    bool // the limit was published once
}

func (h *health) observe(ok bool) {
	h.mu.Lock()
	h.results++
	if !ok {
		h.failures++
	}
	h.mu.Unlock()
}

func (h *health) throttled(n int) {
	h.mu.Lock()
	h.throttles += n
	h.mu.Unlock()
}

func (h *health) commit(d time.Duration) {
	h.mu.Lock()
	h.commitSum += d
	h.commitN++
	h.mu.Unlock()
}

// HealthState is the engine's view of the system's health and its
// in-flight limit.
type HealthState struct {
	RecentResults  int     `json:"recent_results"`
	RecentFailures int     `json:"recent_failures"`
	ErrorRate      float64 `json:"error_rate"`
	PoolPressure   float64 `json:"pool_pressure"`
	CapFactor      float64 `json:"cap_factor"`
	// Limit is the current in-flight limit (0: uncapped), MaxLimit the
	// configured MaxInFlight; Reason is a code (healthy, recovering,
	// pressure, fixed) and Detail says what pressure was seen.
	Limit    int    `json:"limit"`
	MaxLimit int    `json:"max_limit"`
	Reason   string `json:"reason"`
	Detail   string `json:"detail,omitempty"`
	// The pressure last read from PostgreSQL, over every instance.
	Instances      int     `json:"instances"`
	Connections    int     `json:"connections"`
	MaxConnections int     `json:"max_connections"`
	CommitMS       float64 `json:"commit_ms"`
	PoolWaitMS     float64 `json:"pool_wait_ms"`
	Throttles      int64   `json:"throttles"`
}

// Health reports the engine's health state and effective in-flight cap
// (0: none).
func (e *Engine) Health() (HealthState, int) {
	h := e.health
	h.mu.Lock()
	defer h.mu.Unlock()
	limit := e.limitLocked()
	s := HealthState{RecentResults: int(h.last.Results), RecentFailures: int(h.last.Failures), Limit: limit,
		MaxLimit: e.cfg.MaxInFlight, Reason: h.reason, Detail: h.detail, Instances: h.last.Instances,
		Connections: h.last.Connections, MaxConnections: h.last.MaxConnections, CommitMS: h.last.CommitMS,
		PoolWaitMS: h.last.PoolWaitMS, Throttles: h.last.Throttle, CapFactor: 1}
	if s.RecentResults > 0 {
		s.ErrorRate = float64(s.RecentFailures) / float64(s.RecentResults)
	}
	if st := e.store.Pool().Stat(); st.MaxConns() > 0 {
		s.PoolPressure = float64(st.AcquiredConns()) / float64(st.MaxConns())
	}
	if e.cfg.MaxInFlight > 0 {
		s.CapFactor = float64(limit) / float64(e.cfg.MaxInFlight)
	}
	if s.Reason == "" {
		s.Reason = ReasonHealthy
		if e.cfg.MaxInFlight <= 0 || e.cfg.Adaptive.Disabled {
			s.Reason = ReasonFixed
		}
	}
	return s, limit
}

func (e *Engine) limitLocked() int {
	if e.cfg.MaxInFlight <= 0 {
		return 0
	}
	if e.health.limit == 0 || e.cfg.Adaptive.Disabled {
		e.health.limit = e.cfg.MaxInFlight
	}
	return e.health.limit
}

// inFlightCap returns the in-flight cap for a pass (0: none), adapting the
// limit first when an interval has passed. A failure to reach the samples
// keeps the current limit.
func (e *Engine) inFlightCap(ctx context.Context) int {
	if e.cfg.MaxInFlight > 0 && !e.cfg.Adaptive.Disabled {
		h := e.health
		h.mu.Lock()
		due := !h.adaptingNow && !e.clock.Now().Before(h.adaptedAt.Add(e.cfg.Adaptive.Interval))
		h.mu.Unlock()
		if due {
			if _, err := e.AdaptConcurrency(ctx); err != nil {
				e.log.WarnContext(ctx, "adaptive concurrency: pressure not read; limit unchanged", "error", err)
			}
		}
	}
	e.health.mu.Lock()
	defer e.health.mu.Unlock()
	return e.limitLocked()
}

// AdaptConcurrency records this instance's pressure sample, reads every
// instance's, and moves the in-flight limit; it returns the new state. The
// engine calls it at most once per AdaptiveConfig.Interval from its passes
// and sweeps; tests call it directly.
func (e *Engine) AdaptConcurrency(ctx context.Context) (HealthState, error) {
	if e.cfg.MaxInFlight <= 0 || e.cfg.Adaptive.Disabled {
		s, _ := e.Health()
		return s, nil
	}
	cfg := e.cfg.Adaptive
	h := e.health
	now := e.clock.Now()
	h.mu.Lock()
	if h.adaptingNow {
		h.mu.Unlock()
		s, _ := e.Health()
		return s, nil
	}
	h.adaptingNow = true
	sample := store.PressureSample{Instance: e.cfg.InstanceID, At: now, Results: h.results, Failures: h.failures,
		Throttles: h.throttles}
	if h.commitN > 0 {
		sample.CommitMS = float64((h.commitSum / time.Duration(h.commitN)).Microseconds()) / 1000
	}
	st := e.store.Pool().Stat()
	if n := st.AcquireCount() - h.lastAcqN; n > 0 {
		sample.PoolWaitMS = float64(((st.AcquireDuration() - h.lastAcqDur) / time.Duration(n)).Microseconds()) / 1000
	}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.adaptingNow = false
		h.mu.Unlock()
	}()
	if err := e.store.RecordPressure(ctx, sample); err != nil {
		return HealthState{}, err
	}
	p, err := e.store.ReadPressure(ctx, now.Add(-3*cfg.Interval))
	if err != nil {
		return HealthState{}, err
	}
	var why []string
	connHigh := cfg.Connections
	if connHigh <= 0 {
		connHigh = p.MaxConnections * 8 / 10
	}
	if connHigh > 0 && p.Connections >= connHigh {
		why = append(why, fmt.Sprintf("%d database connections (pressure at %d)", p.Connections, connHigh))
	}
	if p.CommitMS >= float64(cfg.CommitHigh.Milliseconds()) {
		why = append(why, fmt.Sprintf("scheduler pass latency %.0f ms (pressure at %d ms)", p.CommitMS, cfg.CommitHigh.Milliseconds()))
	}
	if p.PoolWaitMS >= float64(cfg.PoolWaitHigh.Milliseconds()) {
		why = append(why, fmt.Sprintf("pool wait %.0f ms (pressure at %d ms)", p.PoolWaitMS, cfg.PoolWaitHigh.Milliseconds()))
	}
	if p.Results >= minErrorSamples && float64(p.Failures) >= cfg.ErrorRate*float64(p.Results) {
		why = append(why, fmt.Sprintf("handler error rate %.0f%% of %d results", 100*float64(p.Failures)/float64(p.Results), p.Results))
	}
	if p.Throttle > 0 && float64(p.Throttle) >= cfg.ThrottleRate*float64(p.Results+p.Throttle) {
		why = append(why, fmt.Sprintf("%d throttled invocations", p.Throttle))
	}

	h.mu.Lock()
	prev := e.limitLocked()
	limit, reason := prev, ReasonHealthy
	switch {
	case len(why) > 0:
		limit, reason = max(cfg.Min, prev/2), ReasonPressure
	case prev < e.cfg.MaxInFlight:
		limit, reason = min(e.cfg.MaxInFlight, prev+max1(e.cfg.MaxInFlight/10)), ReasonRecovering
		if limit == e.cfg.MaxInFlight {
			reason = ReasonHealthy
		}
	}
	h.limit, h.reason, h.detail, h.last, h.adaptedAt = limit, reason, strings.Join(why, "; "), p, now
	// The sample covered the interval just ended.
	h.results, h.failures, h.throttles, h.commitSum, h.commitN = 0, 0, 0, 0, 0
	h.lastAcqN, h.lastAcqDur = st.AcquireCount(), st.AcquireDuration()
	detail := h.detail
	first := !h.reported
	h.reported = true
	h.mu.Unlock()
	// The first evaluation is published too, so metrics show the limit
	// from the start.
	if limit != prev || first {
		e.log.InfoContext(ctx, "in-flight limit changed", "limit", limit, "previous", prev, "reason", reason, "detail", detail)
		e.pub.Publish(ctx, []Event{{Name: ConcurrencyChanged, Time: now, Reason: detail,
			Data: mustJSON(map[string]any{"limit": limit, "previous": prev, "max": e.cfg.MaxInFlight, "reason": reason})}})
	}
	s, _ := e.Health()
	return s, nil
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v) // only called with maps of plain values
	return b
}
