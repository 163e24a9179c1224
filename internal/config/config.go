// Package config is the single place where the exporter's settings are
// declared, defaulted, documented and validated. Everything comes from
// environment variables with the prefix Prefix, so that the same binary runs
// unchanged under systemd, Docker and Kubernetes.
package config

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/IBM/sarama"
	"github.com/kelseyhightower/envconfig"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/rs/zerolog"
)

// Prefix is the environment variable prefix of every setting.
const Prefix = "KRE"

// Config holds every setting. The `default` tags are the only place a
// default is declared; packages take the values as given. The `desc` tags
// are what `exporter -help` prints, so they are written for operators. A
// field tagged `secret:"true"` is masked by Redacted, so it never reaches
// a log.
type Config struct {
	Brokers           []string      `envconfig:"BROKERS" default:"localhost:9092" desc:"Comma-separated bootstrap brokers (host:port)."`
	ClientID          string        `envconfig:"CLIENT_ID" default:"kafka-rebalance-exporter" desc:"Kafka client.id the exporter announces to brokers."`
	KafkaVersion      string        `envconfig:"KAFKA_VERSION" default:"4.0.0" desc:"Highest Kafka protocol version to speak; requests are negotiated down to what each broker supports, so the default works with Kafka 2.x to 4.x."`
	PollInterval      time.Duration `envconfig:"POLL_INTERVAL" default:"10s" desc:"How often committed offsets and log offsets are read (lag, lag in seconds, status)."`
	GroupPollInterval time.Duration `envconfig:"GROUP_POLL_INTERVAL" default:"2s" desc:"How often group descriptions are read (state, members, generations, rebalances)."`
	RequestTimeout    time.Duration `envconfig:"REQUEST_TIMEOUT" default:"10s" desc:"Timeout of one Kafka request and of connecting to a broker."`
	StaleAfter        time.Duration `envconfig:"STALE_AFTER" default:"5m" desc:"A group, or a group's committed offsets, that no broker has answered for this long is dropped from the metrics rather than served stale; until then it is served with its true observation time."`

	GroupInclude string `envconfig:"GROUP_INCLUDE" default:".*" desc:"Regular expression (RE2, matched as FILTER_MODE says) of consumer groups to export (kafka_exporter: --group.filter)."`
	GroupExclude string `envconfig:"GROUP_EXCLUDE" default:"" desc:"Regular expression (RE2, matched as FILTER_MODE says) of consumer groups to leave out; wins over GROUP_INCLUDE; empty leaves out none (kafka_exporter: --group.exclude)."`
	TopicInclude string `envconfig:"TOPIC_INCLUDE" default:".*" desc:"Regular expression (RE2, matched as FILTER_MODE says) of topics to export (kafka_exporter: --topic.filter)."`
	TopicExclude string `envconfig:"TOPIC_EXCLUDE" default:"^__.*" desc:"Regular expression (RE2, matched as FILTER_MODE says) of topics to leave out; wins over TOPIC_INCLUDE. The default hides internal topics (names starting with __) in either mode; set it empty to show them, as kafka_exporter does (kafka_exporter: --topic.exclude)."`
	FilterMode   string `envconfig:"FILTER_MODE" default:"anchored" desc:"How GROUP_INCLUDE, GROUP_EXCLUDE, TOPIC_INCLUDE and TOPIC_EXCLUDE match a name: anchored (the whole name; . matches a newline too) or unanchored (anywhere in the name, as kafka_exporter's --group.filter, --group.exclude, --topic.filter and --topic.exclude match)."`

	Shards     int    `envconfig:"SHARDS" default:"1" desc:"Replicas that split the consumer groups between them (by a consistent hash of the group name)."`
	ShardIndex string `envconfig:"SHARD" default:"0" desc:"This replica's share: an index from 0 to SHARDS-1, or auto for the ordinal ending the pod name (POD_NAME, else the host name; a StatefulSet's name-N). Shard 0 also exports the topic and broker series."`

	ListenAddress   string        `envconfig:"LISTEN_ADDRESS" default:":9308" desc:"HTTP listen address (9308 is kafka_exporter's port)."`
	TelemetryPath   string        `envconfig:"TELEMETRY_PATH" default:"/metrics" desc:"Path under which metrics are served; not /, /healthz, /readyz or under /api/."`
	WebConfigFile   string        `envconfig:"WEB_CONFIG_FILE" desc:"exporter-toolkit web configuration file: TLS, mutual TLS, basic auth (check it with promtool check web-config). Empty serves plain HTTP."`
	APIEnabled      bool          `envconfig:"API_ENABLED" default:"true" desc:"Serve the JSON group API (/api/v1/groups); it shows client IDs and hosts."`
	WebReadTimeout  time.Duration `envconfig:"WEB_READ_TIMEOUT" default:"10s" desc:"HTTP: time to read a request, headers included."`
	WebWriteTimeout time.Duration `envconfig:"WEB_WRITE_TIMEOUT" default:"60s" desc:"HTTP: time to write a response; a scraper that stops reading is cut off after it."`
	WebIdleTimeout  time.Duration `envconfig:"WEB_IDLE_TIMEOUT" default:"30s" desc:"HTTP: how long an idle keep-alive connection is kept."`
	WebMaxScrapes   int           `envconfig:"WEB_MAX_SCRAPES" default:"10" desc:"Concurrent /metrics requests served; more get 503 at once. Scrapes of one snapshot share one rendering."`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info" desc:"Log level: debug, info, warn, error."`
	LogFormat       string        `envconfig:"LOG_FORMAT" default:"json" desc:"Log format: json or console."`

	TLSEnabled            bool   `envconfig:"TLS_ENABLED" default:"false" desc:"Connect to brokers with TLS."`
	TLSCAFile             string `envconfig:"TLS_CA_FILE" desc:"PEM file of CA certificates to verify brokers (system roots when empty)."`
	TLSCertFile           string `envconfig:"TLS_CERT_FILE" desc:"PEM client certificate for mutual TLS."`
	TLSKeyFile            string `envconfig:"TLS_KEY_FILE" desc:"PEM client private key for mutual TLS."`
	TLSServerName         string `envconfig:"TLS_SERVER_NAME" desc:"Server name to verify in broker certificates (default: the broker host)."`
	TLSInsecureSkipVerify bool   `envconfig:"TLS_INSECURE_SKIP_VERIFY" default:"false" desc:"Do not verify broker certificates (testing only)."`

	SASLMechanism    string `envconfig:"SASL_MECHANISM" desc:"SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER; empty disables SASL."`
	SASLUsername     string `envconfig:"SASL_USERNAME" desc:"SASL user name (PLAIN, SCRAM)."`
	SASLPassword     string `envconfig:"SASL_PASSWORD" secret:"true" desc:"SASL password (prefer SASL_PASSWORD_FILE)."`
	SASLPasswordFile string `envconfig:"SASL_PASSWORD_FILE" desc:"File whose content (trailing newline removed) is the SASL password; re-read when it changes, for new connections (PLAIN: the poll loops' clients are replaced)."`

	SASLOAuthTokenURL         string   `envconfig:"SASL_OAUTH_TOKEN_URL" desc:"OAUTHBEARER: the OAuth 2.0 token endpoint (http or https URL) the exporter asks for access tokens with the client-credentials grant."`
	SASLOAuthClientID         string   `envconfig:"SASL_OAUTH_CLIENT_ID" desc:"OAUTHBEARER: OAuth 2.0 client ID."`
	SASLOAuthClientSecret     string   `envconfig:"SASL_OAUTH_CLIENT_SECRET" secret:"true" desc:"OAUTHBEARER: OAuth 2.0 client secret (prefer SASL_OAUTH_CLIENT_SECRET_FILE)."`
	SASLOAuthClientSecretFile string   `envconfig:"SASL_OAUTH_CLIENT_SECRET_FILE" desc:"OAUTHBEARER: file whose content (trailing newline removed) is the client secret; re-read when it changes."`
	SASLOAuthScopes           []string `envconfig:"SASL_OAUTH_SCOPES" desc:"OAUTHBEARER: comma-separated scopes to request; empty requests none."`
	SASLOAuthAudience         string   `envconfig:"SASL_OAUTH_AUDIENCE" desc:"OAUTHBEARER: audience parameter added to token requests (some providers, e.g. Auth0, need it); empty adds none."`
	SASLOAuthExtensions       string   `envconfig:"SASL_OAUTH_EXTENSIONS" desc:"OAUTHBEARER: SASL extensions sent with the token, as key=value pairs separated by commas (Confluent Cloud: logicalCluster=lkc-...,identityPoolId=pool-...)."`

	MemberMetrics    bool `envconfig:"MEMBER_METRICS" default:"false" desc:"Export assigned partitions per member (labels client_id, client_host, member_id). Off by default: member identities churn."`
	RebalanceHistory int  `envconfig:"REBALANCE_HISTORY" default:"20" desc:"Rebalance events kept per group for /api/v1/groups."`

	RebalanceDurationBuckets bool   `envconfig:"REBALANCE_DURATION_BUCKETS" default:"false" desc:"Export the per-group rebalance duration histogram with all its buckets (13 more series per group); off, it has only the +Inf bucket, _sum and _count (mean durations, no quantiles)."`
	LagGranularity           string `envconfig:"LAG_GRANULARITY" default:"partition" desc:"Lag series: partition (per partition, per topic and per group), topic (no per-partition current_offset, lag, lag_seconds) or group (also lag_sum and current_offset_sum summed over topics, without a topic label)."`
	MaxGroups                int    `envconfig:"MAX_GROUPS" default:"0" desc:"Export at most this many groups (the first in name order); 0 exports all. kafka_rebalance_exporter_groups_not_exported says how many were left out."`
	ConstLabels              string `envconfig:"CONST_LABELS" default:"" desc:"Labels added to every series the exporter serves, as name=value pairs separated by commas, e.g. cluster=prod,region=eu (kafka_exporter: --kafka.labels). Names must not be ones the exporter writes itself (topic, consumergroup, ...)."`

	LagHistoryPoints    int  `envconfig:"LAG_HISTORY_POINTS" default:"64" desc:"Log-end offset points kept per partition for lag in seconds."`
	LagExact            bool `envconfig:"LAG_EXACT" default:"false" desc:"Read the timestamp of the record at each committed offset (one Fetch per lagging partition, cached) for exact lag in seconds instead of the estimate."`
	LagExactConcurrency int  `envconfig:"LAG_EXACT_CONCURRENCY" default:"4" desc:"Record timestamp reads (LAG_TIMESTAMP_READS_PER_POLL, LAG_EXACT) in flight at once."`
	LagExactCacheSize   int  `envconfig:"LAG_EXACT_CACHE_SIZE" default:"10000" desc:"Record timestamps cached (about 100 bytes each); hold at least the lagging group-partitions older than the history, or the oldest are read again every poll."`
	// LagTimestampReadsPerPoll bounds the record timestamp reads of one
	// offsets poll, in exact mode and out of it.
	LagTimestampReadsPerPoll int `envconfig:"LAG_TIMESTAMP_READS_PER_POLL" default:"1000" desc:"Record timestamps read per offsets poll (one small Fetch each, cached in LAG_EXACT_CACHE_SIZE; needs Read on the topics, skipped where the broker says it is not granted). Without LAG_EXACT only records older than the exporter's history are read, which lag in seconds could otherwise only bound from below; 0 reads none."`

	StatusWindow     int           `envconfig:"STATUS_WINDOW" default:"10" desc:"Offsets polls in the sliding window that decides kafka_consumergroup_status."`
	StatusStopAfter  time.Duration `envconfig:"STATUS_STOP_AFTER" default:"5m" desc:"STOP when no commit for this long while the usual commit interval is unknown (and at least this long otherwise)."`
	StatusStopFactor float64       `envconfig:"STATUS_STOP_FACTOR" default:"5" desc:"STOP when no commit for this many usual commit intervals (if longer than STATUS_STOP_AFTER)."`
	StatusErrLag     int64         `envconfig:"STATUS_ERR_LAG" default:"1000" desc:"Lag in records at which a stalled partition makes the group ERR instead of STALL."`

	OffsetsLogEnabled           bool          `envconfig:"OFFSETS_LOG_ENABLED" default:"false" desc:"Read the group coordinators' own log, the internal topic __consumer_offsets (needs Describe and Read on it): exact generations and rebalances of classic groups whatever their client, commits_total, the last commit time, members' session and rebalance timeouts. Read-only: no group, nothing committed."`
	OffsetsLogTopic             string        `envconfig:"OFFSETS_LOG_TOPIC" default:"__consumer_offsets" desc:"With OFFSETS_LOG_ENABLED: the topic to read (the broker's offsets.topic name)."`
	OffsetsLogStart             string        `envconfig:"OFFSETS_LOG_START" default:"earliest" desc:"With OFFSETS_LOG_ENABLED: where reading starts on every partition: earliest (the whole compacted log: every group's latest generation at once, then commits), latest, or a look-back such as 1h (groups that did not rebalance within it get their generation from the log at their next rebalance). Other metrics serve while it catches up."`
	OffsetsLogFetchMaxWait      time.Duration `envconfig:"OFFSETS_LOG_FETCH_MAX_WAIT" default:"500ms" desc:"With OFFSETS_LOG_ENABLED: how long a broker may hold a fetch when nothing is new; bounds how late a record is read. Shorter than REQUEST_TIMEOUT."`
	OffsetsLogFetchMaxBytes     int32         `envconfig:"OFFSETS_LOG_FETCH_MAX_BYTES" default:"4194304" desc:"With OFFSETS_LOG_ENABLED: bytes one fetch response may carry, per broker; the reader holds at most brokers x this of fetched data."`
	OffsetsLogPartitionMaxBytes int32         `envconfig:"OFFSETS_LOG_PARTITION_MAX_BYTES" default:"1048576" desc:"With OFFSETS_LOG_ENABLED: bytes per partition in one fetch (grown up to OFFSETS_LOG_FETCH_MAX_BYTES for a larger record batch)."`
	OffsetsLogRetryMax          time.Duration `envconfig:"OFFSETS_LOG_RETRY_MAX" default:"30s" desc:"With OFFSETS_LOG_ENABLED: longest wait between attempts while the topic or a partition cannot be read (denied, absent, no leader); the backoff starts at 1s."`

	DemoChurnInterval time.Duration `envconfig:"DEMO_CHURN_INTERVAL" default:"60s" desc:"With -demo and loadgen: how often the churning demo groups gain or lose a member."`
	DemoStorm         bool          `envconfig:"DEMO_STORM" default:"false" desc:"With -demo and loadgen: make the churning demo groups rebalance every few seconds (a rebalance storm)."`
	DemoProduceRate   int           `envconfig:"DEMO_PRODUCE_RATE" default:"200" desc:"With -demo and loadgen: records per second the demo producer writes over all demo topics."`

	// Compiled forms, filled by Load.
	Filters Filters             `ignored:"true"`
	Version sarama.KafkaVersion `ignored:"true"`
	// Labels is CONST_LABELS parsed: label name -> value.
	Labels map[string]string `ignored:"true"`
	// OAuthExtensions is SASL_OAUTH_EXTENSIONS parsed: key -> value.
	OAuthExtensions map[string]string `ignored:"true"`
	// OffsetsLog is the __consumer_offsets reader's settings, from the
	// OFFSETS_LOG_ variables; Enabled false leaves it off.
	OffsetsLog OffsetsLog `ignored:"true"`
}

