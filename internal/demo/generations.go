package demo

import "sync"

// generationTracker records the highest generation (classic) or member
// epoch (KIP-848) any member of a group reported, as ground truth for
// tests of the exporter's generation and rebalance metrics.
type generationTracker struct {
	mu  sync.Mutex
	max map[string]int32
}

func newGenerationTracker() *generationTracker {
	return &generationTracker{max: make(map[string]int32)}
}

func (t *generationTracker) observe(group string, generation int32) {
	if generation <= 0 {
		return // not joined yet, or a KIP-848 member between epochs
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if generation > t.max[group] {
		t.max[group] = generation
	}
}

func (t *generationTracker) snapshot() map[string]int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int32, len(t.max))
	for g, v := range t.max {
		out[g] = v
	}
	return out
}
