#!/usr/bin/env bash
# `npm start`: a one-machine Drover cluster in the foreground.
#
#   etcd        127.0.0.1:2379 (peer 2380)  data  $DIR/etcd
#   nats-server 127.0.0.1:4222 (JetStream)  data  $DIR/nats
#   master      $DROVER_MASTER_LISTEN      (default 0.0.0.0:5050, advertised as 127.0.0.1:5050)
#   scheduler   $DROVER_SCHEDULER_LISTEN   (default 0.0.0.0:5060, advertised as 127.0.0.1:5060)
#   agent       work dir $DIR/agent, runs tasks as Docker containers
#   logs        $DIR/logs/<process>.log (the previous run's log is kept as <process>.log.1)
#
# DIR is $DROVER_DATA_DIR, default $PWD/.drover. Ctrl-C (or SIGTERM/SIGHUP) stops every process this script
# started, in reverse order, and waits for each to exit (a second Ctrl-C kills what is left). Task
# containers are the agent's business: they keep running and a restarted agent re-attaches to them.
# If any process exits on its own, the script reports it, stops the rest and exits non-zero.
set -euo pipefail

DIR=${DROVER_DATA_DIR:-$PWD/.drover}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
export DROVER_DATA_DIR=$DIR

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=../lib/ensure-deps.sh
source deploy/lib/ensure-deps.sh

LOGS=$DIR/logs
PIDS=()
NAMES=()
STOPPING=0
FORCE=0

is_alive() { # pid: running and not a zombie
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

stop_one() { # pid name timeout-seconds
  local pid=$1 name=$2 timeout=$3
  if is_alive "$pid"; then
    drover_log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + timeout)) killed=0
    while is_alive "$pid"; do
      if ((!killed && (FORCE || SECONDS >= deadline))); then
        ((FORCE)) || drover_log "$name did not exit within ${timeout} s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        killed=1
      fi
      sleep 0.2 || true # a second Ctrl-C also interrupts the sleep
    done
  fi
  wait "$pid" 2>/dev/null || true
}

stop_all() {
  ((STOPPING)) && return 0
  STOPPING=1
  trap 'FORCE=1; drover_log "killing what is left"' INT TERM HUP
  local i timeout
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    case ${NAMES[i]} in etcd | nats) timeout=10 ;; *) timeout=20 ;; esac
    stop_one "${PIDS[i]}" "${NAMES[i]}" "$timeout"
  done
  ((${#PIDS[@]} == 0)) || drover_log "stopped (data and logs kept in $DIR)"
}

on_exit() {
  local rc=$?
  set +e # stop everything, whatever fails on the way
  stop_all
  exit "$rc"
}
trap on_exit EXIT
trap 'drover_log "interrupted"; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

fail() {
  drover_log "$*"
  exit 1
}

show_log() { # name
  drover_log "last lines of $LOGS/$1.log:"
  tail -n 30 "$LOGS/$1.log" 2>/dev/null | sed 's/^/    /' >&2 || true
}

start_proc() { # name command...
  local name=$1
  shift
  local log=$LOGS/$name.log
  [[ -f $log ]] && mv -f "$log" "$log.1"
  # Own session: the terminal's Ctrl-C reaches only this script, which then stops the processes in order.
  # (bash runs a background command in its own process group only with job control, so setsid execs in
  # place and $! is the process itself.)
  setsid "$@" >"$log" 2>&1 </dev/null &
  PIDS+=("$!")
  NAMES+=("$name")
}

pid_of() { # name
  local i
  for i in "${!NAMES[@]}"; do
    if [[ ${NAMES[i]} == "$1" ]]; then echo "${PIDS[i]}"; fi
  done
  return 0
}

check_alive() { # name...
  local name pid
  for name in "$@"; do
    pid=$(pid_of "$name")
    if ! is_alive "$pid"; then
      local rc=0
      wait "$pid" 2>/dev/null || rc=$?
      show_log "$name"
      fail "$name exited during startup (exit status $rc); see $LOGS/$name.log"
    fi
  done
}

ports_in_use() { # host:port=label... → prints the busy ones
  node -e '
    const net = require("node:net");
    const checks = process.argv.slice(1).map((arg) => {
      const [addr, label] = arg.split("=");
      const i = addr.lastIndexOf(":");
      const host = addr.slice(0, i);
      const port = Number(addr.slice(i + 1));
      return new Promise((resolve) => {
        const srv = net.createServer();
        srv.once("error", (err) => resolve(`${addr} (${label}): ${err.code}`));
        srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(undefined)));
      });
    });
    Promise.all(checks).then((busy) => {
      for (const b of busy) if (b) console.log(b);
    });
  ' "$@"
}

# --- dependencies ------------------------------------------------------------------------------------
drover_ensure_deps || fail "the dependencies are not ready (see above)"

for svc in master scheduler agent; do
  [[ -f services/$svc/dist/main.js ]] || fail "services/$svc/dist/main.js is missing: run 'npm run build'"
done
[[ -f services/cli/bin/drover.js ]] || fail "services/cli/bin/drover.js is missing"

