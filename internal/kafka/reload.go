package kafka

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
)

// Credential files (TLS CA, client certificate and key, SASL password,
// OAuth client secret) are re-read when they change, without a restart:
//
//   - Each use reads the files first: every TLS handshake (client
//     certificate, CA), every SCRAM exchange (password) and every token
//     request (client secret). Reading a few kilobytes per new connection
//     costs nothing next to the connection, and there is no goroutine to
//     stop. Contents are compared, not modification times, so a rewrite
//     within the file system's timestamp granularity is seen, and a
//     Kubernetes secret volume's symlink swap is just another content.
//   - A changed content is parsed, and counted and logged as a reload.
//   - A content that does not parse (a key that does not match the
//     certificate, half-written PEM, an empty password) keeps the last
//     good value, is counted and is logged once, until the files change
//     again.
//   - New connections use the new value; open connections stay as they
//     were authenticated (Kafka does not re-check them unless the broker
//     sets connections.max.reauth.ms, which sarama honours).
//
// PLAIN's password is read by sarama from its static configuration: the
// poller reads the file before each poll and, when it changed, replaces
// that loop's client with one made with the new password (Poller.client).

// Credential file names in the metrics' file label: the variables naming
// them.
const (
	fileTLSCA             = "KRE_TLS_CA_FILE"
	fileTLSCert           = "KRE_TLS_CERT_FILE" // with KRE_TLS_KEY_FILE
	fileSASLPassword      = "KRE_SASL_PASSWORD_FILE"
	fileOAuthClientSecret = "KRE_SASL_OAUTH_CLIENT_SECRET_FILE"
)

var credentialFiles = []string{fileTLSCA, fileTLSCert, fileSASLPassword, fileOAuthClientSecret}

// AuthMetrics are the instruments of credential reloads and of the OAuth
// token endpoint. They are process-wide, as the credentials are: one set,
// whatever the number of sarama configurations built.
type AuthMetrics struct {
	reloads      *prometheus.CounterVec
	reloadErrors *prometheus.CounterVec
	tokens       prometheus.Counter
	tokenErrors  *prometheus.CounterVec
	tokenExpiry  prometheus.Gauge
}

// OAuth token request failures, by reason.
const (
	tokenRejected    = "rejected"    // the endpoint answered with an error (wrong secret, unknown client, bad scope)
	tokenUnreachable = "unreachable" // no answer: connection refused, timeout, TLS failure
	tokenInvalid     = "invalid"     // an answer without a usable token
)

var authMetrics = newAuthMetrics()

func newAuthMetrics() *AuthMetrics {
	m := &AuthMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SelfPrefix + "credential_reloads_total", Help: "Credential files (by the variable naming them) read again after they changed, and taken into use for new connections.",
		}, []string{"file"}),
		reloadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SelfPrefix + "credential_reload_errors_total", Help: "Changed credential files that could not be read or parsed; the last good value stays in use.",
		}, []string{"file"}),
		tokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: SelfPrefix + "oauth_token_requests_total", Help: "Access tokens obtained from the OAuth token endpoint (SASL OAUTHBEARER).",
		}),
		tokenErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SelfPrefix + "oauth_token_errors_total", Help: "Failed OAuth token requests, by reason: rejected (the endpoint refused, e.g. a wrong client secret), unreachable, invalid (no usable token in the answer).",
		}, []string{"reason"}),
		tokenExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: SelfPrefix + "oauth_token_expiry_timestamp_seconds", Help: "Unix time at which the current OAuth access token expires; 0 before the first token or when it has no expiry.",
		}),
	}
	for _, f := range credentialFiles {
		m.reloads.WithLabelValues(f)
		m.reloadErrors.WithLabelValues(f)
	}
	for _, r := range []string{tokenRejected, tokenUnreachable, tokenInvalid} {
		m.tokenErrors.WithLabelValues(r)
	}
	return m
}

// Auth returns the process-wide credential and OAuth instruments, to be
// registered beside the poller's Metrics.
func Auth() *AuthMetrics { return authMetrics }

