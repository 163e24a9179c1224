package realkafka

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/realkafka"
)

// A small copy of what e2e/dashboards_test.go reads of the dashboards: the
// two packages cannot share test code, and the dashboard model is too
// small to be worth a package of its own.

// dashQuery is one PromQL expression of a dashboard: a panel target, an
// annotation, or the selector of a label_values variable.
type dashQuery struct {
	Where   string // dashboard / panel / refId
	Expr    string
	Instant bool
	Label   string // label_values variables: the label whose values are listed
}

type dashPanel struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr    string `json:"expr"`
		RefID   string `json:"refId"`
		Instant bool   `json:"instant"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"` // collapsed rows
}

var labelValuesQuery = regexp.MustCompile(`^\s*label_values\(\s*(.+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

// dashboardQueries lists every expression of grafana/dashboards/*.json.
func dashboardQueries() ([]dashQuery, error) {
	root, err := realkafka.RepoRoot()
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(root, "grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no dashboards in grafana/dashboards: %v", err)
	}
	var out []dashQuery
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var d struct {
			UID         string      `json:"uid"`
			Panels      []dashPanel `json:"panels"`
			Annotations struct {
				List []struct {
					Name string `json:"name"`
					Expr string `json:"expr"`
				} `json:"list"`
			} `json:"annotations"`
			Templating struct {
				List []struct {
					Type       string `json:"type"`
					Name       string `json:"name"`
					Definition string `json:"definition"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		var walk func(ps []dashPanel)
		walk = func(ps []dashPanel) {
			for _, p := range ps {
				for _, tg := range p.Targets {
					out = append(out, dashQuery{Where: fmt.Sprintf("%s / %q / %s", d.UID, p.Title, tg.RefID), Expr: tg.Expr, Instant: tg.Instant})
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
		for _, a := range d.Annotations.List {
			if a.Expr != "" {
				out = append(out, dashQuery{Where: fmt.Sprintf("%s / annotation %q", d.UID, a.Name), Expr: a.Expr})
			}
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			m := labelValuesQuery.FindStringSubmatch(v.Definition)
			if m == nil {
				return nil, fmt.Errorf("%s: variable %s: only label_values(selector, label) is supported: %q", d.UID, v.Name, v.Definition)
			}
			out = append(out, dashQuery{Where: fmt.Sprintf("%s / variable %s", d.UID, v.Name), Expr: m[1], Label: m[2]})
		}
	}
	return out, nil
}

// grafanaVar matches $name, ${name} and ${name:format}.
var grafanaVar = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[A-Za-z]+)?\}|\$([A-Za-z0-9_]+)`)

// substitute replaces Grafana variables, failing on one it has no value for.
func substitute(expr string, values map[string]string) (string, error) {
	var missing []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		v, ok := values[sub[1]+sub[2]]
		if !ok {
			missing = append(missing, sub[1]+sub[2])
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no value for variable(s) %v in %q", missing, expr)
	}
	return out, nil
}

// promResults runs q as Grafana would (instant, or over the last three
// minutes; label_values through the series API) and tells how many series
// (or label values) came back.
func promResults(base string, q dashQuery, expr string) (int, error) {
	now := time.Now()
	start, end := strconv.FormatInt(now.Add(-3*time.Minute).Unix(), 10), strconv.FormatInt(now.Unix(), 10)
	if q.Label != "" {
		body, err := httpGet(base + "/api/v1/series?" + url.Values{"match[]": {expr}, "start": {start}, "end": {end}}.Encode())
		if err != nil {
			return 0, err
		}
		var r struct {
			Data []map[string]string `json:"data"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return 0, err
		}
		values := map[string]bool{}
		for _, s := range r.Data {
			if v, ok := s[q.Label]; ok {
				values[v] = true
			}
		}
		return len(values), nil
	}
	v := url.Values{"query": {expr}}
	endpoint := "/api/v1/query"
	if !q.Instant {
		endpoint = "/api/v1/query_range"
		v.Set("start", start)
		v.Set("end", end)
		v.Set("step", "2")
	}
	body, err := httpGet(base + endpoint + "?" + v.Encode())
	if err != nil {
		return 0, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, errors.New(r.Error)
	}
	return len(r.Data.Result), nil
}
