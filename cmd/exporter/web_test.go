package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
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
	ca := testkit.NewCA(t, "test CA")
	server := ca.Server(t, "exporter")
	return webPKI{
		caFile:     write(t, dir, "ca.pem", ca.PEM),
		serverCert: write(t, dir, "server.pem", server.CertPEM),
		serverKey:  write(t, dir, "server-key.pem", server.KeyPEM),
		pool:       ca.Pool(),
		client:     ca.Client(t, "prometheus").TLS,
		untrusted:  testkit.NewCA(t, "other CA").Client(t, "prometheus").TLS,
	}
}

// startServe runs the daemon's serve with the environment already set,
// against brokers nobody listens on (the HTTP side does not need Kafka).
func startServe(t *testing.T) string {
	t.Helper()
	addr := testkit.FreeAddr(t)
	t.Setenv("KRE_LISTEN_ADDRESS", addr)
	t.Setenv("KRE_BROKERS", testkit.FreeAddr(t))
	t.Setenv("KRE_REQUEST_TIMEOUT", "1s")
	serveFromEnv(t)
	return addr
}

// serveFromEnv runs the daemon's serve with the configuration the
// environment gives, until the test ends; serve must then return cleanly.
func serveFromEnv(t *testing.T) {
	t.Helper()
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
		code, _, err := testkit.Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/healthz %d", code)
		}
		return nil
	})
	if code, _, _ := testkit.Get("http://" + addr + "/api/v1/groups"); code != http.StatusNotFound {
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
