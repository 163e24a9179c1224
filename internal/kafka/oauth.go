package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
)

// oauthProvider is sarama's AccessTokenProvider for SASL/OAUTHBEARER: an
// access token from an OAuth 2.0 token endpoint with the client-credentials
// grant (RFC 6749 section 4.4), as Confluent Cloud, Strimzi with Keycloak
// and managed Kafka services issue them.
//
// sarama asks for a token on every new connection (and on re-authentication).
// The token is cached and requested again once 80 % of its lifetime has
// passed, so a connection never gets one about to expire. A failed request
// is counted by reason and logged (once per distinct error, then at most
// once a minute while it lasts); the connection attempt then fails, which
// the poll reports as a connect error, unless the cached token is still
// valid, which is used meanwhile. A failure never stops the exporter.
type oauthProvider struct {
	cc     clientcredentials.Config // ClientSecret is set before each request
	secret func() string
	ext    map[string]string
	http   *http.Client
	log    zerolog.Logger
	m      *AuthMetrics
	now    func() time.Time

	mu        sync.Mutex
	tok       string
	expiry    time.Time // zero: none given
	refreshAt time.Time
	lastErr   string
	loggedAt  time.Time
}

// tokenNoExpiryRefresh is how long a token without expires_in is used.
const tokenNoExpiryRefresh = 5 * time.Minute

// errorLogInterval is how often a failure that lasts is logged again.
const errorLogInterval = time.Minute

func newOAuthProvider(c *config.Config, log zerolog.Logger) (*oauthProvider, error) {
	secret := func() string { return c.SASLOAuthClientSecret }
	if c.SASLOAuthClientSecretFile != "" {
		w, err := newSecretFile(fileOAuthClientSecret, c.SASLOAuthClientSecretFile, log)
		if err != nil {
			return nil, &config.Error{Var: "SASL_OAUTH_CLIENT_SECRET_FILE", Msg: err.Error()}
		}
		secret = w.Get
	}
	params := url.Values{}
	if c.SASLOAuthAudience != "" {
		params.Set("audience", c.SASLOAuthAudience)
	}
	return &oauthProvider{
		cc: clientcredentials.Config{
			ClientID: c.SASLOAuthClientID, TokenURL: c.SASLOAuthTokenURL, Scopes: c.SASLOAuthScopes, EndpointParams: params,
		},
		secret: secret,
		ext:    c.OAuthExtensions,
		// The proxy settings of the environment apply, as for any HTTP
		// client; the timeout is the Kafka request timeout.
		http: &http.Client{Timeout: c.RequestTimeout, Transport: http.DefaultTransport.(*http.Transport).Clone()},
		log:  log,
		m:    authMetrics,
		now:  time.Now,
	}, nil
}

// Token implements sarama.AccessTokenProvider.
func (p *oauthProvider) Token() (*sarama.AccessToken, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.tok != "" && now.Before(p.refreshAt) {
		return p.accessToken(), nil
	}
	err := p.fetch(now)
	if err == nil {
		return p.accessToken(), nil
	}
	if p.tok != "" && !p.expiry.IsZero() && now.Before(p.expiry) {
		return p.accessToken(), nil // still valid; the next connection tries again
	}
	return nil, err
}

func (p *oauthProvider) accessToken() *sarama.AccessToken {
	return &sarama.AccessToken{Token: p.tok, Extensions: p.ext}
}

// fetch requests a token; the caller holds p.mu, so concurrent connections
// wait for one request instead of sending one each.
func (p *oauthProvider) fetch(now time.Time) error {
	p.cc.ClientSecret = p.secret()
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), oauth2.HTTPClient, p.http), p.http.Timeout)
	defer cancel()
	t, err := p.cc.Token(ctx)
	if err == nil && (t.AccessToken == "" || (t.TokenType != "" && !strings.EqualFold(t.TokenType, "bearer"))) {
		err = &invalidTokenError{fmt.Sprintf("the answer holds no bearer access token (token_type %q)", t.TokenType)}
	}
	if err != nil {
		reason, msg := describeTokenError(err)
		p.m.tokenErrors.WithLabelValues(reason).Inc()
		if msg != p.lastErr || now.Sub(p.loggedAt) >= errorLogInterval {
			p.log.Error().Str("token_url", p.cc.TokenURL).Str("client_id", p.cc.ClientID).Str("reason", reason).Str("error", msg).
				Msg("OAuth token request failed; connections to the brokers fail until it succeeds")
			p.lastErr, p.loggedAt = msg, now
		}
		return fmt.Errorf("OAuth token endpoint %s: %s", p.cc.TokenURL, msg)
	}
	if p.lastErr != "" {
		p.log.Info().Str("token_url", p.cc.TokenURL).Msg("OAuth token request succeeded again")
		p.lastErr = ""
	}
	p.m.tokens.Inc()
	p.tok = t.AccessToken
	p.expiry = t.Expiry
	if in := expiresIn(t); in > 0 {
		p.expiry = now.Add(in) // on the provider's clock
	}
	if p.expiry.IsZero() {
		p.refreshAt = now.Add(tokenNoExpiryRefresh)
		p.m.tokenExpiry.Set(0)
	} else {
		p.refreshAt = now.Add(p.expiry.Sub(now) * 4 / 5)
		p.m.tokenExpiry.Set(float64(p.expiry.Unix()))
	}
	return nil
}

// expiresIn is the answer's expires_in (clientcredentials turns it into
// an Expiry on its own clock and drops it; the raw field is kept).
func expiresIn(t *oauth2.Token) time.Duration {
	var secs float64
	switch v := t.Extra("expires_in").(type) {
	case float64:
		secs = v
	case string: // some providers send a string
		secs, _ = strconv.ParseFloat(v, 64)
	}
	if secs <= 0 {
		return 0
	}
	return time.Duration(secs * float64(time.Second))
}

type invalidTokenError struct{ msg string }

func (e *invalidTokenError) Error() string { return e.msg }

// describeTokenError classifies a failed token request and says what
// happened in one line, without the response body (which may be large, or
// echo the request).
func describeTokenError(err error) (reason, msg string) {
	var re *oauth2.RetrieveError
	var ie *invalidTokenError
	var ne net.Error
	var ue *url.Error
	switch {
	case errors.As(err, &re):
		msg = "the token endpoint refused the request"
		if re.Response != nil {
			msg += ": HTTP " + re.Response.Status
		}
		if re.ErrorCode != "" {
			msg += ", error " + re.ErrorCode
		}
		if re.ErrorDescription != "" {
			msg += " (" + re.ErrorDescription + ")"
		}
		if re.Response != nil && re.Response.StatusCode >= 500 {
			return tokenUnreachable, msg
		}
		return tokenRejected, msg
	case errors.As(err, &ie):
		return tokenInvalid, ie.msg
	case errors.As(err, &ne), errors.As(err, &ue), errors.Is(err, context.DeadlineExceeded):
		return tokenUnreachable, "the token endpoint cannot be reached: " + err.Error()
	default:
		// oauth2 reports an unparsable answer with a plain error.
		return tokenInvalid, err.Error()
	}
}
