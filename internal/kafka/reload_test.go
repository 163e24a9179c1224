package kafka

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// tlsPeer is a TLS listener on loopback that reports, for each handshake,
// the client certificate's common name or the handshake's error.
type tlsPeer struct {
	addr  string
	peers chan string
}

func newTLSPeer(t *testing.T, cert tls.Certificate, clientCAs *x509.CertPool) *tlsPeer {
	t.Helper()
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAs != nil {
		tc.ClientAuth, tc.ClientCAs = tls.RequireAndVerifyClientCert, clientCAs
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	p := &tlsPeer{addr: ln.Addr().String(), peers: make(chan string, 16)}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				tconn := conn.(*tls.Conn)
				if err := tconn.Handshake(); err != nil {
					p.peers <- "error: " + err.Error()
					return
				}
				cn := "no certificate"
				if cs := tconn.ConnectionState(); len(cs.PeerCertificates) > 0 {
					cn = cs.PeerCertificates[0].Subject.CommonName
				}
				p.peers <- cn
			}()
		}
	}()
	return p
}

// connect runs a handshake as sarama does (its broker connections clone the
// configuration and name the broker host) and returns the client's error,
// and what the server saw.
func (p *tlsPeer) connect(t *testing.T, tc *tls.Config) (error, string) {
	t.Helper()
	c := tc.Clone()
	c.ServerName = "127.0.0.1"
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", p.addr, c)
	if err == nil {
		// TLS 1.3 finishes the client's part first; reading waits for the
		// server's verdict (it closes after the handshake).
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Read(make([]byte, 1))
		conn.Close()
	}
	select {
	case seen := <-p.peers:
		return err, seen
	case <-time.After(5 * time.Second):
		return err, "server saw nothing"
	}
}

// replace writes a file the way secret mounts and certificate managers
// do: a new file renamed over the old one.
func replace(t *testing.T, path string, content []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path string, content []byte) {
	t.Helper()
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
}

