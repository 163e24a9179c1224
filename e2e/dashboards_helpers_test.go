package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// What a dashboard query measures, read from its metric names (the
// Prometheus naming conventions: _seconds, _timestamp_seconds, _bytes,
// _total, _info) and from what the expression does to them.
type measure string

const (
	mSeconds     measure = "seconds"
	mTimestamp   measure = "unix timestamp in seconds"
	mTimestampMS measure = "unix timestamp in milliseconds"
	mBytes       measure = "bytes"
	mPerSecond   measure = "a rate per second"
	mPerHour     measure = "a rate per hour"
	mCount       measure = "a count"
	mBool        measure = "a 0/1 boolean"
	mEnum        measure = "an enumeration encoded as numbers"
	mInfo        measure = "an info metric (value 1)"
)

// allowedUnits are the Grafana units that display each measure right.
var allowedUnits = map[measure][]string{
	mSeconds:     {units.Seconds, units.DurationSeconds, units.DurationInDaysHoursMinutesSeconds},
	mTimestamp:   nil, // Grafana's dateTime units want milliseconds: multiply by 1000, or show time() - x in s
	mTimestampMS: {units.DateTimeFromNow, units.DatetimeISO, units.DatetimeISONotToday, units.DatetimeLocal, units.DatetimeDefault},
	mBytes:       {units.BytesIEC, units.BytesSI},
	mPerSecond:   {units.CountsPerSecond, units.OpsPerSecond, units.RequestsPerSecond, units.ReadsPerSecond, units.WritesPerSecond},
	mPerHour:     {"suffix:/h"},
	mCount:       {units.Short, units.NoUnit},
	mBool:        {units.NoUnit, units.PercentUnit},
	mEnum:        {units.NoUnit},
	mInfo:        {units.NoUnit, units.Short},
}

// Gauges whose name does not tell their kind.
var (
	boolMetrics = map[string]bool{"up": true, "kafka_rebalance_exporter_up": true, "kafka_consumergroup_rebalancing": true}
	// One series per possible value, the current one 1 (StateSet).
	oneHotMetrics = map[string]bool{"kafka_consumergroup_state": true, "kafka_consumergroup_status": true}
)

var (
	enumEncoding = regexp.MustCompile(`\}\s*\*\s*\d+\s+or\s`)
	outerAgg     = regexp.MustCompile(`^\s*(sum|min|max|avg|count|topk|bottomk)\b`)
	timesN       = regexp.MustCompile(`\*\s*(\d+)\s*$`)
)

// measureOf tells what a dashboard expression measures.
func measureOf(expr string) (measure, error) {
	sels, err := selectorsOf(expr)
	if err != nil {
		return "", err
	}
	if len(sels) == 0 {
		return "", fmt.Errorf("no metric in %q", expr)
	}
	name := sels[0].Metric
	if name == "ALERTS" {
		return mCount, nil
	}
	for _, s := range sels[1:] {
		if s.Metric != name && !(strings.Contains(expr, " and ") || strings.Contains(expr, "/")) {
			if k1, k2 := nameMeasure(name), nameMeasure(s.Metric); k1 != k2 {
				return "", fmt.Errorf("%s (%s) and %s (%s) combined", name, k1, s.Metric, k2)
			}
		}
	}
	agg := ""
	if m := outerAgg.FindStringSubmatch(expr); m != nil {
		agg = m[1]
	}
	factor := ""
	if m := timesN.FindStringSubmatch(expr); m != nil {
		factor = m[1]
	}
	switch {
	case enumEncoding.MatchString(expr):
		return mEnum, nil
	case strings.Contains(expr, "histogram_quantile("):
		return nameMeasure(strings.TrimSuffix(name, "_bucket")), nil
	case strings.HasSuffix(name, "_sum") && strings.Contains(expr, "/") && strings.Contains(expr, strings.TrimSuffix(name, "_sum")+"_count"):
		return nameMeasure(strings.TrimSuffix(name, "_sum")), nil // a mean
	case agg == "count":
		return mCount, nil
	case strings.Contains(expr, "rate("):
		if factor == "3600" {
			return mPerHour, nil
		}
		return mPerSecond, nil
	case strings.Contains(expr, "increase(") || strings.Contains(expr, "changes("):
		return mCount, nil
	}
	k := nameMeasure(name)
	switch {
	case k == mTimestamp && strings.Contains(expr, "time() -"):
		return mSeconds, nil
	case k == mTimestamp && factor == "1000":
		return mTimestampMS, nil
	case k == mBool && (agg == "sum" || agg == "topk"):
		return mCount, nil // how many are true
	case k == mBool && agg == "avg":
		return mBool, nil // a ratio: percentunit
	case oneHotMetrics[name]:
		if agg == "sum" {
			return mCount, nil // how many are in each state
		}
		return mBool, nil
	}
	return k, nil
}

// nameMeasure is what a metric name says it measures. Recording rules
// (level:metric:operations) measure what their operation makes of the
// metric.
func nameMeasure(name string) measure {
	if parts := strings.Split(name, ":"); len(parts) == 3 {
		switch op := parts[2]; {
		case strings.HasPrefix(op, "increase"), op == "count":
			return mCount
		case strings.HasPrefix(op, "rate"):
			return mPerSecond
		}
		name = parts[1]
	}
	switch {
	case strings.HasSuffix(name, "_timestamp_seconds"):
		return mTimestamp
	case strings.HasSuffix(name, "_seconds"):
		return mSeconds
	case strings.HasSuffix(name, "_bytes"):
		return mBytes
	case strings.HasSuffix(name, "_info"):
		return mInfo
	case boolMetrics[name] || oneHotMetrics[name]:
		return mBool
	}
	return mCount
}

// targetUnit is the unit Grafana applies to one target's fields: the
// panel's default, or a byFrameRefID override's. Other matchers that set a
// unit cannot be tied to a target statically: ok is false.
func targetUnit(p panel, refID string) (unit string, ok bool) {
	unit = p.FieldConfig.Defaults.Unit
	for _, o := range p.FieldConfig.Overrides {
		for _, prop := range o.Properties {
			if prop.ID != "unit" {
				continue
			}
			if o.Matcher.ID != "byFrameRefID" {
				return "", false
			}
			if o.Matcher.Options == refID {
				unit = fmt.Sprint(prop.Value)
			}
		}
	}
	return unit, true
}

// unitError tells why unit does not display m, or nil.
func unitError(m measure, unit string) error {
	allowed := allowedUnits[m]
	if slices.Contains(allowed, unit) {
		return nil
	}
	if len(allowed) == 0 {
		return fmt.Errorf("it measures %s, which no Grafana unit displays: multiply by 1000 for dateTime units, or show time() - x in s", m)
	}
	return fmt.Errorf("it measures %s: unit %q, want one of %v", m, unit, allowed)
}

// legendVar matches {{label}} in a legendFormat.
var legendVar = regexp.MustCompile(`\{\{\s*([^}\s]*)\s*\}\}`)

// legendLabels lists the labels a legendFormat names.
func legendLabels(format string) []string {
	var out []string
	for _, m := range legendVar.FindAllStringSubmatch(format, -1) {
		out = append(out, m[1])
	}
	return out
}

// renderLegend is Grafana's rendering of a legendFormat for one series.
func renderLegend(format string, labels map[string]string) string {
	return legendVar.ReplaceAllStringFunc(format, func(m string) string {
		return labels[legendVar.FindStringSubmatch(m)[1]]
	})
}
