package realkafka

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Event names shared by every member kind; they are VerifiableConsumer's.
const (
	EvStartup   = "startup_complete"
	EvAssigned  = "partitions_assigned"
	EvRevoked   = "partitions_revoked"
	EvCommitted = "offsets_committed"
	EvConsumed  = "records_consumed"
	EvShutdown  = "shutdown_complete"
)

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// Event is one thing a member reported about itself: its own view of the
// group, the clients' ground truth.
type Event struct {
	Time       time.Time
	Name       string
	Partitions []TopicPartition
	// Generation is the group generation the client reported with the
	// event, -1 when the client does not tell (Java, kcat).
	Generation int32
	Success    bool // offsets_committed
}

// Member is one running consumer-group member of any client kind.
type Member struct {
	*Proc
	Kind  string
	Group string

	mu     sync.Mutex
	events []Event
	notify chan struct{}
}

func newMember(kind, group string) *Member {
	return &Member{Kind: kind, Group: group, notify: make(chan struct{}, 1)}
}

func (m *Member) add(e Event) {
	m.mu.Lock()
	m.events = append(m.events, e)
	m.mu.Unlock()
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

// Events is a copy of what the member reported so far.
func (m *Member) Events() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Event(nil), m.events...)
}

// Count is the number of events named name.
func (m *Member) Count(name string) int {
	n := 0
	for _, e := range m.Events() {
		if e.Name == name {
			n++
		}
	}
	return n
}

// WaitFor waits until cond holds for the events, the process exits, or
// timeout passes.
func (m *Member) WaitFor(timeout time.Duration, what string, cond func([]Event) bool) error {
	deadline := time.After(timeout)
	for {
		if cond(m.Events()) {
			return nil
		}
		select {
		case <-m.notify:
		case <-time.After(200 * time.Millisecond):
		case <-m.Done():
			if cond(m.Events()) {
				return nil
			}
			return fmt.Errorf("%s %s exited before %s:\n%s", m.Kind, m.Name, what, m.Tail())
		case <-deadline:
			return fmt.Errorf("%s %s: no %s within %s:\n%s", m.Kind, m.Name, what, timeout, m.Tail())
		}
	}
}

// Assignment is the member's current assignment by its own events: eager
// clients revoke everything and get a new set, cooperative ones revoke and
// add incrementally; both are replayed the same way.
func (m *Member) Assignment() []TopicPartition {
	owned := map[TopicPartition]bool{}
	for _, e := range m.Events() {
		switch e.Name {
		case EvAssigned:
			for _, tp := range e.Partitions {
				owned[tp] = true
			}
		case EvRevoked:
			for _, tp := range e.Partitions {
				delete(owned, tp)
			}
		}
	}
	out := make([]TopicPartition, 0, len(owned))
	for tp := range owned {
		out = append(out, tp)
	}
	SortPartitions(out)
	return out
}

// SortPartitions orders by topic, then partition.
func SortPartitions(tps []TopicPartition) {
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
}

// jsonEvent is the JSON line every member kind prints: VerifiableConsumer's
// format, plus "generation" from the Go members.
type jsonEvent struct {
	Timestamp  int64            `json:"timestamp"`
	Name       string           `json:"name"`
	Partitions []TopicPartition `json:"partitions"`
	Offsets    []TopicPartition `json:"offsets"`
	Success    *bool            `json:"success"`
	Generation *int32           `json:"generation"`
}

// parseJSONEvent turns a JSON event line into an Event; other lines (log
// output) report false.
func parseJSONEvent(line string) (Event, bool) {
	if !strings.HasPrefix(line, "{") {
		return Event{}, false
	}
	var j jsonEvent
	if err := json.Unmarshal([]byte(line), &j); err != nil || j.Name == "" {
		return Event{}, false
	}
	e := Event{Time: time.UnixMilli(j.Timestamp), Name: j.Name, Partitions: j.Partitions, Generation: -1}
	if j.Name == EvCommitted {
		e.Partitions = j.Offsets
	}
	if j.Success != nil {
		e.Success = *j.Success
	}
	if j.Generation != nil {
		e.Generation = *j.Generation
	}
	return e, true
}

func (m *Member) onJSONLine(line string) {
	if e, ok := parseJSONEvent(line); ok && e.Name != EvConsumed {
		m.add(e)
	}
}
