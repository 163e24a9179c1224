package testkit

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// client bounds every request, so a hung server fails a test instead of
// stalling it.
var client = http.Client{Timeout: 10 * time.Second}

// Get fetches url and returns the status code and body, whatever the code.
// err is a failed request or a body that could not be read.
func Get(url string) (code int, body []byte, err error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// HTTPGet returns the body of a 200 answer from url. Any other answer is an
// error that quotes the start of the body.
func HTTPGet(url string) ([]byte, error) {
	code, body, err := Get(url)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return body, fmt.Errorf("GET %s: %d %s: %.300s", url, code, http.StatusText(code), body)
	}
	return body, nil
}

// FreePorts returns n distinct loopback TCP ports that nothing listened on
// a moment ago. All n are held at once while they are picked, so they
// differ; another program may still take one before the test does.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// FreeAddr returns a loopback host:port nothing listened on a moment ago,
// for a server the test starts (KRE_LISTEN_ADDRESS, --web.listen-address).
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePorts(t, 1)[0]))
}
