#!/usr/bin/env bash
# The project's one test command (the README's "test it" and CI's .ci/run):
# installs what the tests need, then checks formatting, vet, and runs every
# test with the race detector, including promtool rule tests and the
# Prometheus + Alertmanager end-to-end check.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh

unformatted=$(gofmt -l $(find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
go test -race -count=1 -timeout 20m ./...

# Fuzz targets beyond their committed seed corpora (which the run above
# replays), each for a bounded time: what a broker or a member sends must
# never panic a decoder or an analyzer.
fuzztime=${KRE_FUZZ_TIME:-10s}
for target in ./internal/offsetslog:FuzzDecode ./internal/rebalance:FuzzTracker ./internal/lagtime:FuzzLagSeconds; do
  go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime "$fuzztime" "${target%%:*}"
done
