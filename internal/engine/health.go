package engine

import (
	"encoding/json"
	"sync"

	"github.com/taskerhq/tasker/internal/store"
)

// health tracks recent step outcomes and database pool pressure, and shrinks
// the in-flight cap while the system is unhealthy, in the spirit of the
// Rails engine's health-based concurrency: back off instead of piling on.
type health struct {
	store *store.Store

	mu     sync.Mutex
	ring   [200]bool // true = failure
	next   int
	filled int
	fails  int
}

func newHealth(s *store.Store) *health { return &health{store: s} }

func (h *health) observe(ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.filled == len(h.ring) {
		if h.ring[h.next] {
			h.fails--
		}
	} else {
		h.filled++
	}
	h.ring[h.next] = !ok
	if !ok {
		h.fails++
	}
	h.next = (h.next + 1) % len(h.ring)
}

// HealthState is the engine's view of its own health.
type HealthState struct {
	RecentResults  int     `json:"recent_results"`
	RecentFailures int     `json:"recent_failures"`
	ErrorRate      float64 `json:"error_rate"`
	PoolPressure   float64 `json:"pool_pressure"`
	CapFactor      float64 `json:"cap_factor"`
}

func (h *health) state() HealthState {
	h.mu.Lock()
	s := HealthState{RecentResults: h.filled, RecentFailures: h.fails}
	h.mu.Unlock()
	if s.RecentResults > 0 {
		s.ErrorRate = float64(s.RecentFailures) / float64(s.RecentResults)
	}
	if h.store != nil {
		st := h.store.Pool().Stat()
		if st.MaxConns() > 0 {
			s.PoolPressure = float64(st.AcquiredConns()) / float64(st.MaxConns())
		}
	}
	s.CapFactor = 1
	// Only judge the error rate over enough samples to mean something.
	if s.RecentResults >= 50 && s.ErrorRate >= 0.5 {
		s.CapFactor /= 2
	}
	if s.PoolPressure >= 0.9 {
		s.CapFactor /= 2
	}
	return s
}

// cap returns the effective in-flight cap for a configured cap (0 = none).
func (h *health) cap(max int) int {
	if max <= 0 {
		return 0
	}
	c := int(float64(max) * h.state().CapFactor)
	return max1(c)
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// Health reports the engine's health state and effective in-flight cap.
func (e *Engine) Health() (HealthState, int) {
	return e.health.state(), e.health.cap(e.cfg.MaxInFlight)
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v) // only called with maps of plain values
	return b
}
