#!/usr/bin/env bash
# A real Apache Kafka cluster on loopback, from Apache's own jars, for the
# real-broker tests (e2e/realkafka) and for trying the exporter by hand.
#
#   scripts/kafka-cluster.sh start  [--version V] [--dir D] [--base-port P] [--heap H] [--watch-pid PID]
#   scripts/kafka-cluster.sh stop   [--dir D]
#   scripts/kafka-cluster.sh status [--dir D]
#   scripts/kafka-cluster.sh classpath [--version V]
#   scripts/kafka-cluster.sh tool [--version V] MAIN-CLASS [ARGS...]
#
# start resolves org.apache.kafka:kafka_2.13 and kafka-tools of version V
# (default 4.1.1; 3.9.1 is the pinned older one) through Maven, honouring
# MAVEN_OPTS (-Dmaven.repo.local=...), and caches the classpath under
# ${XDG_CACHE_HOME:-~/.cache}/kafka-rebalance-exporter/kafka-V/. It then
# generates a CA and a broker certificate, formats KRaft storage with SCRAM
# users, and starts three combined broker+controller nodes (node ids 1..3).
# Node i (0-based) listens on 127.0.0.1 at
#   PLAINTEXT P+i, SASL_PLAINTEXT P+10+i, SSL P+20+i, CONTROLLER P+30+i,
#   OAUTH P+40+i (SASL_PLAINTEXT: OAUTHBEARER and SCRAM-SHA-512, sessions
#   re-authenticated every 10 s)
# (P defaults to 19092). It waits until all three brokers answer, writes
# D/cluster.env (bootstrap addresses, CA file, users, OAuth key) and prints it.
#
# Security: StandardAuthorizer, allow.everyone.if.no.acl.found=false, super
# users User:admin and User:ANONYMOUS (the PLAINTEXT and SSL listeners, which
# carry no client identity, and inter-broker traffic). SASL_PLAINTEXT accepts
# SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN; users (password = NAME-secret):
# admin, exporter, limited. OAUTH accepts OAUTHBEARER JWTs signed (RS256)
# with D/oauth/signing.key (key id kre-test, issuer kre-test-issuer,
# audience kafka): Kafka's own OAuthBearerValidatorCallbackHandler checks
# the signature against the JWKS file D/oauth/jwks.json, and the principal
# is User:<sub>; tests play the token endpoint. OAUTH also takes
# SCRAM-SHA-512, and makes clients re-authenticate every 10 s
# (connections.max.reauth.ms, KIP-368), so that a changed credential takes
# effect on open connections. Every authorizer decision
# is logged to D/node-N/authorizer.log.
#
# --watch-pid stops the cluster when that process is gone (the tests pass
# their own pid, so a killed test run leaves no broker behind). A second
# start on a running directory, or on ports in use, fails with a message.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kdir="$here/kafka"
default_version=4.1.1

die() { echo "kafka-cluster: $*" >&2; exit 1; }
log() { echo "kafka-cluster: $*" >&2; }

cmd=${1:-}
[ -n "$cmd" ] || die "usage: $0 start|stop|status|classpath|tool [options]"
shift

version=$default_version
dir=${KRE_KAFKA_DIR:-}
base_port=19092
heap=400m
watch_pid=
while [ $# -gt 0 ]; do
	case $1 in
	--version) version=$2; shift 2 ;;
	--dir) dir=$2; shift 2 ;;
	--base-port) base_port=$2; shift 2 ;;
	--heap) heap=$2; shift 2 ;;
	--watch-pid) watch_pid=$2; shift 2 ;;
	--) shift; break ;;
	-*) die "unknown option $1" ;;
	*) break ;;
	esac
done
[ -n "$dir" ] || dir=${TMPDIR:-/tmp}/kafka-rebalance-exporter-cluster
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kafka-rebalance-exporter/kafka-$version
major=${version%%.*}