// Filters decides which groups and topics are exported.
type Filters struct {
	GroupInclude, GroupExclude *regexp.Regexp
	TopicInclude, TopicExclude *regexp.Regexp
	Shard                      Shard
}

// Group reports whether a consumer group is exported: the regular
// expressions let it through and this shard owns it.
func (f Filters) Group(name string) bool {
	return keep(name, f.GroupInclude, f.GroupExclude) && f.Shard.Owns(name)
}

// Topic reports whether a topic is exported.
func (f Filters) Topic(name string) bool { return keep(name, f.TopicInclude, f.TopicExclude) }

func keep(name string, include, exclude *regexp.Regexp) bool {
	if include != nil && !include.MatchString(name) {
		return false
	}
	return exclude == nil || !exclude.MatchString(name)
}

// Error names the variable at fault, so the one-line message tells the
// operator exactly what to fix.
type Error struct {
	Var string
	Msg string
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid configuration: %s_%s: %s", Prefix, e.Var, e.Msg)
}

// Load reads and validates the configuration from the environment.
func Load() (*Config, error) {
	var c Config
	if err := envconfig.Process(Prefix, &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{Var: pe.KeyName[len(Prefix)+1:], Msg: fmt.Sprintf("cannot parse %q as %s", pe.Value, pe.TypeName)}
		}
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) validate() error {
	brokers := c.Brokers[:0]
	for _, b := range c.Brokers {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	c.Brokers = brokers
	if len(c.Brokers) == 0 {
		return &Error{"BROKERS", "at least one broker is required"}
	}
	for _, b := range c.Brokers {
		if i := strings.LastIndex(b, ":"); i <= 0 || i == len(b)-1 {
			return &Error{"BROKERS", fmt.Sprintf("%q is not host:port", b)}
		}
	}
	v, err := sarama.ParseKafkaVersion(c.KafkaVersion)
	if err != nil {
		return &Error{"KAFKA_VERSION", err.Error()}
	}
	c.Version = v
	for _, d := range []struct {
		name string
		val  time.Duration
	}{{"POLL_INTERVAL", c.PollInterval}, {"GROUP_POLL_INTERVAL", c.GroupPollInterval}, {"REQUEST_TIMEOUT", c.RequestTimeout}, {"STALE_AFTER", c.StaleAfter}} {
		if d.val <= 0 {
			return &Error{d.name, "must be a positive duration such as 10s"}
		}
	}
	if c.Filters.Shard, err = parseShard(c.Shards, c.ShardIndex); err != nil {
		return err
	}
	if c.FilterMode != FilterAnchored && c.FilterMode != FilterUnanchored {
		return &Error{"FILTER_MODE", fmt.Sprintf("%q is not anchored or unanchored", c.FilterMode)}
	}
	if c.Filters.GroupInclude, err = compileFilter("GROUP_INCLUDE", c.GroupInclude, c.FilterMode); err != nil {
		return err
	}
	if c.Filters.GroupExclude, err = compileFilter("GROUP_EXCLUDE", c.GroupExclude, c.FilterMode); err != nil {
		return err
	}
	if c.Filters.TopicInclude, err = compileFilter("TOPIC_INCLUDE", c.TopicInclude, c.FilterMode); err != nil {
		return err
	}
	if c.Filters.TopicExclude, err = compileFilter("TOPIC_EXCLUDE", c.TopicExclude, c.FilterMode); err != nil {
		return err
	}
	if c.Labels, err = parseConstLabels(c.ConstLabels); err != nil {
		return err
	}
	if err := c.validateOffsetsLog(); err != nil {
		return err
	}
	if err := validTelemetryPath(c.TelemetryPath); err != nil {
		return err
	}
	if c.WebConfigFile != "" {
		if err := web.Validate(c.WebConfigFile); err != nil {
			return &Error{"WEB_CONFIG_FILE", err.Error()}
		}
	}
	if c.WebMaxScrapes < 1 {
		return &Error{"WEB_MAX_SCRAPES", "must be at least 1"}
	}
	for _, d := range []struct {
		name string
		val  time.Duration
	}{{"WEB_READ_TIMEOUT", c.WebReadTimeout}, {"WEB_WRITE_TIMEOUT", c.WebWriteTimeout}, {"WEB_IDLE_TIMEOUT", c.WebIdleTimeout}} {
		if d.val <= 0 {
			return &Error{d.name, "must be a positive duration"}
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return &Error{"LOG_LEVEL", fmt.Sprintf("%q is not one of debug, info, warn, error", c.LogLevel)}
	}
	switch c.LogFormat {
	case "json", "console":
	default:
		return &Error{"LOG_FORMAT", fmt.Sprintf("%q is not json or console", c.LogFormat)}
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if err := c.validateSASL(); err != nil {
		return err
	}
	switch c.LagGranularity {
	case "partition", "topic", "group":
	default:
		return &Error{"LAG_GRANULARITY", fmt.Sprintf("%q is not partition, topic or group", c.LagGranularity)}
	}
	if c.MaxGroups < 0 {
		return &Error{"MAX_GROUPS", "must not be negative"}
	}
	if c.RebalanceHistory < 0 {
		return &Error{"REBALANCE_HISTORY", "must not be negative"}
	}
	if c.LagHistoryPoints < 4 {
		return &Error{"LAG_HISTORY_POINTS", "must be at least 4"}
	}
	if c.LagExactConcurrency < 1 {
		return &Error{"LAG_EXACT_CONCURRENCY", "must be at least 1"}
	}
	if c.LagExactCacheSize < 1 {
		return &Error{"LAG_EXACT_CACHE_SIZE", "must be at least 1"}
	}
	if c.LagTimestampReadsPerPoll < 0 {
		return &Error{"LAG_TIMESTAMP_READS_PER_POLL", "must not be negative"}
	}
	if c.LagExact && c.LagTimestampReadsPerPoll == 0 {
		return &Error{"LAG_TIMESTAMP_READS_PER_POLL", "must be at least 1 with LAG_EXACT=true"}
	}
	if c.StatusWindow < 2 {
		return &Error{"STATUS_WINDOW", "must be at least 2 polls"}
	}
	if c.StatusStopAfter <= 0 {
		return &Error{"STATUS_STOP_AFTER", "must be a positive duration"}
	}
	if c.StatusStopFactor < 1 {
		return &Error{"STATUS_STOP_FACTOR", "must be at least 1"}
	}
	if c.StatusErrLag < 1 {
		return &Error{"STATUS_ERR_LAG", "must be at least 1"}
	}
	if c.DemoChurnInterval <= 0 {
		return &Error{"DEMO_CHURN_INTERVAL", "must be a positive duration"}
	}
	if c.DemoProduceRate < 1 {
		return &Error{"DEMO_PRODUCE_RATE", "must be at least 1"}
	}
	return nil
}

func (c *Config) validateTLS() error {
	if !c.TLSEnabled {
		return nil
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return &Error{"TLS_CERT_FILE", "TLS_CERT_FILE and TLS_KEY_FILE must be set together"}
	}
	for name, f := range map[string]string{"TLS_CA_FILE": c.TLSCAFile, "TLS_CERT_FILE": c.TLSCertFile, "TLS_KEY_FILE": c.TLSKeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return &Error{name, err.Error()}
		}
	}
	return nil
}

func (c *Config) validateSASL() error {
	oauthSet := c.SASLOAuthTokenURL != "" || c.SASLOAuthClientID != "" || c.SASLOAuthClientSecret != "" ||
		c.SASLOAuthClientSecretFile != "" || len(c.SASLOAuthScopes) > 0 || c.SASLOAuthAudience != "" || c.SASLOAuthExtensions != ""
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
		if oauthSet {
			return &Error{"SASL_MECHANISM", "SASL_OAUTH_* settings are given: set SASL_MECHANISM=OAUTHBEARER"}
		}
		return nil
	case sarama.SASLTypeOAuth:
		c.SASLMechanism = sarama.SASLTypeOAuth
		return c.validateOAuth()
	case sarama.SASLTypePlaintext, sarama.SASLTypeSCRAMSHA256, sarama.SASLTypeSCRAMSHA512:
		c.SASLMechanism = strings.ToUpper(c.SASLMechanism)
	default:
		return &Error{"SASL_MECHANISM", fmt.Sprintf("%q is not PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER", c.SASLMechanism)}
	}
	if oauthSet {
		return &Error{"SASL_MECHANISM", fmt.Sprintf("SASL_OAUTH_* settings need SASL_MECHANISM=OAUTHBEARER, not %s", c.SASLMechanism)}
	}
	if c.SASLUsername == "" {
		return &Error{"SASL_USERNAME", "required when SASL_MECHANISM is set"}
	}
	if c.SASLPasswordFile != "" {
		if c.SASLPassword != "" {
			return &Error{"SASL_PASSWORD_FILE", "set either SASL_PASSWORD or SASL_PASSWORD_FILE, not both"}
		}
		pw, err := ReadSecretFile(c.SASLPasswordFile)
		if err != nil {
			return &Error{"SASL_PASSWORD_FILE", err.Error()}
		}
		c.SASLPassword = pw
	}
	if c.SASLPassword == "" {
		return &Error{"SASL_PASSWORD", "required when SASL_MECHANISM is set (or use SASL_PASSWORD_FILE)"}
	}
	return nil
}

// validateOAuth checks the OAUTHBEARER settings: a token endpoint, a
// client and its secret, extensions as RFC 7628 allows them.
func (c *Config) validateOAuth() error {
	if c.SASLUsername != "" || c.SASLPassword != "" || c.SASLPasswordFile != "" {
		return &Error{"SASL_USERNAME", "SASL_USERNAME, SASL_PASSWORD and SASL_PASSWORD_FILE are not used with OAUTHBEARER; set SASL_OAUTH_CLIENT_ID and SASL_OAUTH_CLIENT_SECRET(_FILE)"}
	}
	if c.SASLOAuthTokenURL == "" {
		return &Error{"SASL_OAUTH_TOKEN_URL", "required with SASL_MECHANISM=OAUTHBEARER"}
	}
	u, err := url.Parse(c.SASLOAuthTokenURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return &Error{"SASL_OAUTH_TOKEN_URL", fmt.Sprintf("%q is not an http or https URL", c.SASLOAuthTokenURL)}
	}
	if u.User != nil {
		return &Error{"SASL_OAUTH_TOKEN_URL", "must not hold credentials; use SASL_OAUTH_CLIENT_ID and SASL_OAUTH_CLIENT_SECRET(_FILE)"}
	}
	if c.SASLOAuthClientID == "" {
		return &Error{"SASL_OAUTH_CLIENT_ID", "required with SASL_MECHANISM=OAUTHBEARER"}
	}
	if c.SASLOAuthClientSecretFile != "" {
		if c.SASLOAuthClientSecret != "" {
			return &Error{"SASL_OAUTH_CLIENT_SECRET_FILE", "set either SASL_OAUTH_CLIENT_SECRET or SASL_OAUTH_CLIENT_SECRET_FILE, not both"}
		}
		s, err := ReadSecretFile(c.SASLOAuthClientSecretFile)
		if err != nil {
			return &Error{"SASL_OAUTH_CLIENT_SECRET_FILE", err.Error()}
		}
		c.SASLOAuthClientSecret = s
	}
	if c.SASLOAuthClientSecret == "" {
		return &Error{"SASL_OAUTH_CLIENT_SECRET", "required with SASL_MECHANISM=OAUTHBEARER (or use SASL_OAUTH_CLIENT_SECRET_FILE)"}
	}
	scopes := c.SASLOAuthScopes[:0]
	for _, s := range c.SASLOAuthScopes {
		if s = strings.TrimSpace(s); s != "" {
			if strings.ContainsAny(s, " \"") {
				return &Error{"SASL_OAUTH_SCOPES", fmt.Sprintf("scope %q holds a space or a quote", s)}
			}
			scopes = append(scopes, s)
		}
	}
	c.SASLOAuthScopes = scopes
	c.OAuthExtensions, err = parseOAuthExtensions(c.SASLOAuthExtensions)
	return err
}

// oauthExtensionKey and oauthExtensionValue are RFC 7628's key and value
// grammars (section 3.1).
var (
	oauthExtensionKey   = regexp.MustCompile(`^[A-Za-z]+$`)
	oauthExtensionValue = regexp.MustCompile(`^[\x21-\x7E \t\r\n]+$`)
)

func parseOAuthExtensions(spec string) (map[string]string, error) {
	ext := map[string]string{}
	for _, item := range strings.Split(spec, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case !ok || v == "":
			return nil, &Error{"SASL_OAUTH_EXTENSIONS", fmt.Sprintf("%q is not key=value with a value", item)}
		case !oauthExtensionKey.MatchString(k):
			return nil, &Error{"SASL_OAUTH_EXTENSIONS", fmt.Sprintf("key %q: extension keys are letters only", k)}
		case k == "auth":
			return nil, &Error{"SASL_OAUTH_EXTENSIONS", `key "auth" is reserved for the token`}
		case !oauthExtensionValue.MatchString(v):
			return nil, &Error{"SASL_OAUTH_EXTENSIONS", fmt.Sprintf("value of %q holds characters RFC 7628 does not allow", k)}
		}
		if _, dup := ext[k]; dup {
			return nil, &Error{"SASL_OAUTH_EXTENSIONS", fmt.Sprintf("key %q given twice", k)}
		}
		ext[k] = v
	}
	if len(ext) == 0 {
		return nil, nil
	}
	return ext, nil
}