// Describe implements prometheus.Collector.
func (m *AuthMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.reloads.Describe(ch)
	m.reloadErrors.Describe(ch)
	m.tokens.Describe(ch)
	m.tokenErrors.Describe(ch)
	m.tokenExpiry.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *AuthMetrics) Collect(ch chan<- prometheus.Metric) {
	m.reloads.Collect(ch)
	m.reloadErrors.Collect(ch)
	m.tokens.Collect(ch)
	m.tokenErrors.Collect(ch)
	m.tokenExpiry.Collect(ch)
}

// authLogger is where credential and token events are logged. SaramaConfig
// is called before the daemon's logger exists, so it makes its own from
// the configuration (same level, format and stream, stderr); tests may
// replace it with SetAuthLogger.
var (
	authLogMu sync.Mutex
	authLog   *zerolog.Logger
)

// SetAuthLogger sets the logger of credential reloads and token requests
// for configurations built afterwards.
func SetAuthLogger(l zerolog.Logger) {
	authLogMu.Lock()
	defer authLogMu.Unlock()
	authLog = &l
}

func authLogger(c *config.Config) zerolog.Logger {
	authLogMu.Lock()
	defer authLogMu.Unlock()
	if authLog != nil {
		return *authLog
	}
	return c.NewLogger(os.Stderr).With().Str("component", "auth").Logger()
}

// watched is a value parsed from one or more files, read again at each
// use; see the comment at the top of this file.
type watched[T any] struct {
	name  string // the file label and the log's file field
	paths []string
	parse func(contents [][]byte) (T, error)
	log   zerolog.Logger
	m     *AuthMetrics

	mu      sync.Mutex
	version [sha256.Size]byte // of the last attempt, good or not
	val     T                 // the last good value
}

// newWatched reads and parses the files once; an error here is a
// configuration error (there is no last good value to keep).
func newWatched[T any](name string, paths []string, parse func([][]byte) (T, error), log zerolog.Logger, m *AuthMetrics) (*watched[T], error) {
	contents, err := readAll(paths)
	if err != nil {
		return nil, err
	}
	v, err := parse(contents)
	if err != nil {
		return nil, err
	}
	return &watched[T]{name: name, paths: paths, parse: parse, log: log, m: m, version: versionOf(contents, nil), val: v}, nil
}

func readAll(paths []string) ([][]byte, error) {
	out := make([][]byte, len(paths))
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// versionOf digests what reading the files gave: their contents, or the
// error.
func versionOf(contents [][]byte, err error) [sha256.Size]byte {
	h := sha256.New()
	if err != nil {
		h.Write([]byte("error\x00" + err.Error()))
	}
	for _, c := range contents {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(c)))
		h.Write(n[:])
		h.Write(c)
	}
	var v [sha256.Size]byte
	h.Sum(v[:0])
	return v
}

// Get returns the current value, reading and parsing the files again if
// their content changed since the last attempt. The files are read at
// every call (a few kilobytes per new connection): comparing contents
// rather than modification times catches a rewrite within the file
// system's timestamp granularity, and a touch is no reload.
func (w *watched[T]) Get() T {
	w.mu.Lock()
	defer w.mu.Unlock()
	contents, err := readAll(w.paths)
	version := versionOf(contents, err)
	if version == w.version {
		return w.val
	}
	w.version = version
	var v T
	if err == nil {
		v, err = w.parse(contents)
	}
	if err != nil {
		// Logged once: the next attempt is at the next change.
		w.m.reloadErrors.WithLabelValues(w.name).Inc()
		w.log.Error().Str("file", w.name).Err(err).Msg("credential file changed but cannot be used; keeping the last good value")
		return w.val
	}
	w.val = v
	w.m.reloads.WithLabelValues(w.name).Inc()
	w.log.Info().Str("file", w.name).Msg("credential file changed; new connections use the new value")
	return v
}