func loadConfig(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	t.Setenv("KRE_REQUEST_TIMEOUT", "5s")
	for k, v := range env {
		t.Setenv("KRE_"+k, v)
	}
	c, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func captureAuthLog(t *testing.T) *testkit.SyncBuffer {
	t.Helper()
	var buf testkit.SyncBuffer
	SetAuthLogger(zerolog.New(&buf))
	t.Cleanup(func() { SetAuthLogger(zerolog.Nop()) })
	return &buf
}

func counter(t *testing.T, name, file string) float64 {
	t.Helper()
	switch name {
	case "reloads":
		return testutil.ToFloat64(authMetrics.reloads.WithLabelValues(file))
	case "errors":
		return testutil.ToFloat64(authMetrics.reloadErrors.WithLabelValues(file))
	}
	t.Fatalf("no counter %s", name)
	return 0
}

// The client certificate and key are read again when they change: the
// next handshake presents the new certificate; a broken pair keeps the
// last good one, counted and logged once.
func TestReloadClientCertificate(t *testing.T) {
	logs := captureAuthLog(t)
	ca := testkit.NewCA(t, "reload")
	peer := newTLSPeer(t, ca.Server(t, "broker").TLS, ca.Pool())
	dir := t.TempDir()
	caFile, certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	write(t, caFile, ca.PEM)
	one := ca.Client(t, "client-one")
	write(t, certFile, one.CertPEM)
	write(t, keyFile, one.KeyPEM)
	sc, err := SaramaConfig(loadConfig(t, map[string]string{"TLS_ENABLED": "true", "TLS_CA_FILE": caFile, "TLS_CERT_FILE": certFile, "TLS_KEY_FILE": keyFile}))
	if err != nil {
		t.Fatal(err)
	}
	tc := sc.Net.TLS.Config
	reloads, errs := counter(t, "reloads", fileTLSCert), counter(t, "errors", fileTLSCert)

	if err, seen := peer.connect(t, tc); err != nil || seen != "client-one" {
		t.Fatalf("first handshake: %v, server saw %q", err, seen)
	}
	two := ca.Client(t, "client-two")
	replace(t, certFile, two.CertPEM)
	replace(t, keyFile, two.KeyPEM)
	if err, seen := peer.connect(t, tc); err != nil || seen != "client-two" {
		t.Fatalf("handshake after the rotation: %v, server saw %q", err, seen)
	}
	if got := counter(t, "reloads", fileTLSCert) - reloads; got != 1 {
		t.Fatalf("reloads counted %v, want 1", got)
	}

	// A certificate without its key (a rotation half done): the last good
	// pair stays in use; the error is counted and logged once.
	three := ca.Client(t, "client-three")
	write(t, certFile, three.CertPEM)
	for range 2 {
		if err, seen := peer.connect(t, tc); err != nil || seen != "client-two" {
			t.Fatalf("handshake with a mismatched pair on disk: %v, server saw %q", err, seen)
		}
	}
	if got := counter(t, "errors", fileTLSCert) - errs; got != 1 {
		t.Fatalf("reload errors counted %v, want 1", got)
	}
	if n := strings.Count(logs.String(), "cannot be used; keeping the last good value"); n != 1 {
		t.Fatalf("reload error logged %d times, want once:\n%s", n, logs)
	}
	// The key arrives: the new pair is used.
	write(t, keyFile, three.KeyPEM)
	if err, seen := peer.connect(t, tc); err != nil || seen != "client-three" {
		t.Fatalf("handshake after the key arrived: %v, server saw %q", err, seen)
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Fatalf("key material logged: %s", logs)
	}
}

// The CA file is read again when it changes: a broker whose certificate
// is signed by a new CA is trusted once the file holds it, without a
// restart, and refused before.
func TestReloadCA(t *testing.T) {
	captureAuthLog(t)
	oldCA, newCA := testkit.NewCA(t, "old"), testkit.NewCA(t, "new")
	peer := newTLSPeer(t, newCA.Server(t, "broker").TLS, nil)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	write(t, caFile, oldCA.PEM)
	sc, err := SaramaConfig(loadConfig(t, map[string]string{"TLS_ENABLED": "true", "TLS_CA_FILE": caFile}))
	if err != nil {
		t.Fatal(err)
	}
	tc := sc.Net.TLS.Config
	if err, _ := peer.connect(t, tc); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("broker signed by a CA not in the file accepted: %v", err)
	}
	// A file without a certificate keeps the old CA.
	write(t, caFile, []byte("not PEM\n"))
	if err, _ := peer.connect(t, tc); err == nil {
		t.Fatal("broker accepted while the CA file is broken")
	}
	// Both CAs, as during a CA rotation.
	write(t, caFile, append(append([]byte{}, oldCA.PEM...), newCA.PEM...))
	if err, _ := peer.connect(t, tc); err != nil {
		t.Fatalf("broker refused after its CA was added to the file: %v", err)
	}
	// The name is still checked.
	c := tc.Clone()
	c.ServerName = "not-the-broker"
	conn, err := tls.Dial("tcp", peer.addr, c)
	if err == nil {
		conn.Close()
		t.Fatal("certificate accepted for a name it does not hold")
	}
	<-peer.peers
}