// ReadSecretFile reads a password or secret file: its content with the
// trailing line break removed. An empty secret is an error.
func ReadSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// ReservedPaths are served by the exporter itself; the metrics path must
// be none of them (nor under /api/).
var ReservedPaths = []string{"/", "/healthz", "/readyz", "/api/v1/groups", "/api/v1/groups/"}

func validTelemetryPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return &Error{"TELEMETRY_PATH", fmt.Sprintf("%q must start with /", p)}
	}
	if slices.Contains(ReservedPaths, p) || strings.HasPrefix(p, "/api/") {
		return &Error{"TELEMETRY_PATH", fmt.Sprintf("%q is taken by the landing page, a probe or the JSON API", p)}
	}
	return nil
}

// FILTER_MODE values.
const (
	FilterAnchored   = "anchored"
	FilterUnanchored = "unanchored"
)

// compileFilter compiles a group or topic filter as FILTER_MODE says:
// anchored (compile), or unanchored, the expression as written, which
// matches anywhere in a name, as kafka_exporter's filters do.
func compileFilter(name, expr, mode string) (*regexp.Regexp, error) {
	if mode == FilterAnchored {
		return compile(name, expr)
	}
	if expr == "" {
		return nil, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, &Error{name, fmt.Sprintf("not a valid regular expression: %v", err)}
	}
	return re, nil
}

