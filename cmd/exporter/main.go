// Command exporter is the kafka-rebalance-exporter daemon: it polls Kafka
// consumer groups in the background and serves Prometheus metrics.
// This file only wires the packages together.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	toolkitweb "github.com/prometheus/exporter-toolkit/web"
	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/demo"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/offsetslog"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/web"
)

const exitConfig = 2

func main() {
	if info, ok := debug.ReadBuildInfo(); ok {
		stampVersion(info)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// stampVersion fills the build information that the Dockerfile's -ldflags
// set (github.com/prometheus/common/version) and a plain go build or go
// install does not, from what Go embeds in every binary: the module
// version (a tag, a pseudo-version, or (devel)), the commit, with
// "-modified" for a dirty tree as prometheus/common writes it, and the
// commit time as the build date. What -ldflags set is kept.
func stampVersion(info *debug.BuildInfo) {
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if version.Version == "" {
		version.Version = cmp.Or(info.Main.Version, "(devel)")
	}
	if rev := settings["vcs.revision"]; version.Revision == "" && rev != "" {
		if settings["vcs.modified"] == "true" {
			rev += "-modified"
		}
		version.Revision = rev
	}
	if at, err := time.Parse(time.RFC3339, settings["vcs.time"]); version.BuildDate == "" && err == nil {
		version.BuildDate = at.UTC().Format("20060102-15:04:05") // the Dockerfile's format
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("exporter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	demoMode := fs.Bool("demo", false, "start an embedded Kafka cluster (kfake) with a demo workload and export it")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: exporter [-demo] [-version]\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nConfiguration is read from these environment variables:\n\n")
		_ = config.Usage(stderr)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitConfig
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.Print("kafka-rebalance-exporter"))
		return 0
	}
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	// TLS files are read here, so a CA file without a certificate or a
	// key that does not match is a configuration error too.
	sc, err := kafka.SaramaConfig(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	log := cfg.NewLogger(stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if *demoMode {
		cluster, workload, err := startDemo(ctx, cfg, log)
		if err != nil {
			log.Error().Err(err).Msg("cannot start the demo")
			return 1
		}
		defer cluster.Close()
		defer workload.Close()
		cfg.Brokers = cluster.Addrs()
	}
	if err := serve(ctx, cfg, sc, log); err != nil {
		log.Error().Err(err).Msg("exporter stopped")
		return 1
	}
	return 0
}

func startDemo(ctx context.Context, cfg *config.Config, log zerolog.Logger) (*demo.Cluster, *demo.Workload, error) {
	cluster, err := demo.StartCluster(demo.ClusterOptions{})
	if err != nil {
		return nil, nil, err
	}
	opts := demo.WorkloadOptions{ProduceRate: cfg.DemoProduceRate, ChurnInterval: cfg.DemoChurnInterval, Logger: log.With().Str("component", "demo-workload").Logger()}
	workload, err := demo.RunWorkload(ctx, cluster.Addrs(), opts)
	if err != nil {
		cluster.Close()
		return nil, nil, err
	}
	if cfg.DemoStorm {
		// A storm for as long as the process lives: the alert end-to-end
		// test needs rebalances every few seconds from the start.
		go workload.Storm(ctx, 365*24*time.Hour)
	}
	log.Info().Strs("brokers", cluster.Addrs()).Msg("demo cluster and workload running")
	return cluster, workload, nil
}

func serve(ctx context.Context, cfg *config.Config, sc *sarama.Config, log zerolog.Logger) error {
	p := kafka.New(cfg, sc, log.With().Str("component", "poller").Logger())
	defer p.Close()
	// The coordinators' own log, when on: a reader of its own, started
	// below beside the poller; it never blocks or fails the rest.
	var (
		logReader *offsetslog.Reader
		exact     []rebalance.GenerationSource
		self      = []prometheus.Collector{p.Metrics(), kafka.Auth()}
		stOpts    = store.Options{Log: log}
	)
	if cfg.OffsetsLog.Enabled {
		var err error
		if logReader, err = offsetslog.New(offsetsLogOptions(cfg, sc, log)); err != nil {
			return fmt.Errorf("__consumer_offsets reader: %w", err)
		}
		exact, self, stOpts.OffsetsLog = []rebalance.GenerationSource{logReader.Source()}, append(self, logReader.Metrics()), logReader.View
	}
	stOpts.Analyzers = store.NewAnalyzers(cfg, log, exact...)
	st := store.New(stOpts)

	copts := collector.Options{MemberMetrics: cfg.MemberMetrics, DurationBuckets: cfg.RebalanceDurationBuckets,
		Granularity: collector.Granularity(cfg.LagGranularity), MaxGroups: cfg.MaxGroups, SkipTopicSeries: !cfg.Filters.Shard.First(),
		ConstLabels: cfg.Labels} // on the live registry's series too (LiveRegistry wraps its registerer)
	live, err := collector.LiveRegistry(st, copts, append(self,
		versioncollector.NewCollector("kafka_rebalance_exporter"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)...)
	if err != nil {
		return err
	}
	metrics := web.MetricsOptions{Render: collector.SnapshotRenderer(copts), Live: live, MaxInFlight: cfg.WebMaxScrapes, Log: log}

	ln, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen on %s (KRE_LISTEN_ADDRESS): %w", cfg.ListenAddress, err)
	}
	var groups web.GroupAPI
	if cfg.APIEnabled {
		groups = web.Groups{}
	}
	srv := &http.Server{
		Handler:           web.Handler(web.Options{TelemetryPath: cfg.TelemetryPath, Metrics: metrics, Source: st, Log: log, Groups: groups}),
		ReadHeaderTimeout: cfg.WebReadTimeout,
		ReadTimeout:       cfg.WebReadTimeout,
		WriteTimeout:      cfg.WebWriteTimeout,
		IdleTimeout:       cfg.WebIdleTimeout,
	}
	started := log.Info().Interface("config", cfg.Redacted()).Str("version", version.Version)
	if cfg.WebConfigFile == "" {
		started = started.Str("url", fmt.Sprintf("http://%s%s", displayAddr(ln.Addr()), cfg.TelemetryPath))
	} else {
		started = started.Str("address", displayAddr(ln.Addr())).Str("web_config_file", cfg.WebConfigFile)
	}
	started.Msg("kafka-rebalance-exporter started")

	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		p.Run(ctx, st)
	}()
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		if logReader != nil {
			if err := logReader.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error().Err(err).Msg("__consumer_offsets reader stopped")
			}
		}
	}()
	srvErr := make(chan error, 1)
	go func() {
		// exporter-toolkit serves TLS, mutual TLS and basic auth as the web
		// configuration file says, and plain HTTP without one.
		webCfg := cfg.WebConfigFile
		srvErr <- toolkitweb.Serve(ln, srv, &toolkitweb.FlagConfig{WebConfigFile: &webCfg}, slog.New(zerolog.NewSlogHandler(log.With().Str("component", "web").Logger())))
	}()

	select {
	case <-ctx.Done():
		log.Info().Msg("shutting down")
	case err := <-srvErr:
		return fmt.Errorf("http server: %w", err)
	}
	// Responses in flight get 3 s to finish; a scraper that stopped
	// reading would otherwise hold the process until the write timeout.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err = srv.Shutdown(shutdownCtx); errors.Is(err, context.DeadlineExceeded) {
		log.Warn().Msg("responses still being written after 3s; closing their connections")
		err = srv.Close()
	}
	// The loops stop at their next step; a request in flight ends at its
	// deadline, but sarama cannot cancel a client being created (a broker
	// refusing authentication keeps it retrying), so the process does not
	// wait for them longer than this.
	stopped := time.NewTimer(5 * time.Second)
	defer stopped.Stop()
	for name, done := range map[string]chan struct{}{"poller": pollDone, "__consumer_offsets reader": logDone} {
		select {
		case <-done:
		case <-stopped.C:
			log.Warn().Str("component", name).Msg("still stopping after 5s; exiting without waiting")
			return err
		}
	}
	return err
}

