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