// ReservedLabels are the label names the exporter writes itself, on its
// own series or through client_golang (build_info, Go and process
// metrics), plus the target labels Prometheus attaches; CONST_LABELS may
// use none of them. A test checks that every label of a full exposition is
// listed here.
var ReservedLabels = []string{
	// Consumer group, topic and broker series.
	"address", "assignor", "client_host", "client_id", "consumergroup", "coordinator", "generation_source",
	"group_type", "id", "member_id", "partition", "protocol_type", "state", "status", "topic",
	// The exporter's own series.
	"api", "broker", "file", "loop", "reason", "resource", "stage",
	// build_info, go_info, summaries and histograms.
	"branch", "goarch", "goos", "goversion", "revision", "tags", "version", "le", "quantile",
	// Attached by Prometheus to every scraped series.
	"instance", "job",
}

// labelName is a label name every Prometheus version accepts.
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// parseConstLabels parses CONST_LABELS: name=value pairs separated by
// commas, as kafka_exporter's --kafka.labels. A value runs to the next
// comma and may hold "="; it may not be empty (an empty label is no label).
func parseConstLabels(spec string) (map[string]string, error) {
	labels := map[string]string{}
	for _, item := range strings.Split(spec, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		name, value, ok := strings.Cut(item, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case !ok || value == "":
			return nil, &Error{"CONST_LABELS", fmt.Sprintf("%q is not name=value with a value", item)}
		case !labelName.MatchString(name):
			return nil, &Error{"CONST_LABELS", fmt.Sprintf("%q is not a label name (letters, digits and _, not starting with a digit)", name)}
		case strings.HasPrefix(name, "__"):
			return nil, &Error{"CONST_LABELS", fmt.Sprintf("%q: label names starting with __ are reserved to Prometheus", name)}
		case slices.Contains(ReservedLabels, name):
			return nil, &Error{"CONST_LABELS", fmt.Sprintf("%q is a label the exporter or Prometheus sets itself", name)}
		}
		if _, dup := labels[name]; dup {
			return nil, &Error{"CONST_LABELS", fmt.Sprintf("label %q given twice", name)}
		}
		labels[name] = value
	}
	if len(labels) == 0 {
		return nil, nil
	}
	return labels, nil
}

