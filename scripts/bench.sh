#!/usr/bin/env bash
# The scale benchmark's one command (issue 10, docs/performance.md): builds
# the exporter, runs it against the standard kfake worlds (100 groups x
# 1,000 partitions; 2,000 groups / 80,000 group-partitions; the curve from
# 100 to 10,000 groups / 100,000 group-partitions), runs the Go benchmarks,
# prints the tables and rewrites docs/performance.md (keeping its notes).
# About 15-20 minutes on a 2-core machine; everything on loopback, bounded
# by -timeout (45m). Linux only (it reads /proc).
#
#   ./scripts/bench.sh           # the standard set, rewrites docs/performance.md
#   ./scripts/bench.sh -quick    # 1-2 minutes, small worlds, tables only
#   ./scripts/bench.sh -perf     # also perf record the exporter at 10,000 groups
#
# Any other flag is passed to `go run ./cmd/bench` (see -help).
set -euo pipefail
cd "$(dirname "$0")/.."

args=(-gobench -doc docs/performance.md)
for a in "$@"; do
  case "$a" in
    -quick|--quick|-quick=true|--quick=true) args=() ;;
  esac
done
exec go run ./cmd/bench "${args[@]}" "$@"
