package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// A metrics path that collides with another endpoint is a configuration
// error with one line and exit code 2, not a panic at start.
func TestTelemetryPathCollisionsExitTwo(t *testing.T) {
	for _, path := range []string{"/", "/healthz", "/readyz", "/api/v1/groups", "/api/v1/groups/", "/api/x", "metrics"} {
		t.Run(path, func(t *testing.T) {
			t.Setenv("KRE_TELEMETRY_PATH", path)
			var stdout, stderr bytes.Buffer
			if code := run(nil, &stdout, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, stderr.String())
			}
			if msg := strings.TrimSpace(stderr.String()); strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "KRE_TELEMETRY_PATH") {
				t.Fatalf("stderr %q: want one line naming KRE_TELEMETRY_PATH", msg)
			}
		})
	}
}

// An invalid web configuration file is refused at start, naming the file.
func TestInvalidWebConfigExitsTwo(t *testing.T) {
	f := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(f, []byte("tls_server_config:\n  cert_file: /nonexistent.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KRE_WEB_CONFIG_FILE", f)
	var stdout, stderr bytes.Buffer
	if code := run(nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "KRE_WEB_CONFIG_FILE") {
		t.Fatalf("exit %d, stderr %q; want 2 naming KRE_WEB_CONFIG_FILE", code, stderr.String())
	}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func keyPEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("EC PRIVATE KEY", der)
}

// issue signs a certificate for tmpl's use with parent (self-signed when
// parent is nil).
func issue(t *testing.T, serial int64, tmpl *x509.Certificate, parent *x509.Certificate, parentKey, key *ecdsa.PrivateKey) (*x509.Certificate, []byte) {
	tmpl.SerialNumber = big.NewInt(serial)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, pemOf("CERTIFICATE", der)
}

func write(t *testing.T, dir, name string, b []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type webPKI struct {
	caFile, serverCert, serverKey string
	pool                          *x509.CertPool
	client, untrusted             tls.Certificate
}

func newWebPKI(t *testing.T) webPKI {
	dir := t.TempDir()
	ca := &x509.Certificate{Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caKey := newKey(t)
	caCert, caPEM := issue(t, 1, ca, nil, nil, caKey)

	serverKey := newKey(t)
	_, serverPEM := issue(t, 2, &x509.Certificate{Subject: pkix.Name{CommonName: "exporter"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, caCert, caKey, serverKey)

	clientCert := func(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, serial int64) tls.Certificate {
		k := newKey(t)
		_, p := issue(t, serial, &x509.Certificate{Subject: pkix.Name{CommonName: "prometheus"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, parent, parentKey, k)
		c, err := tls.X509KeyPair(p, keyPEM(t, k))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	otherKey := newKey(t)
	other, _ := issue(t, 10, &x509.Certificate{Subject: pkix.Name{CommonName: "other CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, nil, nil, otherKey)

	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return webPKI{
		caFile:     write(t, dir, "ca.pem", caPEM),
		serverCert: write(t, dir, "server.pem", serverPEM),
		serverKey:  write(t, dir, "server-key.pem", keyPEM(t, serverKey)),
		pool:       pool,
		client:     clientCert(caCert, caKey, 3),
		untrusted:  clientCert(other, otherKey, 11),
	}
}

// startServe runs the daemon's serve with the environment already set,
// against brokers nobody listens on (the HTTP side does not need Kafka).
func startServe(t *testing.T) string {
	t.Helper()
	addr := freeLoopback(t)
	t.Setenv("KRE_LISTEN_ADDRESS", addr)
	t.Setenv("KRE_BROKERS", freeLoopback(t))
	t.Setenv("KRE_REQUEST_TIMEOUT", "1s")
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := kafka.SaramaConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, sc, zerolog.Nop()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return addr
}

func freeLoopback(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Real HTTPS clients against a web configuration with mutual TLS and basic
// auth: only a client with a certificate from the configured CA and the
// right password gets metrics. promtool accepts the same file.
func TestWebConfigTLSClientCertsAndBasicAuth(t *testing.T) {
	p := newWebPKI(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := write(t, t.TempDir(), "web.yml", fmt.Appendf(nil, `tls_server_config:
  cert_file: %s
  key_file: %s
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: %s
basic_auth_users:
  prometheus: %s
`, p.serverCert, p.serverKey, p.caFile, hash))
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (scripts/install-test-deps.sh installs it): %v", err)
	}
	if out, err := exec.Command(promtool, "check", "web-config", webCfg).CombinedOutput(); err != nil {
		t.Fatalf("promtool check web-config: %v\n%s", err, out)
	}
	t.Setenv("KRE_WEB_CONFIG_FILE", webCfg)
	addr := startServe(t)
	url := "https://" + addr + "/metrics"

	client := func(cert *tls.Certificate) *http.Client {
		tc := &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}
	get := func(c *http.Client, user, pass string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}

	good := client(&p.client)
	testkit.Eventually(t, 10*time.Second, 50*time.Millisecond, "HTTPS answering", func() error {
		code, body, err := get(good, "prometheus", "s3cret")
		if err != nil {
			return err
		}
		if code != http.StatusOK || !strings.Contains(body, "kafka_rebalance_exporter_up") {
			return fmt.Errorf("status %d", code)
		}
		return nil
	})
	if code, _, err := get(good, "prometheus", "wrong"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d, error %v; want 401", code, err)
	}
	if code, _, err := get(good, "", ""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("no credentials: status %d, error %v; want 401", code, err)
	}
	if _, _, err := get(client(&p.untrusted), "prometheus", "s3cret"); err == nil {
		t.Error("a client certificate from an untrusted CA was accepted")
	}
	if _, _, err := get(client(nil), "prometheus", "s3cret"); err == nil {
		t.Error("a client without a certificate was accepted")
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP served metrics while TLS is configured")
		}
	}
}

// The JSON API can be switched off; an idle keep-alive connection is
// closed after KRE_WEB_IDLE_TIMEOUT.
func TestAPIDisabledAndIdleConnectionsClosed(t *testing.T) {
	t.Setenv("KRE_API_ENABLED", "false")
	t.Setenv("KRE_WEB_IDLE_TIMEOUT", "500ms")
	addr := startServe(t)
	testkit.Eventually(t, 10*time.Second, 50*time.Millisecond, "HTTP answering", func() error {
		code, _ := get("http://" + addr + "/healthz")
		if code != http.StatusOK {
			return fmt.Errorf("/healthz %d", code)
		}
		return nil
	})
	if code, _ := get("http://" + addr + "/api/v1/groups"); code != http.StatusNotFound {
		t.Errorf("/api/v1/groups with the API disabled: %d, want 404", code)
	}

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	// Read the answer, then wait for the server to close the idle
	// connection: the read ends with EOF well before the 10 s deadline.
	_, err = io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("idle connection still open after %s", time.Since(start))
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("idle connection closed after %s, want about 500ms", took)
	}
}
