package demo

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

var errSevered = errors.New("demo: member connections severed")

// severableDialer lets a member die without a goodbye: once severed it
// closes every connection it handed out and refuses new ones, so whatever
// the client tries on Close (LeaveGroup, a final heartbeat) never reaches
// the broker.
type severableDialer struct {
	dialer net.Dialer

	mu      sync.Mutex
	severed bool
	conns   map[*trackedConn]struct{}
}

func newSeverableDialer() *severableDialer {
	return &severableDialer{
		dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
		conns:  make(map[*trackedConn]struct{}),
	}
}

func (d *severableDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.isSevered() {
		return nil, errSevered
	}
	c, err := d.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, owner: d}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.severed {
		_ = c.Close()
		return nil, errSevered
	}
	d.conns[tc] = struct{}{}
	return tc, nil
}

// Dial satisfies sarama's proxy dialer interface.
func (d *severableDialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

func (d *severableDialer) sever() {
	d.mu.Lock()
	d.severed = true
	conns := d.conns
	d.conns = make(map[*trackedConn]struct{})
	d.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
}

func (d *severableDialer) isSevered() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.severed
}

func (d *severableDialer) forget(c *trackedConn) {
	d.mu.Lock()
	delete(d.conns, c)
	d.mu.Unlock()
}

type trackedConn struct {
	net.Conn
	owner *severableDialer
}

func (c *trackedConn) Close() error {
	c.owner.forget(c)
	return c.Conn.Close()
}
