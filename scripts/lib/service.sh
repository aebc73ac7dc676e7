# shellcheck shell=bash
# Start, stop and wait for one local background service: sourced by scripts/kafka.sh,
# kafka-secure.sh, alertmanager.sh, prometheus.sh and demo.sh.
#
# The sourcing script sets SERVICE (the name its messages start with) and, for the functions
# that keep a pid file, PIDFILE.

# log MESSAGE...: "<SERVICE>: MESSAGE" on stderr.
log() { echo "$SERVICE: $*" >&2; }

# find_program OVERRIDE NAME...: OVERRIDE when it is set (fails unless it is executable), else
# the first NAME found on PATH.
find_program() {
  local override="$1"
  shift
  if [[ -n "$override" ]]; then
    [[ -x "$override" ]] && echo "$override" && return 0
    return 1
  fi
  local name
  for name in "$@"; do
    command -v "$name" 2>/dev/null && return 0
  done
  return 1
}

# running_pid: the pid in $PIDFILE while that process lives; fails otherwise.
running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# spawn LOGFILE COMMAND...: COMMAND in the background, detached (nohup, no stdin), its output
# in LOGFILE and its pid in $PIDFILE. It keeps no other descriptor of its starter's: a service
# started under `flock LOCK scripts/x.sh up` would otherwise hold LOCK for as long as it runs.
spawn() {
  local logfile="$1"
  shift
  (
    local fd
    for fd in "/proc/$BASHPID/fd/"*; do
      fd="${fd##*/}"
      if [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec nohup "$@" >"$logfile" 2>&1 </dev/null
  ) &
  echo $! >"$PIDFILE"
}

# port_open HOST PORT: something accepts TCP connections there.
port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# http_ok URL: URL answers with a 2xx status within 2 s.
http_ok() {
  curl -fsS --max-time 2 "$1" >/dev/null 2>&1
}

# Why wait_until gave up.
readonly EXITED=3 TIMED_OUT=4

# wait_until PID TIMEOUT INTERVAL CHECK...: run CHECK every INTERVAL seconds until it succeeds.
# Fails with $EXITED as soon as process PID is gone, with $TIMED_OUT after TIMEOUT seconds
# (an empty TIMEOUT waits for ever).
wait_until() {
  local pid="$1" timeout="$2" interval="$3"
  shift 3
  local deadline=$((SECONDS + ${timeout:-0}))
  until "$@"; do
    kill -0 "$pid" 2>/dev/null || return "$EXITED"
    if [[ -n "$timeout" ]] && ((SECONDS > deadline)); then return "$TIMED_OUT"; fi
    sleep "$interval"
  done
}

# last_lines COUNT FILE...: the last COUNT lines of each log FILE on stderr (a failed start's).
last_lines() {
  local count="$1"
  shift
  tail -n "$count" "$@" >&2 || true
}

# stop_service TIMEOUT INTERVAL [NOUN]: stop the process of $PIDFILE (TERM, then KILL every
# INTERVAL seconds once TIMEOUT seconds passed) and wait until it is gone; remove $PIDFILE.
# Its messages call the process NOUN ("broker"), or nothing.
stop_service() {
  local timeout="$1" interval="$2" noun="${3:+$3 }" pid
  if pid="$(running_pid)"; then
    log "stopping ${noun}(pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS > deadline)); then
        log "${noun}did not stop in ${timeout}s; killing"
        kill -KILL "$pid" 2>/dev/null || true
      fi
      sleep "$interval"
    done
  fi
  rm -f "$PIDFILE"
}

# kill_strays PATTERN NOUN: KILL the processes whose command line matches PATTERN (one whose
# pid file was lost).
kill_strays() {
  local stray
  stray="$(pgrep -f "$1" || true)"
  if [[ -n "$stray" ]]; then
    log "stopping stray $2 process(es): $stray"
    # shellcheck disable=SC2086
    kill -KILL $stray 2>/dev/null || true
  fi
}

# print_status CHECK...: "up" when CHECK succeeds, else "down" and fail.
print_status() {
  if "$@"; then echo "up"; else echo "down"; return 1; fi
}
