#!/usr/bin/env bash
# A second, secured single-node Apache Kafka (KRaft) from the jars scripts/kafka.sh resolves:
# for testing Vigil's TLS and SASL settings (app/security.py). Runs beside the main broker.
#
#   scripts/kafka-secure.sh up [DIR]      certificates + users (once), format, start, wait
#   scripts/kafka-secure.sh down [DIR]    stop the broker and wait until no process is left
#   scripts/kafka-secure.sh status [DIR]  exit 0 when the broker answers on SASL_SSL
#
# DIR [<repo>/kafka/secure] holds everything: certs/ (a CA, the broker's PKCS12 keystore for
# 127.0.0.1 and localhost, a PKCS12 truststore, a client certificate in PEM), data/, logs/,
# run/ (server.properties, pid) and credentials.env (user and passwords, mode 600).
#
# Listeners (all on KAFKA_HOST [127.0.0.1]):
#   SASL_SSL   KAFKA_SECURE_SASL_PORT [19094]   mechanisms PLAIN and SCRAM-SHA-512
#   SSL        KAFKA_SECURE_SSL_PORT [19095]    client certificate: KAFKA_SECURE_SSL_CLIENT_AUTH
#                                               [required] (or requested, none)
#   CONTROLLER KAFKA_SECURE_CONTROLLER_PORT [19096]  PLAINTEXT
#   INTERNAL   KAFKA_SECURE_INTERNAL_PORT [19097]    PLAINTEXT, inter-broker only
# Users: KAFKA_SECURE_USER [vigil] with KAFKA_SECURE_PLAIN_PASSWORD (PLAIN) and
# KAFKA_SECURE_SCRAM_PASSWORD (SCRAM-SHA-512); both random unless given, kept in credentials.env.
# KAFKA_HOME [<repo>/kafka] (jars in $KAFKA_HOME/libs)  KAFKA_SECURE_HEAP [-Xmx512m -Xms128m]
# KAFKA_READY_TIMEOUT [60] seconds.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_HOME="${KAFKA_HOME:-$REPO/kafka}"
LIBS="$KAFKA_HOME/libs"
KAFKA_HOST="${KAFKA_HOST:-127.0.0.1}"
SASL_PORT="${KAFKA_SECURE_SASL_PORT:-19094}"
SSL_PORT="${KAFKA_SECURE_SSL_PORT:-19095}"
CONTROLLER_PORT="${KAFKA_SECURE_CONTROLLER_PORT:-19096}"
INTERNAL_PORT="${KAFKA_SECURE_INTERNAL_PORT:-19097}"
CLIENT_AUTH="${KAFKA_SECURE_SSL_CLIENT_AUTH:-required}"
HEAP="${KAFKA_SECURE_HEAP:--Xmx512m -Xms128m}"
READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-60}"

CMD="${1:-}"
DIR="${2:-$KAFKA_HOME/secure}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
CERTS="$DIR/certs"
DATA="$DIR/data"
LOGS="$DIR/logs"
RUN="$DIR/run"
PIDFILE="$RUN/kafka.pid"
CONFIG="$RUN/server.properties"
CREDENTIALS="$DIR/credentials.env"
SERVICE=kafka-secure
# shellcheck source=scripts/lib/service.sh
source "$REPO/scripts/lib/service.sh"

java_tool() {
  java -cp "$LIBS/*" -Dlog4j.configuration="file:$RUN/log4j-tools.properties" "$@"
}

load_credentials() {
  if [[ ! -f "$CREDENTIALS" ]]; then
    (
      umask 077
      cat >"$CREDENTIALS" <<EOF
KAFKA_SECURE_USER=${KAFKA_SECURE_USER:-vigil}
KAFKA_SECURE_PLAIN_PASSWORD=${KAFKA_SECURE_PLAIN_PASSWORD:-$(openssl rand -hex 16)}
KAFKA_SECURE_SCRAM_PASSWORD=${KAFKA_SECURE_SCRAM_PASSWORD:-$(openssl rand -hex 16)}
KAFKA_SECURE_STORE_PASSWORD=$(openssl rand -hex 16)
EOF
    )
  fi
  # shellcheck disable=SC1090
  source "$CREDENTIALS"
}

