package main

import (
	"testing"
	"time"
)

func samples(n int, f func(i int) (gor, heap float64)) []Sample {
	out := make([]Sample, n)
	for i := range out {
		g, h := f(i)
		out[i] = Sample{Elapsed: float64(i * 10), Goroutines: g, HeapInuse: h, RSS: int64(h) * 2}
	}
	return out
}

// The growth criterion passes a flat run with the garbage collector's
// swing in it and fails a run that gains a goroutine a minute or 200 KiB
// of heap per sample (1.2 MiB a minute).
func TestSummariseGrowthCriterion(t *testing.T) {
	const n = 180 // 30 minutes of 10 s samples
	took := n * 10 * time.Second
	flat := summarise(samples(n, func(i int) (float64, float64) { return float64(20 + i%14), float64(42<<20 + (i%5)*10<<20) }), took, nil)
	if !flat.Pass {
		t.Errorf("a flat run failed: %v", flat.Failures)
	}
	leakG := summarise(samples(n, func(i int) (float64, float64) { return float64(25 + i/6), 60 << 20 }), took, nil)
	if leakG.Pass {
		t.Errorf("a goroutine per sample passed: medians %v → %v", leakG.FirstGoroutine, leakG.LastGoroutine)
	}
	leakH := summarise(samples(n, func(i int) (float64, float64) { return 25, float64(42<<20 + i*200<<10 + (i%5)*10<<20) }), took, nil)
	if leakH.Pass {
		t.Errorf("200 KiB of heap per sample passed: medians %v → %v", leakH.FirstHeap, leakH.LastHeap)
	}
	short := summarise(samples(10, func(int) (float64, float64) { return 25, 60 << 20 }), 100*time.Second, nil)
	if short.Pass {
		t.Error("a run too short to judge passed")
	}
}
