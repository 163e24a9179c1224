package realkafka

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/realkafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// oauthPrincipal is the sub of the tokens the test endpoint issues: the
// broker maps it to User:oauth-exporter, which holds the README's ACLs.
const oauthPrincipal = "oauth-exporter"

// idp is an OAuth 2.0 token endpoint for the client-credentials grant,
// issuing RS256 JWTs the brokers validate against the cluster's JWKS file.
type idp struct {
	t      testing.TB
	srv    *httptest.Server
	addr   string
	key    *rsa.PrivateKey
	kid    string
	mu     sync.Mutex
	issued int
}

// newIDP starts a token endpoint (started=false: only its address is
// reserved; start brings it up there) signing with key.
func newIDP(t testing.TB, key *rsa.PrivateKey, started bool) *idp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{t: t, addr: ln.Addr().String(), key: key, kid: world.cluster.OAuthKeyID}
	if started {
		p.serve(ln)
	} else {
		ln.Close()
	}
	t.Cleanup(func() {
		if p.srv != nil {
			p.srv.Close()
		}
	})
	return p
}

func (p *idp) start() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

func (p *idp) serve(ln net.Listener) {
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.token))
	p.srv.Listener.Close()
	p.srv.Listener = ln
	p.srv.Start()
}

func (p *idp) url() string { return "http://" + p.addr + "/oauth2/token" }

func (p *idp) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.issued
}

