package kafka

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
)

// tokenEndpoint is an OAuth 2.0 token endpoint for the client-credentials
// grant: it accepts one client and secret (changeable), and counts the
// requests it answered.
type tokenEndpoint struct {
	*httptest.Server
	mu       sync.Mutex
	secret   string
	lifetime int // expires_in, seconds
	issued   int
	scopes   []string
}

func newTokenEndpoint(t *testing.T, secret string) *tokenEndpoint {
	e := &tokenEndpoint{secret: secret, lifetime: 100}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	return e
}

func (e *tokenEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost || r.PostForm.Get("grant_type") != "client_credentials" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	w.Header().Set("Content-Type", "application/json")
	if id != "exporter" || secret != e.secret {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"Invalid client credentials"}`))
		return
	}
	e.issued++
	e.scopes = strings.Fields(r.PostForm.Get("scope"))
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("token-%d", e.issued), "token_type": "Bearer", "expires_in": e.lifetime})
}

func (e *tokenEndpoint) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.issued
}

func oauthConfig(t *testing.T, tokenURL string, env map[string]string) *config.Config {
	t.Helper()
	t.Setenv("KRE_SASL_MECHANISM", "OAUTHBEARER")
	t.Setenv("KRE_SASL_OAUTH_TOKEN_URL", tokenURL)
	t.Setenv("KRE_SASL_OAUTH_CLIENT_ID", "exporter")
	t.Setenv("KRE_REQUEST_TIMEOUT", "3s")
	for k, v := range env {
		t.Setenv("KRE_"+k, v)
	}
	c, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// provider builds the token provider as SaramaConfig does, with a clock
// the test moves and a log it reads.
func provider(t *testing.T, c *config.Config) (*oauthProvider, *time.Time, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	SetAuthLogger(zerolog.New(&logs))
	t.Cleanup(func() { SetAuthLogger(zerolog.Nop()) })
	sc, err := SaramaConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := sc.Net.SASL.TokenProvider.(*oauthProvider)
	if !ok || sc.Net.SASL.Mechanism != sarama.SASLTypeOAuth || !sc.Net.SASL.Enable {
		t.Fatalf("SaramaConfig did not set up OAUTHBEARER: %T %q", sc.Net.SASL.TokenProvider, sc.Net.SASL.Mechanism)
	}
	now := time.Now()
	p.now = func() time.Time { return now }
	return p, &now, &logs
}

func TestOAuthTokenCachedAndRefreshedBeforeExpiry(t *testing.T) {
	ep := newTokenEndpoint(t, "right")
	c := oauthConfig(t, ep.URL, map[string]string{"SASL_OAUTH_CLIENT_SECRET": "right", "SASL_OAUTH_SCOPES": "kafka,metrics", "SASL_OAUTH_EXTENSIONS": "logicalCluster=lkc-1"})
	p, now, _ := provider(t, c)
	before := testutil.ToFloat64(authMetrics.tokens)

	tok, err := p.Token()
	if err != nil {
		t.Fatal(err)
	}
	if tok.Token != "token-1" || tok.Extensions["logicalCluster"] != "lkc-1" {
		t.Fatalf("token %+v", tok)
	}
	if strings.Join(ep.scopes, " ") != "kafka metrics" {
		t.Fatalf("scopes sent: %q", ep.scopes)
	}
	// Every new connection asks; within 80 % of the 100 s lifetime the
	// cached token answers.
	*now = now.Add(79 * time.Second)
	for range 5 {
		if tok, err = p.Token(); err != nil || tok.Token != "token-1" {
			t.Fatalf("cached token: %+v, %v", tok, err)
		}
	}
	if n := ep.count(); n != 1 {
		t.Fatalf("%d token requests for one token lifetime", n)
	}
	*now = now.Add(2 * time.Second)
	if tok, err = p.Token(); err != nil || tok.Token != "token-2" {
		t.Fatalf("token after 81 %% of its lifetime: %+v, %v", tok, err)
	}
	if got := testutil.ToFloat64(authMetrics.tokens) - before; got != 2 {
		t.Fatalf("oauth_token_requests_total grew by %v, want 2", got)
	}
	if exp := testutil.ToFloat64(authMetrics.tokenExpiry); exp < float64(now.Add(99*time.Second).Unix()) {
		t.Fatalf("token expiry gauge %v, want at least %v", exp, now.Add(99*time.Second).Unix())
	}
}

func TestOAuthWrongSecret(t *testing.T) {
	ep := newTokenEndpoint(t, "right")
	c := oauthConfig(t, ep.URL, map[string]string{"SASL_OAUTH_CLIENT_SECRET": "wrong-s3cret"})
	p, now, logs := provider(t, c)
	before := testutil.ToFloat64(authMetrics.tokenErrors.WithLabelValues(tokenRejected))

	for i := range 3 {
		_, err := p.Token()
		if err == nil {
			t.Fatal("token with a wrong secret")
		}
		if !strings.Contains(err.Error(), "invalid_client") || !strings.Contains(err.Error(), "401") {
			t.Fatalf("error does not say the endpoint refused the client: %v", err)
		}
		if strings.Contains(err.Error(), "wrong-s3cret") {
			t.Fatalf("error shows the secret: %v", err)
		}
		*now = now.Add(time.Duration(i+1) * time.Second)
	}
	if got := testutil.ToFloat64(authMetrics.tokenErrors.WithLabelValues(tokenRejected)) - before; got != 3 {
		t.Fatalf("rejected token requests counted %v, want 3", got)
	}
	if n := strings.Count(logs.String(), "OAuth token request failed"); n != 1 {
		t.Fatalf("the same failure logged %d times within a minute, want once:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), "wrong-s3cret") {
		t.Fatalf("log shows the secret: %s", logs)
	}
	// A failure that lasts is logged again after a minute.
	*now = now.Add(errorLogInterval)
	_, _ = p.Token()
	if n := strings.Count(logs.String(), "OAuth token request failed"); n != 2 {
		t.Fatalf("failure logged %d times after a minute, want twice", n)
	}
}

func TestOAuthEndpointDown(t *testing.T) {
	ep := newTokenEndpoint(t, "right")
	c := oauthConfig(t, ep.URL, map[string]string{"SASL_OAUTH_CLIENT_SECRET": "right"})
	p, now, logs := provider(t, c)
	if _, err := p.Token(); err != nil {
		t.Fatal(err)
	}
	ep.Close()
	before := testutil.ToFloat64(authMetrics.tokenErrors.WithLabelValues(tokenUnreachable))

	// Refresh time passed but the token is still valid: it is used.
	*now = now.Add(90 * time.Second)
	tok, err := p.Token()
	if err != nil || tok.Token != "token-1" {
		t.Fatalf("still valid token not used while the endpoint is down: %+v, %v", tok, err)
	}
	// Expired: the connection fails with an error naming the endpoint.
	*now = now.Add(20 * time.Second)
	if _, err = p.Token(); err == nil || !strings.Contains(err.Error(), "cannot be reached") {
		t.Fatalf("error with the endpoint down: %v", err)
	}
	if got := testutil.ToFloat64(authMetrics.tokenErrors.WithLabelValues(tokenUnreachable)) - before; got != 2 {
		t.Fatalf("unreachable token requests counted %v, want 2", got)
	}
	if !strings.Contains(logs.String(), `"reason":"unreachable"`) {
		t.Fatalf("failure not logged: %s", logs)
	}
}

// A token endpoint answering 200 without a token is an invalid answer,
// not a token.
func TestOAuthAnswerWithoutToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"token_type":"Bearer","expires_in":60}`))
	}))
	defer srv.Close()
	p, _, _ := provider(t, oauthConfig(t, srv.URL, map[string]string{"SASL_OAUTH_CLIENT_SECRET": "s"}))
	before := testutil.ToFloat64(authMetrics.tokenErrors.WithLabelValues(tokenInvalid))
	if _, err := p.Token(); err == nil {
		t.Fatal("empty answer taken as a token")
	}
	if got := testutil.ToFloat64(authMetrics.tokenErrors.WithLabelValues(tokenInvalid)) - before; got != 1 {
		t.Fatalf("invalid answers counted %v, want 1", got)
	}
}

// The client secret file is read again when it changes: a wrong secret
// fixed in the file is used at the next token request.
func TestOAuthClientSecretFileReload(t *testing.T) {
	ep := newTokenEndpoint(t, "s3cret-two")
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("s3cret-one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _, logs := provider(t, oauthConfig(t, ep.URL, map[string]string{"SASL_OAUTH_CLIENT_SECRET_FILE": file}))
	before := testutil.ToFloat64(authMetrics.reloads.WithLabelValues(fileOAuthClientSecret))
	if _, err := p.Token(); err == nil {
		t.Fatal("token with the first, wrong, secret")
	}
	if err := os.WriteFile(file, []byte("s3cret-two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := p.Token()
	if err != nil || tok.Token != "token-1" {
		t.Fatalf("token after the secret file changed: %+v, %v", tok, err)
	}
	if got := testutil.ToFloat64(authMetrics.reloads.WithLabelValues(fileOAuthClientSecret)) - before; got != 1 {
		t.Fatalf("secret file reloads counted %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "credential file changed") || strings.Contains(logs.String(), "s3cret") {
		t.Fatalf("reload log: %s", logs)
	}
}
