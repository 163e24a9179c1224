package kafka

import "github.com/IBM/sarama"

// requestVersions is the highest version of each request the configured
// KAFKA_VERSION allows. sarama negotiates each request down to what the
// broker it goes to advertises (from the ApiVersions exchange it makes on
// every connect), so these are only the caps the operator asked for; the
// requests are built at these versions and sarama lowers them.
type requestVersions struct {
	listGroups, describeGroups, consumerGroupDescribe, findCoordinator, offsetFetch, listOffsets, fetch int16
}

func versionsFor(v sarama.KafkaVersion) requestVersions {
	pick := func(table []struct {
		since sarama.KafkaVersion
		ver   int16
	}) int16 {
		for _, e := range table {
			if v.IsAtLeast(e.since) {
				return e.ver
			}
		}
		return -1
	}
	type e = struct {
		since sarama.KafkaVersion
		ver   int16
	}
	return requestVersions{
		listGroups:     pick([]e{{sarama.V3_8_0_0, 5}, {sarama.V2_6_0_0, 4}, {sarama.V2_4_0_0, 3}, {sarama.V2_0_0_0, 2}, {sarama.V0_11_0_0, 1}, {sarama.V0_9_0_0, 0}}),
		describeGroups: pick([]e{{sarama.V2_4_0_0, 5}, {sarama.V2_3_0_0, 3}, {sarama.V2_0_0_0, 2}, {sarama.V0_11_0_0, 1}, {sarama.V0_9_0_0, 0}}),
		// FindCoordinator v0 is the GroupCoordinator request of 0.9.
		findCoordinator:       pick([]e{{sarama.V2_4_0_0, 3}, {sarama.V2_0_0_0, 2}, {sarama.V0_11_0_0, 1}, {sarama.V0_9_0_0, 0}}),
		consumerGroupDescribe: pick([]e{{sarama.V4_0_0_0, 1}, {sarama.V3_7_0_0, 0}}),
		offsetFetch:           pick([]e{{sarama.V3_0_0_0, 8}, {sarama.V2_5_0_0, 7}, {sarama.V2_4_0_0, 6}, {sarama.V2_1_0_0, 5}, {sarama.V2_0_0_0, 4}, {sarama.V0_11_0_0, 3}, {sarama.V0_10_2_0, 2}}),
		listOffsets:           sarama.NewOffsetRequest(v).Version,
		// Fetch v10 reads zstd-compressed batches; v4 is the oldest with
		// record batches.
		fetch: pick([]e{{sarama.V2_1_0_0, 10}, {sarama.V0_11_0_0, 4}}),
	}
}
