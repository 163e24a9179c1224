package kafkatest

import (
	"encoding/binary"
	"fmt"
	"net"
	"sort"
	"sync"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// readOnlyKeys are the Kafka APIs the exporter may send: reads, and what
// sarama sends on connect. Anything else (Produce, OffsetCommit,
// JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ConsumerGroupHeartbeat,
// topic, ACL or config changes, ...) is a write.
var readOnlyKeys = map[int16]bool{
	1: true, 2: true, 3: true, 9: true, 10: true, 15: true, 16: true, // Fetch, ListOffsets, Metadata, OffsetFetch, FindCoordinator, DescribeGroups, ListGroups
	17: true, 18: true, 36: true, // SaslHandshake, ApiVersions, SaslAuthenticate
	32: true, 60: true, 69: true, // DescribeConfigs, DescribeCluster, ConsumerGroupDescribe
}

// requestLog records the API key of every request the exporter's client
// writes, from the bytes on its connections: what the exporter sent, not
// what the broker saw, so other clients of the same cluster do not count.
type requestLog struct {
	mu   sync.Mutex
	keys map[int16]int
}

// recordRequests makes sc's connections report their requests to a new
// log. It reads plain Kafka framing, so it is used only without TLS and
// SASL (whose first exchange, at handshake v0, is not framed as requests).
func recordRequests(sc *sarama.Config) *requestLog {
	l := &requestLog{keys: map[int16]int{}}
	d := &net.Dialer{Timeout: sc.Net.DialTimeout, KeepAlive: sc.Net.KeepAlive}
	sc.Net.Proxy.Enable = true
	sc.Net.Proxy.Dialer = dialerFunc(func(network, addr string) (net.Conn, error) {
		c, err := d.Dial(network, addr)
		if err != nil {
			return nil, err
		}
		return &recordingConn{Conn: c, log: l}, nil
	})
	return l
}

// checkReadOnly fails t for every request of a write API the exporter
// sent, and when the log saw no request at all (the recorder would prove
// nothing).
func (l *requestLog) checkReadOnly(t testing.TB) {
	t.Helper()
	writes, total := l.writes()
	for _, w := range writes {
		t.Errorf("read-only: the exporter sent %s", w)
	}
	if total == 0 && !t.Failed() {
		t.Errorf("read-only: no request of the exporter was recorded")
	}
}

// writes lists the write requests recorded ("N Name"), and counts all.
func (l *requestLog) writes() (out []string, total int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for key, n := range l.keys {
		total += n
		if !readOnlyKeys[key] {
			out = append(out, fmt.Sprintf("%d %s", n, kmsg.NameForKey(key)))
		}
	}
	sort.Strings(out)
	return out, total
}

type dialerFunc func(network, addr string) (net.Conn, error)

func (f dialerFunc) Dial(network, addr string) (net.Conn, error) { return f(network, addr) }

// recordingConn parses the request frames written to it: a 4-byte size,
// then the API key. head holds the start of a frame until its key is
// known; skip is what remains of the current frame.
type recordingConn struct {
	net.Conn
	log  *requestLog
	head []byte
	skip int64
}

func (c *recordingConn) Write(b []byte) (int, error) {
	for rest := b; len(rest) > 0; {
		if c.skip > 0 {
			n := min(int64(len(rest)), c.skip)
			c.skip -= n
			rest = rest[n:]
			continue
		}
		need := 6 - len(c.head)
		n := min(need, len(rest))
		c.head = append(c.head, rest[:n]...)
		rest = rest[n:]
		if len(c.head) < 6 {
			break
		}
		size := int64(int32(binary.BigEndian.Uint32(c.head)))
		key := int16(binary.BigEndian.Uint16(c.head[4:]))
		c.log.mu.Lock()
		c.log.keys[key]++
		c.log.mu.Unlock()
		c.skip, c.head = max(size-2, 0), c.head[:0]
	}
	return c.Conn.Write(b)
}
