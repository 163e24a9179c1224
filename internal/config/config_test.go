package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// Every setting tagged secret is masked in Redacted and in the log line
// built from it, and every other setting is there: driven by reflection,
// so a setting added later is covered without anyone remembering to.
func TestSecretsNeverReachRedactedOrLogs(t *testing.T) {
	var c Config
	v := reflect.ValueOf(&c).Elem()
	secrets := map[string]string{}
	var names []string
	for _, f := range reflect.VisibleFields(v.Type()) {
		name, ok := f.Tag.Lookup("envconfig")
		if !ok {
			continue
		}
		names = append(names, strings.ToLower(name))
		if f.Tag.Get("secret") != "true" {
			continue
		}
		if f.Type.Kind() != reflect.String {
			t.Fatalf("secret %s is a %s; Redacted and this test handle strings", f.Name, f.Type)
		}
		val := fmt.Sprintf("s3cret-%s-%d", name, len(secrets))
		v.FieldByIndex(f.Index).SetString(val)
		secrets[strings.ToLower(name)] = val
	}
	if len(secrets) == 0 {
		t.Fatal("no setting is tagged secret; SASL_PASSWORD must be")
	}
	r := c.Redacted()
	for _, n := range names {
		if _, ok := r[n]; !ok {
			t.Errorf("setting %s missing from Redacted", n)
		}
	}
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	log.Info().Interface("config", r).Msg("started")
	for name, val := range secrets {
		if r[name] != "<redacted>" {
			t.Errorf("%s: Redacted has %v", name, r[name])
		}
		if strings.Contains(fmt.Sprint(r), val) || strings.Contains(buf.String(), val) {
			t.Errorf("secret %s leaked: %s", name, buf.String())
		}
	}
}

// Defaults come from the tags alone: Load with an empty environment gives
// them, and Usage prints each.
func TestDefaultsAreTheTags(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	var usage bytes.Buffer
	if err := Usage(&usage); err != nil {
		t.Fatal(err)
	}
	v := reflect.ValueOf(c).Elem()
	for _, f := range reflect.VisibleFields(v.Type()) {
		def, ok := f.Tag.Lookup("default")
		if !ok || def == "" {
			continue
		}
		want := def
		switch f.Type {
		case reflect.TypeOf(time.Duration(0)):
			d, err := time.ParseDuration(def)
			if err != nil {
				t.Fatalf("%s: default %q: %v", f.Name, def, err)
			}
			want = d.String()
		case reflect.TypeOf([]string(nil)):
			want = "[" + strings.ReplaceAll(def, ",", " ") + "]"
		}
		if got := fmt.Sprint(c.Redacted()[strings.ToLower(f.Tag.Get("envconfig"))]); got != want {
			t.Errorf("%s: loaded %q, tag default %q", f.Name, got, def)
		}
		if !strings.Contains(usage.String(), def) {
			t.Errorf("%s: -help does not show the default %q", f.Name, def)
		}
	}
}