// TLS_INSECURE_SKIP_VERIFY still skips verification with a CA file.
func TestReloadCAInsecureSkipVerify(t *testing.T) {
	captureAuthLog(t)
	peer := newTLSPeer(t, testkit.NewCA(t, "other").Server(t, "broker").TLS, nil)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	write(t, caFile, testkit.NewCA(t, "mine").PEM)
	sc, err := SaramaConfig(loadConfig(t, map[string]string{"TLS_ENABLED": "true", "TLS_CA_FILE": caFile, "TLS_INSECURE_SKIP_VERIFY": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	if err, _ := peer.connect(t, sc.Net.TLS.Config); err != nil {
		t.Fatalf("insecure skip verify verified: %v", err)
	}
}

// The SCRAM password file is read again when it changes: after the
// credential changes on the broker, new connections fail with the old
// password and succeed once the file holds the new one.
func TestReloadSCRAMPassword(t *testing.T) {
	logs := captureAuthLog(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "admin", "pw-one"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	pwFile := filepath.Join(t.TempDir(), "pw")
	write(t, pwFile, []byte("pw-one\n"))
	cfg := loadConfig(t, map[string]string{"BROKERS": strings.Join(kc.ListenAddrs(), ","), "SASL_MECHANISM": "SCRAM-SHA-256", "SASL_USERNAME": "admin", "SASL_PASSWORD_FILE": pwFile})
	sc, err := SaramaConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := New(cfg, sc, zerolog.Nop())
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.PollGroups(ctx); err != nil {
		t.Fatalf("poll with the first password: %v", err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.SASL(scram.Auth{User: "admin", Pass: "pw-one"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	res, err := kadm.NewClient(cl).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "admin", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "pw-two"}})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("changing the SCRAM credential: %v", err)
	}

	// New connections (the poller's clients closed, as after a broker
	// restart) authenticate with the file's content.
	_ = p.Close()
	if _, err := p.PollGroups(ctx); err == nil {
		t.Fatal("poll succeeded with the old password after the credential changed")
	}
	reloads := counter(t, "reloads", fileSASLPassword)
	replace(t, pwFile, []byte("pw-two\n"))
	if _, err := p.PollGroups(ctx); err != nil {
		t.Fatalf("poll after the password file changed: %v", err)
	}
	if got := counter(t, "reloads", fileSASLPassword) - reloads; got != 1 {
		t.Fatalf("password reloads counted %v, want 1", got)
	}
	// An empty file (being rewritten) keeps the last good password.
	errs := counter(t, "errors", fileSASLPassword)
	write(t, pwFile, nil)
	_ = p.Close()
	if _, err := p.PollGroups(ctx); err != nil {
		t.Fatalf("poll with the password file emptied: %v", err)
	}
	if got := counter(t, "errors", fileSASLPassword) - errs; got != 1 {
		t.Fatalf("password reload errors counted %v, want 1", got)
	}
	if strings.Contains(logs.String(), "pw-") {
		t.Fatalf("password logged: %s", logs)
	}
}

// The reload helpers must not mistake a read error for a value, nor log
// an unchanged error twice.
func TestWatchedFileMissing(t *testing.T) {
	var logs bytes.Buffer
	path := filepath.Join(t.TempDir(), "secret")
	write(t, path, []byte("one"))
	w, err := newSecretFile(fileSASLPassword, path, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := w.Get(); got != "one" {
			t.Fatalf("value with the file gone: %q", got)
		}
	}
	if n := strings.Count(logs.String(), "no such file"); n != 1 {
		t.Fatalf("missing file logged %d times, want once:\n%s", n, logs.String())
	}
	write(t, path, []byte("two\n"))
	if got := w.Get(); got != "two" {
		t.Fatalf("value after the file came back: %q", got)
	}
	if _, err := newSecretFile(fileSASLPassword, filepath.Join(t.TempDir(), "none"), zerolog.Nop()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file at start: %v", err)
	}
}

// sarama takes the PLAIN password from its static configuration: the
// poller replaces a loop's client when the password file changes, without
// a restart (and without being closed first).
func TestReloadPLAINPassword(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("PLAIN", "admin", "pw-two"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	pwFile := filepath.Join(t.TempDir(), "pw")
	write(t, pwFile, []byte("pw-one\n"))
	cfg := loadConfig(t, map[string]string{"BROKERS": strings.Join(kc.ListenAddrs(), ","), "SASL_MECHANISM": "PLAIN", "SASL_USERNAME": "admin",
		"SASL_PASSWORD_FILE": pwFile, "REQUEST_TIMEOUT": "2s"})
	sc, err := SaramaConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := New(cfg, sc, zerolog.Nop())
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.PollGroups(ctx); err == nil {
		t.Fatal("poll succeeded with a password the broker does not have")
	}
	replace(t, pwFile, []byte("pw-two\n"))
	if _, err := p.PollGroups(ctx); err != nil {
		t.Fatalf("poll after the password file changed: %v", err)
	}
	// An open client is replaced too when the file changes again.
	replace(t, pwFile, []byte("pw-three\n"))
	if _, err := p.PollGroups(ctx); err == nil {
		t.Fatal("poll succeeded with the old client after the password file changed to a wrong password")
	}
	replace(t, pwFile, []byte("pw-two\n"))
	if _, err := p.PollGroups(ctx); err != nil {
		t.Fatalf("poll after the password file changed back: %v", err)
	}
}