# resolve_classpath prints the classpath of version, resolving it through
# Maven when the cache is missing or points at jars that are gone (another
# maven.repo.local).
resolve_classpath() {
	local cpfile="$cache/classpath" profile=log4j2
	[ "$major" -ge 4 ] || profile=reload4j
	if [ -s "$cpfile" ] && classpath_complete "$cpfile"; then
		cat "$cpfile"
		return
	fi
	mkdir -p "$cache"
	log "resolving org.apache.kafka:kafka_2.13:$version and kafka-tools through Maven"
	local start=$SECONDS
	# shellcheck disable=SC2086
	if ! mvn -B -q -f "$kdir/pom.xml" -Dkafka.version="$version" -P"$profile" \
		dependency:build-classpath -Dmdep.outputFile="$cpfile.tmp" >"$cache/mvn.log" 2>&1; then
		tail -30 "$cache/mvn.log" >&2
		die "Maven could not resolve Kafka $version (log: $cache/mvn.log)"
	fi
	mv "$cpfile.tmp" "$cpfile"
	log "resolved in $((SECONDS - start))s"
	cat "$cpfile"
}

classpath_complete() {
	local jar
	IFS=: read -r -a jars <"$1"
	[ ${#jars[@]} -gt 10 ] || return 1
	for jar in "${jars[@]}"; do
		[ -f "$jar" ] || return 1
	done
}

java_tool_opts() {
	if [ "$major" -ge 4 ]; then
		echo "-Dlog4j2.configurationFile=$kdir/tools-log4j2.xml"
	else
		echo "-Dlog4j.configuration=file:$kdir/tools-log4j.properties"
	fi
}

# jvm_common: small, fast-starting JVMs; two cores are shared with the tests.
jvm_common="-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true"

run_tool() {
	local cp
	cp=$(resolve_classpath)
	# shellcheck disable=SC2046,SC2086
	exec java -Xmx256m $jvm_common $(java_tool_opts) -cp "$cp" "$@"
}

port_of() { # node listener-offset
	echo $((base_port + $2 + $1))
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

node_pids() {
	local f
	for f in "$dir"/node-*/pid; do
		[ -f "$f" ] || continue
		local p
		p=$(cat "$f")
		kill -0 "$p" 2>/dev/null && echo "$p"
	done
	return 0
}

gen_certs() {
	local tls=$dir/tls
	mkdir -p "$tls"
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=kafka-rebalance-exporter test CA" \
		-keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
		-keyout "$tls/broker.key" -out "$tls/broker.csr" 2>/dev/null
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$tls/ext.cnf"
	openssl x509 -req -in "$tls/broker.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
		-days 30 -extfile "$tls/ext.cnf" -out "$tls/broker.pem" 2>/dev/null
	openssl pkcs12 -export -in "$tls/broker.pem" -inkey "$tls/broker.key" -certfile "$tls/ca.pem" \
		-name broker -passout pass:keystore-secret -out "$tls/broker.p12"
	keytool -importcert -noprompt -alias ca -file "$tls/ca.pem" -storetype PKCS12 \
		-keystore "$tls/truststore.p12" -storepass truststore-secret >/dev/null 2>&1
}

# gen_oauth: the RSA key a test token endpoint signs JWTs with, and its
# public half as the JWKS file the brokers read (a file: URL, which Kafka
# supports besides http(s); Kafka >= 3.9.1 also wants it listed in the
# system property org.apache.kafka.sasl.oauthbearer.allowed.urls).
oauth_kid=kre-test
oauth_issuer=kre-test-issuer
oauth_audience=kafka
gen_oauth() {
	local o=$dir/oauth hex n
	mkdir -p "$o"
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$o/signing.key" 2>/dev/null
	hex=$(openssl rsa -in "$o/signing.key" -noout -modulus 2>/dev/null | sed 's/^Modulus=//')
	if command -v xxd >/dev/null 2>&1; then
		n=$(printf '%s' "$hex" | xxd -r -p | base64 | tr -d '\n=' | tr '+/' '-_')
	else
		n=$(printf '%s' "$hex" | perl -ne 'print pack("H*", $_)' | base64 | tr -d '\n=' | tr '+/' '-_')
	fi
	[ -n "$n" ] || die "could not compute the JWKS modulus"
	printf '{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"%s","n":"%s","e":"AQAB"}]}\n' "$oauth_kid" "$n" >"$o/jwks.json"
}

plain_jaas() {
	local u s="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"admin-secret\""
	for u in admin exporter limited; do
		s="$s user_$u=\"$u-secret\""
	done
	echo "$s;"
}

write_config() { # node-index
	local i=$1 id=$(($1 + 1)) nd=$dir/node-$(($1 + 1))
	local voters="" j
	for j in 0 1 2; do
		voters="$voters${voters:+,}$((j + 1))@127.0.0.1:$(port_of "$j" 30)"
	done
	mkdir -p "$nd/data"
	local protocols="classic,consumer"
	cat >"$nd/server.properties" <<EOF
# Written by scripts/kafka-cluster.sh for node $id of the test cluster in $dir.
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$(port_of "$i" 0),SASL_PLAINTEXT://127.0.0.1:$(port_of "$i" 10),SSL://127.0.0.1:$(port_of "$i" 20),CONTROLLER://127.0.0.1:$(port_of "$i" 30),OAUTH://127.0.0.1:$(port_of "$i" 40)
advertised.listeners=PLAINTEXT://127.0.0.1:$(port_of "$i" 0),SASL_PLAINTEXT://127.0.0.1:$(port_of "$i" 10),SSL://127.0.0.1:$(port_of "$i" 20),OAUTH://127.0.0.1:$(port_of "$i" 40)
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT,OAUTH:SASL_PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$nd/data

sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=$(plain_jaas)
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
# OAUTH: OAUTHBEARER, JWTs validated (signature, exp, iss, aud) by Kafka's
# validator against the JWKS file, and SCRAM-SHA-512; sessions re-authenticate
# every 10 s.
listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER,SCRAM-SHA-512
listener.name.oauth.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.oauth.oauthbearer.connections.max.reauth.ms=10000
listener.name.oauth.scram-sha-512.connections.max.reauth.ms=10000
listener.name.oauth.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;
listener.name.oauth.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler
# Kafka 4.1's default validator class (DefaultJwtValidator, KIP-1139) checks
# no signature when the handler builds it: BrokerJwtValidator verifies
# against the JWKS (3.x ignores the setting and always verifies). The
# validator reads the sasl.oauthbearer.* settings unprefixed.
sasl.oauthbearer.jwt.validator.class=org.apache.kafka.common.security.oauthbearer.BrokerJwtValidator
sasl.oauthbearer.jwks.endpoint.url=file://$dir/oauth/jwks.json
sasl.oauthbearer.expected.issuer=$oauth_issuer
sasl.oauthbearer.expected.audience=$oauth_audience
ssl.keystore.type=PKCS12
ssl.keystore.location=$dir/tls/broker.p12
ssl.keystore.password=keystore-secret
ssl.key.password=keystore-secret
ssl.client.auth=none

authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false

num.partitions=3
default.replication.factor=3
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=1

# Groups: no initial delay, short session timeouts allowed, KIP-848 on.
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
group.coordinator.rebalance.protocols=$protocols
group.consumer.min.session.timeout.ms=1000
group.consumer.session.timeout.ms=6000
group.consumer.min.heartbeat.interval.ms=500
group.consumer.heartbeat.interval.ms=1000

# Two cores: few threads.
num.network.threads=2
num.io.threads=2
background.threads=2
num.replica.fetchers=1
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
EOF
	if [ "$major" -ge 4 ]; then
		sed "s#@NODE_DIR@#$nd#g" "$kdir/log4j2.xml.in" >"$nd/log4j2.xml"
	else
		sed "s#@NODE_DIR@#$nd#g" "$kdir/log4j.properties.in" >"$nd/log4j.properties"
	fi
}

node_log_opt() { # node-dir
	if [ "$major" -ge 4 ]; then
		echo "-Dlog4j2.configurationFile=$1/log4j2.xml"
	else
		echo "-Dlog4j.configuration=file:$1/log4j.properties"
	fi
}

format_node() { # cp node-id cluster-id
	local nd=$dir/node-$2 scram=() m u
	for m in SCRAM-SHA-256 SCRAM-SHA-512; do
		for u in admin exporter limited; do
			scram+=(--add-scram "$m=[name=$u,password=$u-secret]")
		done
	done
	# shellcheck disable=SC2046,SC2086
	java -Xmx256m $jvm_common $(java_tool_opts) -cp "$1" kafka.tools.StorageTool format \
		-t "$3" -c "$nd/server.properties" "${scram[@]}" >"$nd/format.log" 2>&1 ||
		{ cat "$nd/format.log" >&2; die "formatting node $2 failed"; }
}

start_node() { # cp node-id
	local nd=$dir/node-$2
	# shellcheck disable=SC2046,SC2086
	setsid nohup java -Xms128m -Xmx"$heap" -XX:+UseSerialGC -XX:MaxMetaspaceSize=192m \
		-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true $(node_log_opt "$nd") \
		-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls="file://$dir/oauth/jwks.json" \
		-cp "$1" kafka.Kafka "$nd/server.properties" >"$nd/stdout.log" 2>&1 </dev/null 9>&- &
	echo $! >"$nd/pid"
}

brokers_answering() {
	local out
	if command -v kcat >/dev/null 2>&1; then
		out=$(kcat -L -b "$(bootstrap 0)" -m 5 2>/dev/null) || return 1
		echo "$out" | grep -q '^ 3 brokers:'
	else
		out=$(java -Xmx128m $jvm_common $(java_tool_opts) -cp "$1" org.apache.kafka.tools.BrokerApiVersionsCommand \
			--bootstrap-server "$(bootstrap 0)" 2>/dev/null) || return 1
		[ "$(echo "$out" | grep -c '(id: ')" -eq 3 ]
	fi
}

bootstrap() { # listener-offset
	echo "127.0.0.1:$(port_of 0 "$1"),127.0.0.1:$(port_of 1 "$1"),127.0.0.1:$(port_of 2 "$1")"
}

write_env() {
	cat >"$dir/cluster.env" <<EOF
KAFKA_VERSION=$version
KAFKA_DIR=$dir
KAFKA_CLASSPATH_FILE=$cache/classpath
KAFKA_BOOTSTRAP_PLAINTEXT=$(bootstrap 0)
KAFKA_BOOTSTRAP_SASL_PLAINTEXT=$(bootstrap 10)
KAFKA_BOOTSTRAP_SSL=$(bootstrap 20)
KAFKA_BOOTSTRAP_OAUTH=$(bootstrap 40)
KAFKA_OAUTH_SIGNING_KEY=$dir/oauth/signing.key
KAFKA_OAUTH_KEY_ID=$oauth_kid
KAFKA_OAUTH_ISSUER=$oauth_issuer
KAFKA_OAUTH_AUDIENCE=$oauth_audience
KAFKA_CA_FILE=$dir/tls/ca.pem
KAFKA_TRUSTSTORE=$dir/tls/truststore.p12
KAFKA_TRUSTSTORE_PASSWORD=truststore-secret
KAFKA_SUPERUSER=admin
KAFKA_USERS=admin exporter limited
KAFKA_PASSWORD_SUFFIX=-secret
EOF
}

check_ports() {
	local i off busy=()
	for i in 0 1 2; do
		for off in 0 10 20 30 40; do
			port_busy "$(port_of "$i" "$off")" && busy+=("$(port_of "$i" "$off")")
		done
	done
	[ ${#busy[@]} -eq 0 ] || die "ports in use on 127.0.0.1: ${busy[*]} (another cluster or program; stop it or pass --base-port)"
}

start_watchdog() {
	[ -n "$watch_pid" ] || return 0
	kill -0 "$watch_pid" 2>/dev/null || die "--watch-pid $watch_pid: no such process"
	setsid nohup bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" stop --dir "$3"' \
		watchdog "$watch_pid" "$here/kafka-cluster.sh" "$dir" >"$dir/watchdog.log" 2>&1 </dev/null 9>&- &
	echo $! >"$dir/watchdog.pid"
}

do_start() {
	mkdir -p "$dir"
	exec 9>"$dir/lock"
	flock -n 9 || die "another kafka-cluster.sh is starting or stopping the cluster in $dir"
	local running
	running=$(node_pids | tr '\n' ' ')
	[ -z "$running" ] || die "a cluster is already running in $dir (pids $running); stop it first: $0 stop --dir $dir"
	check_ports
	local cp
	cp=$(resolve_classpath)
	local t0=$SECONDS
	rm -rf "$dir"/node-* "$dir/tls" "$dir/oauth" "$dir/cluster.env"
	gen_certs
	gen_oauth
	local cid i
	# A Kafka cluster ID is 16 random bytes in URL-safe base64; one that
	# starts with "-" would read as an option to StorageTool, so draw again.
	cid=-
	while [ "${cid#-}" != "$cid" ]; do
		cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
	done
	for i in 0 1 2; do write_config "$i"; done
	for i in 1 2 3; do format_node "$cp" "$i" "$cid" & done
	wait_all_or_die "formatting storage"
	for i in 1 2 3; do start_node "$cp" "$i"; done
	start_watchdog
	local deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-180}))
	until brokers_answering "$cp"; do
		for i in 1 2 3; do
			kill -0 "$(cat "$dir/node-$i/pid")" 2>/dev/null || {
				tail -40 "$dir/node-$i/server.log" "$dir/node-$i/stdout.log" >&2 || true
				do_stop >/dev/null 2>&1 || true
				die "node $i exited during start-up (logs in $dir/node-$i)"
			}
		done
		if [ $SECONDS -ge $deadline ]; then
			do_stop >/dev/null 2>&1 || true
			die "cluster did not answer within ${KAFKA_START_TIMEOUT:-180}s (logs in $dir/node-*)"
		fi
		sleep 0.5
	done
	write_env
	log "Kafka $version up in $((SECONDS - t0))s (dir $dir)"
	cat "$dir/cluster.env"
}

wait_all_or_die() {
	local pid failed=0
	for pid in $(jobs -p); do
		wait "$pid" || failed=1
	done
	[ $failed -eq 0 ] || die "$1 failed"
}

do_stop() {
	local pids wp
	if [ -f "$dir/watchdog.pid" ]; then
		wp=$(cat "$dir/watchdog.pid")
		rm -f "$dir/watchdog.pid"
		# The watchdog itself runs stop: do not kill the caller.
		[ "$wp" = "$PPID" ] || [ "$wp" = "$$" ] || kill "$wp" 2>/dev/null || true
	fi
	pids=$(node_pids)
	if [ -z "$pids" ]; then
		log "no cluster running in $dir"
		return 0
	fi
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null || true
	local deadline=$((SECONDS + ${KAFKA_STOP_TIMEOUT:-20}))
	while [ -n "$(node_pids)" ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
	pids=$(node_pids)
	if [ -n "$pids" ]; then
		log "nodes did not stop within ${KAFKA_STOP_TIMEOUT:-20}s of SIGTERM; killing $pids"
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null || true
	fi
	rm -f "$dir"/node-*/pid
	log "stopped the cluster in $dir"
}

do_status() {
	local pids
	pids=$(node_pids | tr '\n' ' ')
	if [ -z "$pids" ]; then
		echo "no cluster running in $dir"
		return 3
	fi
	echo "running in $dir: pids $pids"
	[ -f "$dir/cluster.env" ] && cat "$dir/cluster.env"
	return 0
}

case $cmd in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
classpath) resolve_classpath ;;
tool) run_tool "$@" ;;
*) die "unknown command $cmd (start|stop|status|classpath|tool)" ;;
esac