# --- configuration (the services read these; see deploy/config/*.env) ------------------------------------
export DROVER_ETCD_ENDPOINTS=http://127.0.0.1:2379
export DROVER_NATS_SERVERS=nats://127.0.0.1:4222
export DROVER_MASTER_LISTEN=${DROVER_MASTER_LISTEN:-0.0.0.0:5050}
export DROVER_MASTER_ADVERTISE=${DROVER_MASTER_ADVERTISE:-127.0.0.1:5050}
export DROVER_SCHEDULER_LISTEN=${DROVER_SCHEDULER_LISTEN:-0.0.0.0:5060}
export DROVER_SCHEDULER_ADVERTISE=${DROVER_SCHEDULER_ADVERTISE:-127.0.0.1:5060}
export DROVER_MASTERS=${DROVER_MASTERS:-$DROVER_MASTER_ADVERTISE}
export DROVER_SCHEDULERS=${DROVER_SCHEDULERS:-$DROVER_SCHEDULER_ADVERTISE}
export DROVER_AGENT_WORK_DIR=$DIR/agent
export DROVER_LEADER_TTL_SECONDS=${DROVER_LEADER_TTL_SECONDS:-3}
export DROVER_LOG_LEVEL=${DROVER_LOG_LEVEL:-info}

busy=$(ports_in_use 127.0.0.1:2379=etcd 127.0.0.1:2380=etcd-peer 127.0.0.1:4222=nats \
  "$DROVER_MASTER_LISTEN=master" "$DROVER_SCHEDULER_LISTEN=scheduler")
if [[ -n $busy ]]; then
  drover_log "cannot start: these addresses are already in use (another Drover cluster, etcd or NATS?):"
  sed 's/^/    /' <<<"$busy" >&2
  fail "stop whatever holds them and try again"
fi

mkdir -p "$LOGS" "$DIR/etcd" "$DIR/nats" "$DROVER_AGENT_WORK_DIR"

# --- etcd ------------------------------------------------------------------------------------------
start_proc etcd etcd --name local --data-dir "$DIR/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster local=http://127.0.0.1:2380
deadline=$((SECONDS + 30))
until ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:2379 --dial-timeout=1s --command-timeout=2s \
  endpoint health >/dev/null 2>&1; do
  check_alive etcd
  if ((SECONDS >= deadline)); then
    show_log etcd
    fail "etcd did not become healthy within 30 s"
  fi
  sleep 0.3
done
drover_log "etcd is healthy (pid $(pid_of etcd))"

# --- NATS ------------------------------------------------------------------------------------------
start_proc nats nats-server -js -sd "$DIR/nats" -a 127.0.0.1 -p 4222
deadline=$((SECONDS + 30))
until grep -q "Server is ready" "$LOGS/nats.log" 2>/dev/null && (: </dev/tcp/127.0.0.1/4222) 2>/dev/null; do
  check_alive nats
  if ((SECONDS >= deadline)); then
    show_log nats
    fail "nats-server was not ready within 30 s"
  fi
  sleep 0.2
done
drover_log "NATS is ready (pid $(pid_of nats))"

# --- Drover services -------------------------------------------------------------------------------
for svc in master scheduler agent; do
  start_proc "$svc" node "services/$svc/dist/main.js"
  drover_log "started $svc (pid $(pid_of "$svc"))"
done

drover_log "waiting for an agent to register (up to 90 s)"
deadline=$((SECONDS + 90))
until out=$(timeout --foreground 15 node services/cli/bin/drover.js agent list --json 2>"$LOGS/cli.log") &&
  node -e '
    let s = "";
    process.stdin.on("data", (d) => { s += d; }).on("end", () => {
      let v;
      try { v = JSON.parse(s); } catch { process.exit(1); }
      process.exit(Array.isArray(v) && v.length > 0 ? 0 : 1);
    });' <<<"$out"; do
  check_alive master scheduler agent
  if ((SECONDS >= deadline)); then
    drover_log "last output of 'drover agent list --json': ${out:-<none>}"
    tail -n 5 "$LOGS/cli.log" 2>/dev/null | sed 's/^/    /' >&2 || true
    fail "no agent registered within 90 s; see the logs in $LOGS"
  fi
  sleep 1
done

cat >&2 <<EOF
drover: etcd       127.0.0.1:2379   data $DIR/etcd
drover: NATS       127.0.0.1:4222   data $DIR/nats (JetStream)
drover: master     $DROVER_MASTER_ADVERTISE   (listening on $DROVER_MASTER_LISTEN)
drover: scheduler  $DROVER_SCHEDULER_ADVERTISE   (listening on $DROVER_SCHEDULER_LISTEN)
drover: agent      work dir $DROVER_AGENT_WORK_DIR
drover: logs       $LOGS
drover: cluster ready — try: npx drover app add deploy/config/example-app.json
drover: Ctrl-C stops the cluster (task containers are left to the agent)
EOF

# --- run until interrupted or until a process exits -------------------------------------------------------
while true; do
  exited=""
  rc=0
  wait -n -p exited "${PIDS[@]}" || rc=$?
  [[ -n $exited ]] || continue
  for i in "${!PIDS[@]}"; do
    if [[ ${PIDS[i]} == "$exited" ]]; then
      show_log "${NAMES[i]}"
      fail "${NAMES[i]} (pid $exited) exited with status $rc; stopping the cluster"
    fi
  done
done
