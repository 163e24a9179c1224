#!/usr/bin/env bash
# The soak (issue 11, docs/reliability.md): builds the exporter, runs it
# against a churning kfake world (thousands of groups created and deleted,
# members joining and leaving, commits) for -duration (default 30m), samples
# RSS, Go heap, goroutines and snapshot ages into soak-out/soak.csv and
# soak.json, prints a summary and exits 1 when goroutines or heap grow
# without bound (criterion in cmd/soak's doc). Linux only (it reads /proc);
# everything on loopback. It runs under nice: the machine is shared.
#
#   ./scripts/soak.sh                    # 30 minutes
#   ./scripts/soak.sh -duration 5m       # a short one
#
# Any flag is passed to `go run ./cmd/soak` (see -help).
set -euo pipefail
cd "$(dirname "$0")/.."
exec nice -n 10 go run ./cmd/soak "$@"
