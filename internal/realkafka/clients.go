package realkafka

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Java member kinds (VerifiableConsumer) and kcat.
const (
	KindJavaEager  = "java-eager-range"
	KindJavaCoop   = "java-cooperative-sticky"
	KindJava848    = "java-consumer-protocol"
	KindKcat       = "kcat-range"
	rangeAssignor  = "org.apache.kafka.clients.consumer.RangeAssignor"
	coopAssignor   = "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"
	javaHeartbeat  = "1000"
	javaPollPeriod = "max.poll.interval.ms"
)

// MemberOptions are common to every member kind.
type MemberOptions struct {
	Name            string
	Group           string
	Topic           string
	Bootstrap       []string
	SessionTimeout  time.Duration // classic only; KIP-848 uses the broker's
	MaxPollInterval time.Duration // Java and kcat: leave when not polled
	// Verbose makes the member print every record, so that a paused
	// output blocks its poll loop quickly.
	Verbose   bool
	ConfigDir string // where the Java consumer.config file is written
}

// StartVerifiableConsumer starts Apache's VerifiableConsumer of kind
// KindJavaEager, KindJavaCoop or KindJava848, committing synchronously
// after every poll.
func (c *Cluster) StartVerifiableConsumer(kind string, o MemberOptions) (*Member, error) {
	args := []string{"--bootstrap-server", Bootstrap(o.Bootstrap), "--topic", o.Topic, "--group-id", o.Group, "--reset-policy", "earliest"}
	props := fmt.Sprintf("client.id=%s\n%s=%d\nheartbeat.interval.ms=%s\n", o.Name, javaPollPeriod, o.MaxPollInterval.Milliseconds(), javaHeartbeat)
	switch kind {
	case KindJavaEager:
		args = append(args, "--assignment-strategy", rangeAssignor, "--session-timeout", ms(o.SessionTimeout))
	case KindJavaCoop:
		args = append(args, "--assignment-strategy", coopAssignor, "--session-timeout", ms(o.SessionTimeout))
	case KindJava848:
		args = append(args, "--group-protocol", "consumer")
		props = fmt.Sprintf("client.id=%s\n%s=%d\n", o.Name, javaPollPeriod, o.MaxPollInterval.Milliseconds())
	default:
		return nil, fmt.Errorf("not a Java member kind: %s", kind)
	}
	if o.Verbose {
		args = append(args, "--verbose")
	}
	cfgFile, err := writeTemp(o.ConfigDir, o.Name+".properties", props)
	if err != nil {
		return nil, err
	}
	args = append(args, "--consumer.config", cfgFile)
	m := newMember(kind, o.Group)
	p, err := c.StartJava(o.Name, VerifiableConsumer, m.onJSONLine, nil, args...)
	if err != nil {
		return nil, err
	}
	m.Proc = p
	return m, nil
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// kcatRebalance matches kcat's own report of a rebalance:
// "% Group G rebalanced (memberid M): assigned: t [0], t [1]".
var kcatRebalance = regexp.MustCompile(`^% Group (\S+) rebalanced \(memberid [^)]*\): (assigned|revoked): ?(.*)$`)
var kcatPartition = regexp.MustCompile(`(\S+) \[(\d+)\]`)

// StartKcat starts kcat (librdkafka) as a balanced consumer with the range
// assignor, auto-committing.
func StartKcat(o MemberOptions) (*Member, error) {
	bin, err := exec.LookPath("kcat")
	if err != nil {
		return nil, fmt.Errorf("kcat not installed (scripts/install-test-deps.sh installs it): %w", err)
	}
	args := []string{"-b", Bootstrap(o.Bootstrap), "-G", o.Group, "-o", "beginning", "-u",
		"-X", "client.id=" + o.Name,
		"-X", "partition.assignment.strategy=range",
		"-X", "session.timeout.ms=" + ms(o.SessionTimeout),
		"-X", "heartbeat.interval.ms=1000",
		"-X", "max.poll.interval.ms=" + ms(o.MaxPollInterval),
		"-X", "auto.commit.interval.ms=200",
		// A broker whose metadata does not list a topic created a moment
		// ago makes librdkafka wait for its next refresh (5 min by
		// default) before it joins: refresh every second instead.
		"-X", "topic.metadata.refresh.interval.ms=1000",
		"-f", recordLinePrefix + "%t %p %o %s\n", o.Topic}
	m := newMember(KindKcat, o.Group)
	p, err := StartProc(o.Name, nil, nil, m.onKcatLine, bin, args...)
	if err != nil {
		return nil, err
	}
	m.Proc = p
	return m, nil
}

func (m *Member) onKcatLine(line string) {
	sub := kcatRebalance.FindStringSubmatch(line)
	if sub == nil {
		if strings.HasPrefix(line, "% Waiting for group rebalance") {
			m.add(Event{Time: time.Now(), Name: EvStartup, Generation: -1})
		}
		return
	}
	e := Event{Time: time.Now(), Name: EvAssigned, Generation: -1}
	if sub[2] == "revoked" {
		e.Name = EvRevoked
	}
	for _, pm := range kcatPartition.FindAllStringSubmatch(sub[3], -1) {
		p, _ := strconv.Atoi(pm[2])
		e.Partitions = append(e.Partitions, TopicPartition{Topic: pm[1], Partition: int32(p)})
	}
	m.add(e)
}
