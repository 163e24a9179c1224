package kafka_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
)

// selfSignedCA returns a server certificate for 127.0.0.1 and the PEM of
// the CA that signed it.
func selfSignedCA(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kafkatest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestTLS(t *testing.T) {
	cert, caPEM := selfSignedCA(t)
	c := kafkatest.NewCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	verified := kafkatest.NewExporter(t, kafkatest.Config(t, c.ListenAddrs(), map[string]string{"TLS_ENABLED": "true", "TLS_CA_FILE": caFile}))
	verified.Poll(t)
	if got := verified.Store.Current().Offsets.Brokers; got != 3 {
		t.Fatalf("brokers over TLS: %d", got)
	}

	// Without the CA the broker's certificate must be refused.
	_, otherPEM := selfSignedCA(t)
	otherFile := filepath.Join(dir, "other.pem")
	if err := os.WriteFile(otherFile, otherPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	untrusted := kafkatest.NewExporter(t, kafkatest.Config(t, c.ListenAddrs(), map[string]string{"TLS_ENABLED": "true", "TLS_CA_FILE": otherFile}))
	if err := untrusted.TryPoll(); err == nil {
		t.Fatal("poll succeeded against a broker whose certificate is signed by an untrusted CA")
	}
	if n := untrusted.PollErrors(t, kafka.StageConnect); n == 0 {
		t.Fatal("certificate failure not counted as a connect error")
	}
}
