package policies

import "sync/atomic"

// Switch holds the active engine. Activation is atomic: a request that took
// the engine with Load finishes on it even if another is activated meanwhile,
// and every later Load sees the new one. Callers take the engine once per
// request.
type Switch struct {
	active atomic.Pointer[Engine]
}

// NewSwitch returns a switch with e active.
func NewSwitch(e *Engine) *Switch {
	s := &Switch{}
	s.active.Store(e)
	return s
}

// Load returns the active engine.
func (s *Switch) Load() *Engine { return s.active.Load() }

// Activate makes e the active engine and returns the one it replaces.
func (s *Switch) Activate(e *Engine) (previous *Engine) { return s.active.Swap(e) }