// newSecretFile watches a password or secret file.
func newSecretFile(name, path string, log zerolog.Logger) (*watched[string], error) {
	return newWatched(name, []string{path}, func(c [][]byte) (string, error) {
		s := string(bytes.TrimRight(c[0], "\r\n"))
		if s == "" {
			return "", errors.New("the file is empty")
		}
		return s, nil
	}, log, authMetrics)
}

// reloadingTLS makes tc take its client certificate and CA from files
// read again when they change.
func reloadingTLS(c *config.Config, tc *tls.Config, log zerolog.Logger) error {
	if c.TLSCertFile != "" {
		w, err := newWatched(fileTLSCert, []string{c.TLSCertFile, c.TLSKeyFile}, func(b [][]byte) (*tls.Certificate, error) {
			cert, err := tls.X509KeyPair(b[0], b[1])
			if err != nil {
				return nil, err
			}
			return &cert, nil
		}, log, authMetrics)
		if err != nil {
			return &config.Error{Var: "TLS_CERT_FILE", Msg: err.Error()}
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return w.Get(), nil }
	}
	if c.TLSCAFile != "" {
		w, err := newWatched(fileTLSCA, []string{c.TLSCAFile}, func(b [][]byte) (*x509.CertPool, error) {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b[0]) {
				return nil, errors.New("no PEM certificate found")
			}
			return pool, nil
		}, log, authMetrics)
		if err != nil {
			return &config.Error{Var: "TLS_CA_FILE", Msg: err.Error()}
		}
		tc.RootCAs = w.Get()
		if !c.TLSInsecureSkipVerify {
			// The standard verification with RootCAs fixed at start is
			// replaced by the same verification against the current CA
			// file: Go calls VerifyConnection whether or not it verified.
			tc.InsecureSkipVerify = true //nolint:gosec // verified in VerifyConnection
			tc.VerifyConnection = func(cs tls.ConnectionState) error { return verifyChain(cs, w.Get()) }
		}
	}
	return nil
}

// verifyChain is crypto/tls's verification of a server certificate
// against roots.
func verifyChain(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: the broker sent no certificate")
	}
	opts := x509.VerifyOptions{Roots: roots, DNSName: cs.ServerName, Intermediates: x509.NewCertPool(), CurrentTime: time.Now()}
	for _, ic := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(ic)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("tls: broker certificate: %w", err)
	}
	return nil
}

// plugCredentials makes sc take its credentials from where they are kept
// now rather than at start: TLS files, the SCRAM password file and, for
// OAUTHBEARER, the token endpoint (with its client secret file).
func plugCredentials(c *config.Config, sc *sarama.Config) error {
	log := authLogger(c)
	if c.TLSEnabled && sc.Net.TLS.Config != nil {
		if err := reloadingTLS(c, sc.Net.TLS.Config, log); err != nil {
			return err
		}
	}
	switch c.SASLMechanism {
	case sarama.SASLTypeOAuth:
		p, err := newOAuthProvider(c, log)
		if err != nil {
			return err
		}
		sc.Net.SASL.TokenProvider = p
	case sarama.SASLTypeSCRAMSHA256, sarama.SASLTypeSCRAMSHA512:
		if c.SASLPasswordFile == "" || sc.Net.SASL.SCRAMClientGeneratorFunc == nil {
			return nil
		}
		w, err := newSecretFile(fileSASLPassword, c.SASLPasswordFile, log)
		if err != nil {
			return &config.Error{Var: "SASL_PASSWORD_FILE", Msg: err.Error()}
		}
		gen := sc.Net.SASL.SCRAMClientGeneratorFunc
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
			return &reloadingSCRAM{SCRAMClient: gen(), password: w.Get}
		}
	}
	return nil
}

// reloadingSCRAM begins each SCRAM exchange with the password file's
// current content instead of the password sarama was configured with.
type reloadingSCRAM struct {
	sarama.SCRAMClient
	password func() string
}

func (s *reloadingSCRAM) Begin(user, _, authzID string) error {
	return s.SCRAMClient.Begin(user, s.password(), authzID)
}