func (p *idp) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost || r.PostForm.Get("grant_type") != "client_credentials" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	w.Header().Set("Content-Type", "application/json")
	if id != "kre" || secret != "kre-client-secret" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"Invalid client or client credentials"}`))
		return
	}
	now := time.Now()
	jwt, err := signJWT(p.key, p.kid, map[string]any{
		"iss": world.cluster.OAuthIssuer, "aud": world.cluster.OAuthAudience, "sub": oauthPrincipal,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "scope": r.PostForm.Get("scope"),
		"jti": fmt.Sprint(now.UnixNano()),
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	p.mu.Lock()
	p.issued++
	p.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": jwt, "token_type": "Bearer", "expires_in": 3600})
}

// signJWT is a compact RS256 JWS of claims (RFC 7515, 7519).
func signJWT(key *rsa.PrivateKey, kid string, claims map[string]any) (string, error) {
	enc := base64.RawURLEncoding
	h, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return input + "." + enc.EncodeToString(sig), nil
}

// clusterSigningKey is the key whose public half the brokers' JWKS holds.
func clusterSigningKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	if world.cluster.OAuthKeyFile == "" {
		t.Skip("the cluster has no OAUTH listener (started by an older kafka-cluster.sh)")
	}
	b, err := os.ReadFile(world.cluster.OAuthKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", world.cluster.OAuthKeyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

func oauthEnv(tokenURL, secretFile string) []string {
	return []string{
		"KRE_BROKERS=" + realkafka.Bootstrap(world.cluster.OAuth), "KRE_SASL_MECHANISM=OAUTHBEARER",
		"KRE_SASL_OAUTH_TOKEN_URL=" + tokenURL, "KRE_SASL_OAUTH_CLIENT_ID=kre",
		"KRE_SASL_OAUTH_CLIENT_SECRET_FILE=" + secretFile, "KRE_SASL_OAUTH_SCOPES=kafka",
		"KRE_REQUEST_TIMEOUT=5s",
	}
}

// startLogged starts an exporter without waiting for readiness, keeping
// everything it logs.
func startLogged(t *testing.T, groupInclude string, env ...string) (*exporter, *testkit.SyncBuffer) {
	t.Helper()
	var logs testkit.SyncBuffer
	addr := freeAddr(t)
	base := []string{
		"KRE_BROKERS=" + realkafka.Bootstrap(world.cluster.Plaintext), "KRE_LISTEN_ADDRESS=" + addr,
		"KRE_GROUP_POLL_INTERVAL=500ms", "KRE_POLL_INTERVAL=1s", "KRE_LOG_FORMAT=json", "KRE_GROUP_INCLUDE=" + groupInclude,
	}
	p, err := realkafka.StartProc("exporter", append(base, env...), nil, func(l string) { _, _ = logs.Write([]byte(l + "\n")) }, world.exporter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// 30 s, not 10: while every broker refuses the authentication, a
		// poll in flight at SIGTERM finishes its client creation (sarama
		// tries each seed broker twice; about 7 s against three brokers
		// validating JWTs), and shutdown waits for it.
		if !p.Stop(30 * time.Second) {
			t.Errorf("exporter did not stop within 30s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("exporter output:\n%s", logs.Tail(40))
		}
	})
	return &exporter{proc: p, addr: addr}, &logs
}

// failingPolls waits for polls of both loops that all failed to connect,
// with the exporter alive.
func failingPolls(t *testing.T, e *exporter) metrics {
	t.Helper()
	var m metrics
	eventually(t, 2*time.Minute, "failing polls, counted", func() error {
		if e.proc.Exited() {
			return fmt.Errorf("%w: the exporter exited", errStop)
		}
		var err error
		if m, err = e.scrape(); err != nil {
			return err
		}
		for _, loop := range []string{"groups", "offsets"} {
			if v, _ := m.value("kafka_rebalance_exporter_polls_total", map[string]string{"loop": loop}); v < 3 {
				return fmt.Errorf("%s polls: %v", loop, v)
			}
		}
		if v, _ := m.value("kafka_rebalance_exporter_poll_errors_total", map[string]string{"stage": "connect"}); v < 3 {
			return fmt.Errorf("connect errors: %v", v)
		}
		return nil
	})
	if up, _ := m.value("kafka_rebalance_exporter_up", nil); up != 0 {
		t.Errorf("up = %v while no broker accepts the exporter", up)
	}
	return m
}

// TestOAuth runs the exporter over SASL/OAUTHBEARER against the brokers'
// own JWT validator (signature against the JWKS file, issuer, audience,
// expiry), with tokens from a client-credentials endpoint, as a principal
// holding exactly the README's ACLs; then with a wrong client secret, a
// token signed by another key, and a token endpoint that is down at start.
func TestOAuth(t *testing.T) {
	key := clusterSigningKey(t)
	adm := admin(t)
	prefix := "oauth-" + world.run
	topic, group := prefix+"-t", prefix+"-g"
	createTopic(t, adm, topic, 3)
	produceN(t, topic, 30)
	commitPartial(t, adm, group, topic)
	principal := "User:" + oauthPrincipal
	grant(t, adm, principal, prefix)
	t.Cleanup(func() { revokeAll(t, adm, principal) })
	dir := t.TempDir()
	goodSecret, wrongSecret := filepath.Join(dir, "good"), filepath.Join(dir, "wrong")
	writeFile(t, goodSecret, "kre-client-secret\n")
	writeFile(t, wrongSecret, "not-the-s3cret\n")

	t.Run("serves-groups", func(t *testing.T) {
		p := newIDP(t, key, true)
		logStart := authorizerLines(t)
		e := startExporter(t, prefix+"-.*", oauthEnv(p.url(), goodSecret)...)
		eventually(t, 2*time.Minute, "full metrics over OAUTHBEARER", func() error { return scrapeFull(e, group, topic) })
		if p.count() == 0 {
			t.Fatal("full metrics without a token from the endpoint")
		}
		// The broker knew the exporter as the token's subject.
		allowed := 0
		for _, d := range world.cluster.NodeDirs() {
			i := 0
			_ = eachDecision(filepath.Join(d, "authorizer.log"), func(dc decision) {
				i++
				if i > logStart[d] && dc.principal == principal && dc.result == "Allowed" {
					allowed++
				}
			})
		}
		if allowed == 0 {
			t.Fatalf("no authorizer decision for %s: the exporter was not authenticated as the token's subject", principal)
		}
		// Sessions re-authenticate every 10 s on this listener: the
		// exporter keeps serving across re-authentications.
		start := time.Now()
		eventually(t, time.Minute, "polls across a re-authentication", func() error {
			if err := scrapeFull(e, group, topic); err != nil {
				return fmt.Errorf("%w: %v", errStop, err)
			}
			if time.Since(start) < 12*time.Second {
				return fmt.Errorf("%s of polling", time.Since(start).Round(time.Second))
			}
			return nil
		})
	})

	// Everything the broker decided for the token's subject is a Describe
	// in a read-only request.
	t.Run("read-only", func(t *testing.T) { readOnly(t, principal) })

	t.Run("wrong-client-secret", func(t *testing.T) {
		p := newIDP(t, key, true)
		e, logs := startLogged(t, prefix+"-.*", oauthEnv(p.url(), wrongSecret)...)
		authCounted(t, failingPolls(t, e), "kafka_rebalance_exporter_oauth_token_errors_total", map[string]string{"reason": "rejected"})
		logSays(t, logs, "OAuth token request failed", "invalid_client", `"reason":"rejected"`, "401")
		out := logs.String()
		if n := strings.Count(out, "OAuth token request failed"); n > 3 {
			t.Errorf("the same token failure logged %d times in a few seconds", n)
		}
		if strings.Contains(out, "not-the-s3cret") || strings.Contains(out, "kre-client-secret") {
			t.Error("a client secret reached the log")
		}
	})

	t.Run("token-signed-by-another-key", func(t *testing.T) {
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		p := newIDP(t, other, true)
		e, logs := startLogged(t, prefix+"-.*", oauthEnv(p.url(), goodSecret)...)
		failingPolls(t, e)
		// The broker's validator refused the signature: the exporter says
		// so, naming the mechanism.
		logSays(t, logs, "invalid credentials with SASL mechanism OAUTHBEARER")
		if p.count() == 0 {
			t.Fatal("no token was requested")
		}
	})

	t.Run("token-endpoint-down", func(t *testing.T) {
		p := newIDP(t, key, false)
		e, logs := startLogged(t, prefix+"-.*", oauthEnv(p.url(), goodSecret)...)
		authCounted(t, failingPolls(t, e), "kafka_rebalance_exporter_oauth_token_errors_total", map[string]string{"reason": "unreachable"})
		logSays(t, logs, `"reason":"unreachable"`, "cannot be reached")
		// The endpoint comes up: the exporter recovers by itself.
		p.start()
		eventually(t, 2*time.Minute, "full metrics once the token endpoint is up", func() error {
			if e.proc.Exited() {
				return fmt.Errorf("%w: the exporter exited", errStop)
			}
			return scrapeFull(e, group, topic)
		})
		logSays(t, logs, "OAuth token request succeeded again")
	})
}

// TestReloadSCRAMPasswordFile: the exporter's SCRAM credential is changed
// on the broker and then in its password file; the exporter, never
// restarted, is refused between the two and serves again after the file
// changed. The OAUTH listener makes sessions re-authenticate every 10 s,
// so the open connections authenticate again too.
func TestReloadSCRAMPasswordFile(t *testing.T) {
	if world.cluster.OAuthKeyFile == "" {
		t.Skip("the cluster has no OAUTH listener (started by an older kafka-cluster.sh)")
	}
	adm := admin(t)
	prefix := "reload-" + world.run
	topic, group := prefix+"-t", prefix+"-g"
	createTopic(t, adm, topic, 3)
	produceN(t, topic, 30)
	commitPartial(t, adm, group, topic)
	user := "rotating-" + world.run
	setSCRAM(t, adm, user, "first-pw")
	principal := "User:" + user
	grant(t, adm, principal, prefix)
	t.Cleanup(func() {
		revokeAll(t, adm, principal)
		_, _ = adm.AlterUserSCRAMs(ctxT(t, time.Minute), []kadm.DeleteSCRAM{{User: user, Mechanism: kadm.ScramSha512}}, nil)
	})
	pwFile := filepath.Join(t.TempDir(), "password")
	writeFile(t, pwFile, "first-pw\n")
	e, logs := startLogged(t, prefix+"-.*", "KRE_BROKERS="+realkafka.Bootstrap(world.cluster.OAuth),
		"KRE_SASL_MECHANISM=SCRAM-SHA-512", "KRE_SASL_USERNAME="+user, "KRE_SASL_PASSWORD_FILE="+pwFile)
	eventually(t, 2*time.Minute, "full metrics with the first password", func() error { return scrapeFull(e, group, topic) })

	setSCRAM(t, adm, user, "second-pw")
	connectErrors := func() float64 {
		m, err := e.scrape()
		if err != nil {
			return -1
		}
		v, _ := m.value("kafka_rebalance_exporter_poll_errors_total", map[string]string{"stage": "connect"})
		return v
	}
	before := connectErrors()
	eventually(t, time.Minute, "refused with the old password once sessions re-authenticate", func() error {
		if n := connectErrors(); n <= before {
			return fmt.Errorf("connect errors %v", n)
		}
		return nil
	})

	tmp := pwFile + ".new"
	writeFile(t, tmp, "second-pw\n")
	if err := os.Rename(tmp, pwFile); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "full metrics after the password file changed", func() error {
		if e.proc.Exited() {
			return fmt.Errorf("%w: the exporter exited", errStop)
		}
		return scrapeFull(e, group, topic)
	})
	logSays(t, logs, "credential file changed; new connections use the new value")
	authCounted(t, mustScrape(t, e), "kafka_rebalance_exporter_credential_reloads_total", map[string]string{"file": "KRE_SASL_PASSWORD_FILE"})
	if strings.Contains(logs.String(), "second-pw") || strings.Contains(logs.String(), "first-pw") {
		t.Error("a password reached the log")
	}
}

// authCounted checks that the exporter's credential and OAuth counter
// name{labels} is served and above 0.
func authCounted(t *testing.T, m metrics, name string, labels map[string]string) {
	t.Helper()
	if v, _ := m.value(name, labels); v <= 0 {
		t.Errorf("%s%v = %v, want > 0", name, labels, v)
	}
}

// logSays waits until the exporter's log holds every one of wants (it
// arrives through a pipe, maybe after the metrics that prompted the check).
func logSays(t *testing.T, logs *testkit.SyncBuffer, wants ...string) {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("the log saying %q", wants), func() error {
		for _, w := range wants {
			if !strings.Contains(logs.String(), w) {
				return fmt.Errorf("no %q in:\n%s", w, logs.Tail(10))
			}
		}
		return nil
	})
}

func setSCRAM(t *testing.T, adm *kadm.Client, user, pw string) {
	t.Helper()
	res, err := adm.AlterUserSCRAMs(ctxT(t, time.Minute), nil, []kadm.UpsertSCRAM{{User: user, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: pw}})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("SCRAM credential of %s: %v", user, err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
