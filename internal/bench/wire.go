package bench

import (
	"encoding/binary"
	"maps"
	"net"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Traffic is what one client sent to and received from the brokers for one
// request key.
type Traffic struct {
	Requests  int64 // requests read by a broker
	ReqBytes  int64 // request frames, size prefix included
	RespBytes int64 // response frames, size prefix included
}

func (t Traffic) add(o Traffic) Traffic {
	return Traffic{t.Requests + o.Requests, t.ReqBytes + o.ReqBytes, t.RespBytes + o.RespBytes}
}

func (t Traffic) sub(o Traffic) Traffic {
	return Traffic{t.Requests - o.Requests, t.ReqBytes - o.ReqBytes, t.RespBytes - o.RespBytes}
}

// WireKey names a client and a request key.
type WireKey struct {
	Client string // the client.id of the request header
	Key    int16  // kmsg request key
}

// WireCounter counts Kafka traffic at the brokers' listeners: it wraps
// every accepted connection (kfake.ListenFn) and follows the protocol's
// framing in both directions, attributing each response to its request by
// correlation ID. It sees exactly the bytes the broker reads and writes.
type WireCounter struct {
	mu  sync.Mutex
	sum map[WireKey]Traffic
}

// NewWireCounter returns an empty counter.
func NewWireCounter() *WireCounter { return &WireCounter{sum: map[WireKey]Traffic{}} }

// Listen is a kfake.ListenFn: net.Listen whose connections are counted.
func (w *WireCounter) Listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return &countingListener{Listener: ln, w: w}, nil
}

// Snapshot returns the totals so far.
func (w *WireCounter) Snapshot() map[WireKey]Traffic {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.sum)
}

func (w *WireCounter) add(k WireKey, t Traffic) {
	w.mu.Lock()
	w.sum[k] = w.sum[k].add(t)
	w.mu.Unlock()
}

// DiffTraffic is after − before, by key.
func DiffTraffic(after, before map[WireKey]Traffic) map[WireKey]Traffic {
	out := map[WireKey]Traffic{}
	for k, a := range after {
		if d := a.sub(before[k]); d != (Traffic{}) {
			out[k] = d
		}
	}
	return out
}

// ByKey sums the traffic of the clients keep accepts, by request key.
func ByKey(t map[WireKey]Traffic, keep func(client string) bool) map[int16]Traffic {
	out := map[int16]Traffic{}
	for k, v := range t {
		if keep(k.Client) {
			out[k.Key] = out[k.Key].add(v)
		}
	}
	return out
}

type countingListener struct {
	net.Listener
	w *WireCounter
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: c, w: l.w, inflight: map[int32]WireKey{}}
	cc.in.onFrame = cc.request
	cc.out.onFrame = cc.response
	return cc, nil
}

// countingConn is one broker-side connection: reads are requests, writes
// are responses.
type countingConn struct {
	net.Conn
	w *WireCounter

	in, out framer

	mu       sync.Mutex
	inflight map[int32]WireKey // correlation ID → request
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.feed(p[:n])
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.feed(p[:n])
	return n, err
}

// request handles a complete request header: size is the whole frame
// including its 4-byte prefix, head its first bytes.
func (c *countingConn) request(size int64, head []byte) {
	k := WireKey{Client: "?", Key: -1}
	var corr int32
	if len(head) >= 12 {
		k.Key = int16(binary.BigEndian.Uint16(head[4:]))
		corr = int32(binary.BigEndian.Uint32(head[8:]))
	}
	if len(head) >= 14 {
		n := int(int16(binary.BigEndian.Uint16(head[12:])))
		switch {
		case n < 0:
			k.Client = ""
		case 14+n <= len(head):
			k.Client = string(head[14 : 14+n])
		}
	}
	c.mu.Lock()
	c.inflight[corr] = k
	c.mu.Unlock()
	c.w.add(k, Traffic{Requests: 1, ReqBytes: size})
}

func (c *countingConn) response(size int64, head []byte) {
	k := WireKey{Client: "?", Key: -1}
	if len(head) >= 8 {
		corr := int32(binary.BigEndian.Uint32(head[4:]))
		c.mu.Lock()
		if r, ok := c.inflight[corr]; ok {
			k = r
			delete(c.inflight, corr)
		}
		c.mu.Unlock()
	}
	c.w.add(k, Traffic{RespBytes: size})
}

// maxHead is how much of a frame the framer keeps: the request header up
// to a client ID of 256 bytes.
const maxHead = 14 + 256

// framer splits a byte stream into size-prefixed Kafka frames and reports
// each frame's total size and first bytes once the frame is complete.
type framer struct {
	head    []byte // the current frame's first bytes, size prefix included
	size    int64  // the current frame's total size; 0 until its prefix is read
	left    int64  // bytes of the current frame still to come
	onFrame func(size int64, head []byte)
}

func (f *framer) feed(p []byte) {
	for len(p) > 0 || (f.size > 0 && f.left == 0) {
		if f.size == 0 {
			need := 4 - len(f.head)
			n := min(need, len(p))
			f.head = append(f.head, p[:n]...)
			p = p[n:]
			if len(f.head) < 4 {
				return
			}
			body := int64(int32(binary.BigEndian.Uint32(f.head)))
			if body < 0 {
				body = 0
			}
			f.size = 4 + body
			f.left = body
		}
		n := int(min(f.left, int64(len(p))))
		if n == 0 && f.left > 0 {
			return
		}
		if keep := maxHead - len(f.head); keep > 0 {
			f.head = append(f.head, p[:min(keep, n)]...)
		}
		f.left -= int64(n)
		p = p[n:]
		if f.left == 0 {
			f.onFrame(f.size, f.head)
			f.head, f.size = f.head[:0], 0
		}
	}
}

// KeyName is the request key's protocol name.
func KeyName(k int16) string {
	if n := kmsg.NameForKey(k); n != "" {
		return n
	}
	return "unknown"
}

// ControlCounter counts the requests each broker handles through kfake's
// control hooks (Cluster.Control, which sees every request key). It sees
// decoded requests, not who sent them nor the responses: it cross-checks
// the wire counter's request counts.
type ControlCounter struct {
	mu  sync.Mutex
	sum map[int16]int64
}

// NewControlCounter returns an empty counter.
func NewControlCounter() *ControlCounter { return &ControlCounter{sum: map[int16]int64{}} }

// Observe is a kfake control function that counts and never handles.
func (c *ControlCounter) Observe(req kmsg.Request) (kmsg.Response, error, bool) { //nolint:revive // kfake's signature
	c.mu.Lock()
	c.sum[req.Key()]++
	c.mu.Unlock()
	return nil, nil, false
}

// Snapshot returns the counts so far.
func (c *ControlCounter) Snapshot() map[int16]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.sum)
}
