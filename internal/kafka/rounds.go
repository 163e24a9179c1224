package kafka

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// rounds runs one kind of per-broker work (a groups describe, an offsets
// fetch) in rounds, so that a slow or hung broker delays only its own
// answer. A round starts the work on every broker whose previous call has
// finished, waits until every call finishes or the round's context ends,
// and returns, for each broker, the latest finished answer: this round's,
// or, for a broker still busy, the one before it (which may come from a
// call that started in an earlier round and finished since). The busy
// broker's call goes on in the background; a request never outlives
// sarama's request timeout (KRE_REQUEST_TIMEOUT), so it ends by itself.
type rounds[T any] struct {
	mu      sync.Mutex
	running map[int32]bool
	answers map[int32]answer[T]
}

// busy reports whether a call of broker id is still running.
func (r *rounds[T]) busy(id int32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running[id]
}

// last is broker id's latest finished answer, if any.
func (r *rounds[T]) last(id int32) (T, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.answers[id]
	return a.val, ok
}

// answer is one broker's finished call.
type answer[T any] struct {
	val  T
	err  error
	at   time.Time // when the call finished
	none bool      // no call of this broker has finished yet
}

// fresh reports whether the answer is from a call started at or after t.
func (a answer[T]) fresh(start time.Time) bool { return !a.none && !a.at.Before(start) }

func newRounds[T any]() *rounds[T] {
	return &rounds[T]{running: map[int32]bool{}, answers: map[int32]answer[T]{}}
}

// round runs fn on brokers as described above. Answers of brokers not in
// the list are forgotten.
func (r *rounds[T]) round(ctx context.Context, brokers []*sarama.Broker, fn func(*sarama.Broker) (T, error)) map[int32]answer[T] {
	return r.run(ctx, brokers, fn, true)
}

// more is round for brokers added to a round already run in this poll
// (brokers the cached metadata did not know): it forgets nothing.
func (r *rounds[T]) more(ctx context.Context, brokers []*sarama.Broker, fn func(*sarama.Broker) (T, error)) map[int32]answer[T] {
	return r.run(ctx, brokers, fn, false)
}

func (r *rounds[T]) run(ctx context.Context, brokers []*sarama.Broker, fn func(*sarama.Broker) (T, error), forget bool) map[int32]answer[T] {
	done := make(chan struct{}, len(brokers))
	started := 0
	r.mu.Lock()
	listed := map[int32]bool{}
	for _, b := range brokers {
		listed[b.ID()] = true
		if r.running[b.ID()] {
			continue
		}
		r.running[b.ID()] = true
		started++
		go func() {
			v, err := fn(b)
			r.mu.Lock()
			r.answers[b.ID()] = answer[T]{val: v, err: err, at: time.Now()}
			r.running[b.ID()] = false
			r.mu.Unlock()
			done <- struct{}{}
		}()
	}
	for id := range r.answers {
		if forget && !listed[id] && !r.running[id] {
			delete(r.answers, id)
		}
	}
	r.mu.Unlock()

wait:
	for range started {
		select {
		case <-done:
		case <-ctx.Done():
			break wait
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[int32]answer[T], len(brokers))
	for _, b := range brokers {
		a, ok := r.answers[b.ID()]
		if !ok {
			a.none = true
		}
		out[b.ID()] = a
	}
	return out
}

// busy is the error of a broker that did not answer within the round
// started at start; what it said last is served, if anything.
func (a answer[T]) busy(stage string, broker int32, start time.Time) error {
	if a.none {
		return &StageError{Stage: StageTimeout, Broker: broker, Err: fmt.Errorf("%s: no answer yet", stage)}
	}
	return &StageError{Stage: StageTimeout, Broker: broker,
		Err: fmt.Errorf("%s: no answer within the poll; serving its answer from %s before", stage, start.Sub(a.at).Round(time.Millisecond))}
}
