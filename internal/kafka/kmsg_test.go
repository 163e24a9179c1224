package kafka_test

import "github.com/twmb/franz-go/pkg/kmsg"

type (
	kmsgRequest  = kmsg.Request
	kmsgResponse = kmsg.Response
)
