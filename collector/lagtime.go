package collector

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/status"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
)

var (
	descLagSeconds = prometheus.NewDesc("kafka_consumergroup_lag_seconds",
		"How long ago the partition's log end was at the group's committed offset: 0 when caught up; absent while the log end history is too short to say.", partitionLabels, nil)
	descMaxLagSeconds = prometheus.NewDesc("kafka_consumergroup_max_lag_seconds",
		"The group's largest kafka_consumergroup_lag_seconds.", groupLabels, nil)
	descStatus = prometheus.NewDesc("kafka_consumergroup_status",
		"Consumer health verdict over the recent offsets polls: 1 for the current status, 0 for the others (rules in docs/status.md).", []string{"consumergroup", "status"}, nil)
)

func describeLagTime(ch chan<- *prometheus.Desc) {
	ch <- descLagSeconds
	ch <- descMaxLagSeconds
	ch <- descStatus
}

func (c *Collector) collectLagTime(ch chan<- prometheus.Metric, s *store.Snapshot) {
	for _, g := range s.LagSeconds.Groups {
		for _, p := range g.Partitions {
			ch <- prometheus.MustNewConstMetric(descLagSeconds, prometheus.GaugeValue, p.Seconds, g.Group, p.Topic, strconv.Itoa(int(p.Partition)))
		}
		ch <- prometheus.MustNewConstMetric(descMaxLagSeconds, prometheus.GaugeValue, g.MaxSeconds, g.Group)
	}
	for _, name := range sortedKeys(s.Status) {
		cur := s.Status[name].Status
		for _, st := range status.Statuses {
			v := 0.0
			if st == cur {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descStatus, prometheus.GaugeValue, v, name, st)
		}
	}
}