make_certs() {
  if [[ -f "$CERTS/truststore.p12" ]]; then return; fi
  log "generating a CA and certificates in $CERTS"
  rm -rf "$CERTS"
  mkdir -p "$CERTS"
  (
    cd "$CERTS"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 7 -keyout ca.key -out ca.pem \
      -subj "/CN=Vigil test CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    cat >broker.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EOF
    cat >client.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EOF
    for who in broker client; do
      local cn=localhost
      [[ $who == client ]] && cn="$KAFKA_SECURE_USER"
      openssl req -newkey rsa:2048 -nodes -keyout "$who.key" -out "$who.csr" \
        -subj "/CN=$cn" 2>/dev/null
      openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 7 \
        -extfile "$who.ext" -out "$who.pem" 2>/dev/null
    done
    openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
      -out broker.p12 -passout "pass:$KAFKA_SECURE_STORE_PASSWORD"
    # A Java truststore needs the CA as a *trusted* entry, which OpenSSL 3.0 cannot write.
    keytool -importcert -noprompt -alias vigil-ca -file ca.pem -keystore truststore.p12 \
      -storetype PKCS12 -storepass "$KAFKA_SECURE_STORE_PASSWORD" >/dev/null 2>&1
    rm -f ./*.csr ./*.ext ca.srl
    chmod 644 ca.pem broker.pem client.pem
  )
}

write_config() {
  mkdir -p "$RUN" "$DATA" "$LOGS"
  (
    umask 077
    cat >"$CONFIG" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KAFKA_HOST:$CONTROLLER_PORT
listeners=SASL_SSL://$KAFKA_HOST:$SASL_PORT,SSL://$KAFKA_HOST:$SSL_PORT,CONTROLLER://$KAFKA_HOST:$CONTROLLER_PORT,INTERNAL://$KAFKA_HOST:$INTERNAL_PORT
advertised.listeners=SASL_SSL://$KAFKA_HOST:$SASL_PORT,SSL://$KAFKA_HOST:$SSL_PORT,INTERNAL://$KAFKA_HOST:$INTERNAL_PORT
listener.security.protocol.map=SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SECURE_USER="$KAFKA_SECURE_PLAIN_PASSWORD";
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.ssl.ssl.client.auth=$CLIENT_AUTH
ssl.keystore.type=PKCS12
ssl.keystore.location=$CERTS/broker.p12
ssl.keystore.password=$KAFKA_SECURE_STORE_PASSWORD
ssl.key.password=$KAFKA_SECURE_STORE_PASSWORD
ssl.truststore.type=PKCS12
ssl.truststore.location=$CERTS/truststore.p12
ssl.truststore.password=$KAFKA_SECURE_STORE_PASSWORD
log.dirs=$DATA
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=24
EOF
    cat >"$RUN/client-sasl.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$KAFKA_SECURE_USER" password="$KAFKA_SECURE_PLAIN_PASSWORD";
ssl.truststore.type=PKCS12
ssl.truststore.location=$CERTS/truststore.p12
ssl.truststore.password=$KAFKA_SECURE_STORE_PASSWORD
EOF
  )
  cat >"$RUN/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$LOGS/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
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
  cluster_id="$(java_tool kafka.tools.StorageTool random-uuid)"
  log "formatting storage (cluster $cluster_id) with SCRAM-SHA-512 user $KAFKA_SECURE_USER"
  java_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$CONFIG" --ignore-formatted \
    --add-scram "SCRAM-SHA-512=[name=$KAFKA_SECURE_USER,password=$KAFKA_SECURE_SCRAM_PASSWORD]" \
    >/dev/null
}

broker_answers() {
  # A real Kafka API round trip through TLS and SASL, not just an open port.
  port_open "$KAFKA_HOST" "$SASL_PORT" || return 1
  [[ -f "$RUN/client-sasl.properties" ]] || return 1
  java_tool kafka.admin.BrokerApiVersionsCommand --bootstrap-server "$KAFKA_HOST:$SASL_PORT" \
    --command-config "$RUN/client-sasl.properties" >/dev/null 2>&1
}

up() {
  "$REPO/scripts/kafka.sh" jars
  load_credentials
  write_config
  if running_pid >/dev/null && broker_answers; then
    log "broker already running on $KAFKA_HOST:$SASL_PORT"
    return 0
  fi
  if port_open "$KAFKA_HOST" "$SASL_PORT"; then
    log "port $KAFKA_HOST:$SASL_PORT is taken by another process"
    return 1
  fi
  make_certs
  format_storage
  log "starting broker: SASL_SSL $KAFKA_HOST:$SASL_PORT, SSL $KAFKA_HOST:$SSL_PORT" \
    "(logs: $LOGS/server.log)"
  # shellcheck disable=SC2086
  spawn "$LOGS/stdout.log" java $HEAP -XX:+UseG1GC -XX:TieredStopAtLevel=1 \
    -Djava.awt.headless=true -Dlog4j.configuration="file:$RUN/log4j.properties" \
    -Dkafka.logs.dir="$LOGS" -cp "$LIBS/*" kafka.Kafka "$CONFIG"
  local status=0
  wait_until "$(cat "$PIDFILE")" "$READY_TIMEOUT" 0.3 broker_answers || status=$?
  if ((status == EXITED)); then
    log "broker exited during startup; last log lines:"
    last_lines 30 "$LOGS/server.log" "$LOGS/stdout.log"
    return 1
  elif ((status == TIMED_OUT)); then
    log "broker not ready after ${READY_TIMEOUT}s; last log lines:"
    last_lines 30 "$LOGS/server.log"
    return 1
  fi
  log "broker ready (pid $(cat "$PIDFILE"))"
}

down() {
  stop_service 30 0.2 broker
  # A broker of this DIR whose pid file was lost goes too (matched by its own config path).
  kill_strays "kafka.Kafka $CONFIG\$" broker
  log "stopped"
}

case "$CMD" in
  up) up ;;
  down) down ;;
  status) print_status broker_answers || exit 1 ;;
  *) echo "usage: $0 up|down|status [DIR]" >&2; exit 2 ;;
esac