// offsetsLogOptions builds the __consumer_offsets reader's options from
// the configuration, which owns every value.
func offsetsLogOptions(cfg *config.Config, sc *sarama.Config, log zerolog.Logger) offsetslog.Options {
	c := cfg.OffsetsLog
	start := offsetslog.Start{Mode: offsetslog.StartLatest}
	switch c.Start {
	case config.OffsetsLogEarliest:
		start.Mode = offsetslog.StartEarliest
	case config.OffsetsLogLookBack:
		start = offsetslog.Start{Mode: offsetslog.StartLookBack, LookBack: c.LookBack}
	}
	return offsetslog.Options{Brokers: cfg.Brokers, Sarama: sc, Topic: c.Topic, Start: start,
		FetchMaxWait: c.FetchMaxWait, FetchMaxBytes: c.FetchMaxBytes, PartitionMaxBytes: c.PartitionMaxBytes,
		RetryBackoffMin: c.RetryBackoffMin, RetryBackoffMax: c.RetryBackoffMax, MetadataRefresh: c.MetadataRefresh,
		PublishInterval: c.PublishInterval, ProgressInterval: c.ProgressInterval,
		Logger: log.With().Str("component", "offsets-log").Logger()}
}

// displayAddr turns a wildcard listen address into one a person can click.
func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return fmt.Sprintf("localhost:%d", tcp.Port)
}
