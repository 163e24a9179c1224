package kafka

import (
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// metadataRefresh runs a loop client's metadata refreshes so that a poll
// never waits on one longer than it chooses. sarama sends a refresh to a
// broker of its choosing and waits for the whole request timeout when
// that broker hangs (connected, answering nothing), then tries the next:
// in the poll's path that would delay every group, not only the hung
// broker's. A refresh still running when a poll stops waiting goes on in
// the background and the poll carries on with the metadata the client
// has; the next poll waits on that same refresh rather than starting
// another.
type metadataRefresh struct {
	mu      sync.Mutex
	running map[sarama.Client]chan error
}

// errMetadataLate says a refresh did not finish within the poll's wait.
type errMetadataLate struct{ wait time.Duration }

func (e errMetadataLate) Error() string {
	return fmt.Sprintf("metadata refresh not answered within %s; using the previous metadata meanwhile", e.wait)
}

// refresh refreshes c's metadata for topics (all when none), waiting at
// most wait; it returns errMetadataLate when the refresh is still running
// then. started reports whether a new request was started (one Metadata
// request, to count).
func (m *metadataRefresh) refresh(c sarama.Client, wait time.Duration, topics ...string) (started bool, err error) {
	m.mu.Lock()
	if m.running == nil {
		m.running = map[sarama.Client]chan error{}
	}
	done, running := m.running[c]
	if !running {
		// Buffered: the result waits for the next poll when this one
		// stopped waiting.
		done = make(chan error, 1)
		m.running[c] = done
		started = true
		go func() {
			err := c.RefreshMetadata(topics...)
			m.mu.Lock()
			delete(m.running, c)
			m.mu.Unlock()
			done <- err
		}()
	}
	m.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case err := <-done:
		return started, err
	case <-t.C:
		return started, errMetadataLate{wait}
	}
}