func compile(name, expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	// Anchored to the whole name; (?s) lets . match a newline too, so the
	// default .* lets every name through.
	re, err := regexp.Compile("^(?s:" + expr + ")$")
	if err != nil {
		return nil, &Error{name, fmt.Sprintf("not a valid regular expression: %v", err)}
	}
	return re, nil
}

// Usage writes the table of every variable with its default and meaning.
func Usage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if err := envconfig.Usagef(Prefix, &Config{}, tw, envconfig.DefaultTableFormat); err != nil {
		return err
	}
	return tw.Flush()
}

// Redacted returns every setting, keyed by its variable name without the
// prefix in lower case, in a form safe to log: a field tagged secret is
// "<redacted>" when set.
func (c *Config) Redacted() map[string]any {
	out := map[string]any{}
	v := reflect.ValueOf(c).Elem()
	for _, f := range reflect.VisibleFields(v.Type()) {
		name, ok := f.Tag.Lookup("envconfig")
		if !ok {
			continue
		}
		fv := v.FieldByIndex(f.Index)
		val := fv.Interface()
		switch {
		case f.Tag.Get("secret") == "true":
			if !fv.IsZero() {
				val = "<redacted>"
			}
		case f.Type == reflect.TypeOf(time.Duration(0)):
			val = val.(time.Duration).String()
		}
		out[strings.ToLower(name)] = val
	}
	return out
}

// NewLogger returns the logger LOG_LEVEL and LOG_FORMAT describe, writing
// to w.
func (c *Config) NewLogger(w io.Writer) zerolog.Logger {
	level, _ := zerolog.ParseLevel(c.LogLevel) // validated by Load
	if c.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}
