package e2e

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// The Prometheus parser module is not a dependency of this project, so
// syntax is checked by promtool, and this file only does what promtool
// cannot: list the metric selectors an expression uses, with their label
// matchers, so the names can be compared with what the exporter exports.

// selector is one vector selector: a metric name and its label matchers.
type selector struct {
	Metric   string
	Matchers []matcher
}

type matcher struct {
	Name, Op, Value string
}

type token struct {
	kind byte // 'i' identifier, 's' string, 'n' number or duration, 'p' punctuation
	text string
}

// tokenize splits PromQL into identifiers, strings, numbers and
// punctuation; comments and whitespace are dropped.
func tokenize(expr string) ([]token, error) {
	var toks []token
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			var sb strings.Builder
			for ; j < len(expr) && expr[j] != c; j++ {
				if expr[j] == '\\' && c != '`' && j+1 < len(expr) {
					j++
				}
				sb.WriteByte(expr[j])
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string at %d in %q", i, expr)
			}
			toks = append(toks, token{'s', sb.String()})
			i = j + 1
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdentChar(expr[j]) {
				j++
			}
			toks = append(toks, token{'i', expr[i:j]})
			i = j
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(expr) && (isIdentChar(expr[j]) || expr[j] == '.') {
				j++
			}
			toks = append(toks, token{'n', expr[i:j]})
			i = j
		default:
			// Two-character operators matter only inside matchers.
			if i+1 < len(expr) {
				if two := expr[i : i+2]; two == "=~" || two == "!~" || two == "!=" || two == "==" || two == ">=" || two == "<=" {
					toks = append(toks, token{'p', two})
					i += 2
					continue
				}
			}
			toks = append(toks, token{'p', string(c)})
			i++
		}
	}
	return toks, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

var (
	// Words followed by a parenthesised list of label names.
	labelListWords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	// Words that are never metric names when not followed by "(".
	promqlKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
		"inf": true, "nan": true, "Inf": true, "NaN": true}
)

// selectorsOf lists the vector selectors of a PromQL expression.
func selectorsOf(expr string) ([]selector, error) {
	toks, err := tokenize(expr)
	if err != nil {
		return nil, err
	}
	var out []selector
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		next := func(k int) token {
			if i+k < len(toks) {
				return toks[i+k]
			}
			return token{}
		}
		switch {
		case tk.kind == 'p' && tk.text == "[":
			for i < len(toks) && toks[i].text != "]" {
				i++
			}
		case tk.kind == 'p' && tk.text == "{":
			return nil, fmt.Errorf("selector without a metric name in %q", expr)
		case tk.kind != 'i':
		case labelListWords[tk.text]:
			if next(1).text == "(" {
				for i < len(toks) && toks[i].text != ")" {
					i++
				}
			}
		case next(1).text == "(" || promqlKeywords[tk.text]:
			// a function or an aggregation, or an operator word
		case next(1).kind == 'i' && (next(1).text == "by" || next(1).text == "without"):
			// aggregation with its grouping before the parenthesis
		default:
			sel := selector{Metric: tk.text}
			if next(1).text == "{" {
				i += 2
				for i < len(toks) && toks[i].text != "}" {
					if toks[i].text == "," {
						i++
						continue
					}
					if i+2 >= len(toks) || toks[i].kind != 'i' || toks[i+2].kind != 's' {
						return nil, fmt.Errorf("cannot read label matcher of %s in %q", sel.Metric, expr)
					}
					sel.Matchers = append(sel.Matchers, matcher{toks[i].text, toks[i+1].text, toks[i+2].text})
					i += 3
				}
			}
			out = append(out, sel)
		}
	}
	return out, nil
}

// grafanaVar matches $name, ${name} and ${name:format}.
var grafanaVar = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[A-Za-z]+)?\}|\$([A-Za-z0-9_]+)`)

// substitute replaces Grafana variables with values, failing on any
// variable it has no value for (a typo in a dashboard would otherwise go
// unnoticed).
func substitute(expr string, values map[string]string) (string, error) {
	var missing []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		v, ok := values[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no value for variable(s) %v in %q", missing, expr)
	}
	return out, nil
}

// labelValuesQuery splits a Grafana label_values(selector, label) variable
// query.
var labelValuesQuery = regexp.MustCompile(`^\s*label_values\(\s*(.+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

func TestSelectorsOf(t *testing.T) {
	cases := []struct {
		expr string
		want []selector
	}{
		{`sum by (job, instance) (rate(a_total{x="1", y=~"a|b"}[5m])) > 0 and on (job) up == 0`,
			[]selector{{"a_total", []matcher{{"x", "=", "1"}, {"y", "=~", "a|b"}}}, {"up", nil}}},
		{`histogram_quantile(0.99, sum without (pod) (rate(h_bucket[$__rate_interval])))`, []selector{{"h_bucket", nil}}},
		{`count(ALERTS{alertstate="firing"}) or vector(0)`, []selector{{"ALERTS", []matcher{{"alertstate", "=", "firing"}}}}},
		{`rec:metric:sum * 3600 > bool 60 unless ignoring(a) b offset 5m`, []selector{{"rec:metric:sum", nil}, {"b", nil}}},
		{`time() - ts_seconds{l!="x"}`, []selector{{"ts_seconds", []matcher{{"l", "!=", "x"}}}}},
	}
	for _, c := range cases {
		got, err := selectorsOf(c.expr)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.expr, got, c.want)
		}
	}
	if _, err := selectorsOf(`{__name__="x"}`); err == nil {
		t.Error("a selector without a metric name was accepted")
	}
}

func TestSubstitute(t *testing.T) {
	vals := map[string]string{"a": "1", "__rate_interval": "5m"}
	got, err := substitute(`x{l=~"$a"}[$__rate_interval] ${a:regex}`, vals)
	if err != nil || got != `x{l=~"1"}[5m] 1` {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := substitute(`x{l=~"$typo"}`, vals); err == nil {
		t.Error("an unknown variable was accepted")
	}
}
