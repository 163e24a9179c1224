// Package realkafka drives a real Apache Kafka cluster for the real-broker
// tests: it starts and stops the cluster of scripts/kafka-cluster.sh (with a
// watchdog that stops it when the test process dies), runs Apache's own Java
// tools from the cached classpath, runs real consumer-group members
// (VerifiableConsumer, kcat, sarama and franz-go) and parses their events,
// and reads the broker's own answers as oracles: kafka-consumer-groups
// tables, the GroupMetadata records in __consumer_offsets, and
// ConsumerGroupDescribe.
//
// It knows nothing of the exporter: the tests compare the exporter, run as
// a black box, with what this package reads from the broker.
package realkafka