// SASL and OAUTHBEARER settings: what is accepted, normalised and refused,
// and that each refusal names the variable to fix.
func TestSASLSettings(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	oauth := map[string]string{"SASL_MECHANISM": "oauthbearer", "SASL_OAUTH_TOKEN_URL": "https://idp.example/token", "SASL_OAUTH_CLIENT_ID": "exporter"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		errVar  string // empty: valid
		errText string
		check   func(t *testing.T, c *Config)
	}{
		{name: "oauth with secret file", env: with(oauth, "SASL_OAUTH_CLIENT_SECRET_FILE", secretFile, "SASL_OAUTH_SCOPES", "kafka, read ,", "SASL_OAUTH_EXTENSIONS", "logicalCluster=lkc-1, identityPoolId=pool-2"),
			check: func(t *testing.T, c *Config) {
				if c.SASLMechanism != "OAUTHBEARER" || c.SASLOAuthClientSecret != "file-secret" {
					t.Errorf("mechanism %q, secret %q", c.SASLMechanism, c.SASLOAuthClientSecret)
				}
				if !reflect.DeepEqual(c.SASLOAuthScopes, []string{"kafka", "read"}) {
					t.Errorf("scopes %q", c.SASLOAuthScopes)
				}
				if want := map[string]string{"logicalCluster": "lkc-1", "identityPoolId": "pool-2"}; !reflect.DeepEqual(c.OAuthExtensions, want) {
					t.Errorf("extensions %v", c.OAuthExtensions)
				}
				if c.Redacted()["sasl_oauth_client_secret"] != "<redacted>" {
					t.Errorf("secret read from its file not redacted: %v", c.Redacted()["sasl_oauth_client_secret"])
				}
			}},
		{name: "oauth with secret", env: with(oauth, "SASL_OAUTH_CLIENT_SECRET", "s"), check: func(t *testing.T, c *Config) {
			if c.OAuthExtensions != nil || len(c.SASLOAuthScopes) != 0 {
				t.Errorf("extensions %v, scopes %q", c.OAuthExtensions, c.SASLOAuthScopes)
			}
		}},
		{name: "no token url", env: with(oauth, "SASL_OAUTH_TOKEN_URL", "", "SASL_OAUTH_CLIENT_SECRET", "s"), errVar: "SASL_OAUTH_TOKEN_URL", errText: "required"},
		{name: "token url not http", env: with(oauth, "SASL_OAUTH_TOKEN_URL", "ftp://idp/token", "SASL_OAUTH_CLIENT_SECRET", "s"), errVar: "SASL_OAUTH_TOKEN_URL", errText: "not an http or https URL"},
		{name: "token url relative", env: with(oauth, "SASL_OAUTH_TOKEN_URL", "/token", "SASL_OAUTH_CLIENT_SECRET", "s"), errVar: "SASL_OAUTH_TOKEN_URL"},
		{name: "token url with credentials", env: with(oauth, "SASL_OAUTH_TOKEN_URL", "https://u:p@idp/token", "SASL_OAUTH_CLIENT_SECRET", "s"), errVar: "SASL_OAUTH_TOKEN_URL", errText: "credentials"},
		{name: "no client id", env: with(oauth, "SASL_OAUTH_CLIENT_ID", "", "SASL_OAUTH_CLIENT_SECRET", "s"), errVar: "SASL_OAUTH_CLIENT_ID"},
		{name: "no secret", env: oauth, errVar: "SASL_OAUTH_CLIENT_SECRET", errText: "SASL_OAUTH_CLIENT_SECRET_FILE"},
		{name: "secret twice", env: with(oauth, "SASL_OAUTH_CLIENT_SECRET", "s", "SASL_OAUTH_CLIENT_SECRET_FILE", secretFile), errVar: "SASL_OAUTH_CLIENT_SECRET_FILE", errText: "not both"},
		{name: "secret file missing", env: with(oauth, "SASL_OAUTH_CLIENT_SECRET_FILE", filepath.Join(dir, "nope")), errVar: "SASL_OAUTH_CLIENT_SECRET_FILE", errText: "no such file"},
		{name: "secret file empty", env: with(oauth, "SASL_OAUTH_CLIENT_SECRET_FILE", emptyFile), errVar: "SASL_OAUTH_CLIENT_SECRET_FILE", errText: "empty"},
		{name: "oauth with user name", env: with(oauth, "SASL_OAUTH_CLIENT_SECRET", "s", "SASL_USERNAME", "u"), errVar: "SASL_USERNAME", errText: "not used with OAUTHBEARER"},
		{name: "scope with space", env: with(oauth, "SASL_OAUTH_CLIENT_SECRET", "s", "SASL_OAUTH_SCOPES", "a b"), errVar: "SASL_OAUTH_SCOPES"},
		{name: "extension without value", env: with(oauth, "SASL_OAUTH_CLIENT_SECRET", "s", "SASL_OAUTH_EXTENSIONS", "logicalCluster"), errVar: "SASL_OAUTH_EXTENSIONS", errText: "key=value"},
		{name: "extension key not letters", env: with(oauth, "SASL_OAUTH_CLIENT_SECRET", "s", "SASL_OAUTH_EXTENSIONS", "logical_cluster=x"), errVar: "SASL_OAUTH_EXTENSIONS", errText: "letters only"},
		{name: "extension auth", env: with(oauth, "SASL_OAUTH_CLIENT_SECRET", "s", "SASL_OAUTH_EXTENSIONS", "auth=x"), errVar: "SASL_OAUTH_EXTENSIONS", errText: "reserved"},
		{name: "extension twice", env: with(oauth, "SASL_OAUTH_CLIENT_SECRET", "s", "SASL_OAUTH_EXTENSIONS", "a=1,a=2"), errVar: "SASL_OAUTH_EXTENSIONS", errText: "twice"},
		{name: "oauth settings without mechanism", env: map[string]string{"SASL_OAUTH_TOKEN_URL": "https://idp/token"}, errVar: "SASL_MECHANISM", errText: "OAUTHBEARER"},
		{name: "oauth settings with scram", env: map[string]string{"SASL_MECHANISM": "SCRAM-SHA-512", "SASL_USERNAME": "u", "SASL_PASSWORD": "p", "SASL_OAUTH_CLIENT_ID": "c"}, errVar: "SASL_MECHANISM", errText: "OAUTHBEARER"},
		{name: "unknown mechanism", env: map[string]string{"SASL_MECHANISM": "GSSAPI"}, errVar: "SASL_MECHANISM", errText: "OAUTHBEARER"},
		{name: "scram password file", env: map[string]string{"SASL_MECHANISM": "scram-sha-256", "SASL_USERNAME": "u", "SASL_PASSWORD_FILE": secretFile}, check: func(t *testing.T, c *Config) {
			if c.SASLMechanism != "SCRAM-SHA-256" || c.SASLPassword != "file-secret" {
				t.Errorf("mechanism %q, password %q", c.SASLMechanism, c.SASLPassword)
			}
		}},
		{name: "password file empty", env: map[string]string{"SASL_MECHANISM": "PLAIN", "SASL_USERNAME": "u", "SASL_PASSWORD_FILE": emptyFile}, errVar: "SASL_PASSWORD_FILE", errText: "empty"},
		{name: "no password", env: map[string]string{"SASL_MECHANISM": "PLAIN", "SASL_USERNAME": "u"}, errVar: "SASL_PASSWORD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(Prefix+"_"+k, v)
			}
			c, err := Load()
			if tc.errVar == "" {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, c)
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Var != tc.errVar || !strings.Contains(err.Error(), tc.errText) {
				t.Fatalf("want an error on %s mentioning %q, got %v", tc.errVar, tc.errText, err)
			}
			if strings.Contains(err.Error(), "file-secret") {
				t.Fatalf("error shows the secret: %v", err)
			}
		})
	}
}
