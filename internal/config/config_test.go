package config

import (
	"bytes"
	"fmt"
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
