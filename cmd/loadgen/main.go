// Command loadgen runs the demo workload (package demo: a producer and the
// demo consumer groups, some of which keep rebalancing) against an existing
// Kafka cluster until it receives SIGINT or SIGTERM. docker-compose.yml runs
// it next to a real Apache Kafka so the exporter, the dashboards and the
// alerts have something to show.
//
// It reads the exporter's configuration (KRE_BROKERS, KRE_DEMO_*,
// KRE_LOG_*: the one place their defaults live); flags override it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/demo"
)

// stormLength stands for "until stopped": Storm needs a finite duration.
const stormLength = 365 * 24 * time.Hour

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

type options struct {
	brokers       string
	produceRate   int
	churnInterval time.Duration
	storm         bool
	setupRetry    time.Duration
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	opts, err := parseFlags(cfg, args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	log := cfg.NewLogger(stderr)
	brokers := splitBrokers(opts.brokers)
	if len(brokers) == 0 {
		fmt.Fprintln(stderr, "no brokers: set -brokers or KRE_BROKERS")
		return 2
	}

	w, err := startWorkload(ctx, brokers, opts, log)
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		log.Error().Err(err).Msg("cannot start the workload")
		return 1
	}
	log.Info().Strs("brokers", brokers).Strs("groups", w.Groups()).Bool("storm", opts.storm).Msg("loadgen running")
	if opts.storm {
		go w.Storm(ctx, stormLength)
	}
	<-ctx.Done()
	log.Info().Msg("stopping")
	w.Close()
	return 0
}

// startWorkload retries until the cluster answers: under docker compose the
// broker may still be starting when loadgen does.
func startWorkload(ctx context.Context, brokers []string, opts options, log zerolog.Logger) (*demo.Workload, error) {
	wopts := demo.WorkloadOptions{
		ProduceRate:   opts.produceRate,
		ChurnInterval: opts.churnInterval,
		Logger:        log.With().Str("component", "demo-workload").Logger(),
	}
	for {
		w, err := demo.RunWorkload(ctx, brokers, wopts)
		if err == nil {
			return w, nil
		}
		log.Warn().Err(err).Dur("retry_in", opts.setupRetry).Msg("workload setup failed; is Kafka up?")
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(opts.setupRetry):
		}
	}
}

// parseFlags reads the flags, each defaulting to its configuration value.
func parseFlags(cfg *config.Config, args []string, stderr io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.brokers, "brokers", strings.Join(cfg.Brokers, ","), "comma-separated bootstrap brokers (env KRE_BROKERS)")
	fs.IntVar(&o.produceRate, "produce-rate", cfg.DemoProduceRate, "records per second over all demo topics (env KRE_DEMO_PRODUCE_RATE)")
	fs.DurationVar(&o.churnInterval, "churn-interval", cfg.DemoChurnInterval, "how often the churn groups rebalance (env KRE_DEMO_CHURN_INTERVAL)")
	fs.BoolVar(&o.storm, "storm", cfg.DemoStorm, "make the churn groups rebalance every few seconds, continuously (env KRE_DEMO_STORM)")
	fs.DurationVar(&o.setupRetry, "setup-retry", 5*time.Second, "wait between attempts to set the workload up while Kafka is not ready")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.produceRate <= 0 {
		return o, fmt.Errorf("-produce-rate must be positive")
	}
	if o.churnInterval <= 0 || o.setupRetry <= 0 {
		return o, fmt.Errorf("-churn-interval and -setup-retry must be positive durations")
	}
	return o, nil
}

func splitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}
