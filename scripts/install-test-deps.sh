#!/usr/bin/env bash
# Installs the programs the e2e tests run, from Debian packages, when any is
# missing: promtool and prometheus (package prometheus), alertmanager and
# amtool (package prometheus-alertmanager), and kcat. Does nothing when all
# are present, so it is cheap to call before every test run. Needs root or
# sudo for apt-get.
set -euo pipefail

need=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
{ command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1; } &&
	command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v kcat >/dev/null 2>&1 || need+=(kcat)

if [ ${#need[@]} -eq 0 ]; then
	echo "install-test-deps: promtool, prometheus, alertmanager, amtool and kcat are installed"
	exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "install-test-deps: need root (or sudo) to install: ${need[*]}" >&2
		exit 1
	fi
	sudo=(sudo)
fi

echo "install-test-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
# --no-install-recommends keeps prometheus from pulling in node-exporter
# and friends; the packages start no services inside containers anyway.
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${need[@]}"
