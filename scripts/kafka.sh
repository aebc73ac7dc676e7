#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller) from jars resolved from Maven Central.
#
#   scripts/kafka.sh up       resolve jars if needed, format storage once, start, wait until ready
#   scripts/kafka.sh down     stop the broker and wait until no process is left
#   scripts/kafka.sh status   exit 0 when a broker answers on the listener
#   scripts/kafka.sh jars     only resolve the jars (part of `make install`)
#
# Environment (defaults in brackets):
#   KAFKA_HOST [127.0.0.1]  KAFKA_PORT [9092]  KAFKA_CONTROLLER_PORT [9093]
#   KAFKA_HOME [<repo>/kafka]  jars in $KAFKA_HOME/libs, data in $KAFKA_HOME/data,
#   logs in $KAFKA_HOME/logs (all gitignored)
#   KAFKA_HEAP [-Xmx768m -Xms256m]  KAFKA_READY_TIMEOUT [90] seconds
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_HOME="${KAFKA_HOME:-$REPO/kafka}"
KAFKA_HOST="${KAFKA_HOST:-127.0.0.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${KAFKA_HEAP:--Xmx768m -Xms256m}"
KAFKA_READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-90}"
LIBS="$KAFKA_HOME/libs"
DATA="$KAFKA_HOME/data"
LOGS="$KAFKA_HOME/logs"
RUN="$KAFKA_HOME/run"
PIDFILE="$RUN/kafka.pid"
CONFIG="$RUN/server.properties"
SERVICE=kafka
# shellcheck source=scripts/lib/service.sh
source "$REPO/scripts/lib/service.sh"

broker_answers() {
  # A real Kafka API round trip, not just an open port.
  port_open "$KAFKA_HOST" "$KAFKA_PORT" || return 1
  java -cp "$LIBS/*" -Dlog4j.configuration="file:$RUN/log4j-tools.properties" \
    kafka.admin.BrokerApiVersionsCommand --bootstrap-server "$KAFKA_HOST:$KAFKA_PORT" \
    >/dev/null 2>&1
}

resolve_jars() {
  if ls "$LIBS"/kafka_2.13-*.jar >/dev/null 2>&1; then return; fi
  log "resolving Apache Kafka jars from Maven Central (first run only)"
  mvn -q -B -f "$KAFKA_HOME/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" -DincludeScope=runtime >&2
}

write_config() {
  mkdir -p "$RUN" "$DATA" "$LOGS"
  cat >"$CONFIG" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA
num.partitions=1
offsets.topic.replication_factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
# Keep every record whatever its timestamp: tests, replays and the demo produce telemetry
# with its own (often months-old) event time as the Kafka timestamp, and time-based retention
# would delete those segments within one retention check (every 5 min), before they are read.
log.retention.ms=-1
log.retention.bytes=1073741824
log.segment.bytes=67108864
EOF
  cat >"$RUN/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$LOGS/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=3
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
EOF
  cat >"$RUN/log4j-tools.properties" <<EOF
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=%p %m%n
EOF
}

format_storage() {
  if [[ -f "$DATA/meta.properties" ]]; then return; fi
  local cluster_id
  cluster_id="$(java -cp "$LIBS/*" -Dlog4j.configuration="file:$RUN/log4j-tools.properties" \
    kafka.tools.StorageTool random-uuid)"
  log "formatting storage (cluster $cluster_id)"
  java -cp "$LIBS/*" -Dlog4j.configuration="file:$RUN/log4j-tools.properties" \
    kafka.tools.StorageTool format -t "$cluster_id" -c "$CONFIG" --ignore-formatted >&2
}

up() {
  mkdir -p "$RUN"
  if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    if [[ ! -f "$RUN/log4j-tools.properties" ]]; then write_config; fi
    resolve_jars
    if broker_answers; then log "broker already running on $KAFKA_HOST:$KAFKA_PORT"; return 0; fi
  fi
  resolve_jars
  write_config
  format_storage
  log "starting broker on $KAFKA_HOST:$KAFKA_PORT (logs: $LOGS/server.log)"
  # shellcheck disable=SC2086
  spawn "$LOGS/stdout.log" java $KAFKA_HEAP -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$RUN/log4j.properties" -Dkafka.logs.dir="$LOGS" \
    -cp "$LIBS/*" kafka.Kafka "$CONFIG"
  local status=0
  wait_until "$(cat "$PIDFILE")" "$KAFKA_READY_TIMEOUT" 0.5 broker_answers || status=$?
  if ((status == EXITED)); then
    log "broker exited during startup; last log lines:"
    last_lines 30 "$LOGS/server.log" "$LOGS/stdout.log"
    return 1
  elif ((status == TIMED_OUT)); then
    log "broker not ready after ${KAFKA_READY_TIMEOUT}s"
    return 1
  fi
  log "broker ready on $KAFKA_HOST:$KAFKA_PORT (pid $(cat "$PIDFILE"))"
}

down() {
  stop_service 30 0.2 broker
  # Any other broker started from these jars (e.g. a lost pid file) goes too.
  kill_strays "kafka.Kafka $CONFIG" broker
  log "stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  jars) resolve_jars ;;
  status) print_status broker_answers || exit 1 ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
