#!/usr/bin/env bash
# `npm start`: a one-machine Drover cluster in the foreground, supervised.
#
#   etcd        127.0.0.1:$DROVER_ETCD_PORT (default 2379; peer $DROVER_ETCD_PEER_PORT, default 2380)  data $DIR/etcd
#   nats-server 127.0.0.1:$DROVER_NATS_PORT (default 4222; JetStream)                                  data $DIR/nats
#   master      $DROVER_MASTER_LISTEN      (default 0.0.0.0:5050, advertised as 127.0.0.1:5050)
#   scheduler   $DROVER_SCHEDULER_LISTEN   (default 0.0.0.0:5060, advertised as 127.0.0.1:5060)
#               Marathon /v2 HTTP API on $DROVER_SCHEDULER_HTTP_LISTEN (default 0.0.0.0:8080)
#   agent       work dir $DIR/agent, runs tasks as Docker containers
#   logs        $DIR/logs/<process>.log (the previous run's log is kept as <process>.log.1; a restarted
#               process appends to its log, after a "--- drover: restart N of <process> at <time> ---" line)
#   pid files   $DIR/run/<process>.pid: the pid of the process running now (rewritten at each restart,
#               removed when the process has exited)
#
# DIR is $DROVER_DATA_DIR, default $PWD/.drover. Ctrl-C (or SIGTERM/SIGHUP) stops every process this script
# started, in reverse order, and waits for each to exit (a second Ctrl-C kills what is left). Task
# containers are the agent's business: they keep running and a restarted agent re-attaches to them.
#
# Supervision: a process that exits on its own (any status, or killed by a signal) is started again after
# a delay of 1 s, doubling at each consecutive exit up to 30 s; the delay starts again from 1 s once the
# process has stayed up for 60 s. Each exit is reported ("drover: scheduler exited (status 1); restarting
# in 2 s (restart 3)") with the last lines of its log. Exit status 2 is Drover's "invalid configuration"
# (libs/config loadOrExit; also Go's flag-parsing error in etcd and nats-server): a restart cannot fix it,
# so the script reports it, stops the others and exits with status 2.
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
RUN=$DIR/run

RESTART_DELAY_FIRST_S=1 # delay before the first restart of a run of exits
RESTART_DELAY_MAX_S=30  # the delay doubles up to this
RESTART_RESET_S=60      # a process that stayed up this long starts again from the first delay
NO_RESTART_STATUS=2     # Drover's "invalid configuration" exit: reported, not restarted

# One entry per process, in start order (etcd, nats, master, scheduler, agent).
NAMES=()     # process name; also the name of its log and pid file
PIDS=()      # pid of the running process; empty while it waits for its restart
STARTED=()   # when it was (re)started, ms since the epoch
FAILS=()     # consecutive exits that came less than RESTART_RESET_S after a start
RESTARTS=()  # restarts so far
DUE=()       # when the pending restart is due (ms since the epoch); empty if none is pending
CHECKER=""   # pid of the background `drover agent list` of the startup check
NAP_FD=""    # see nap
STOPPING=0
FORCE=0
CRITICAL=0   # while 1, a signal is only recorded (PENDING_SIGNAL) and handled just after
PENDING_SIGNAL=""
NOW=0

now_ms() { # sets NOW (EPOCHREALTIME is "seconds.micros" with the locale's decimal point)
  local t=${EPOCHREALTIME//[!0-9]/}
  NOW=$((10#$t / 1000))
}

# nap SECONDS: waits without a fork (`read -t` on a pipe nobody writes to); a trapped signal interrupts it.
# (No redirection on this `read`: with one, bash 5.2 exits on SIGINT without running the traps.)
nap() {
  if [[ -n $NAP_FD ]]; then
    read -r -t "$1" -u "$NAP_FD" _ || true
  else
    sleep "$1" || true
  fi
}

is_alive() { # pid: running and not a zombie
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
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
      nap 0.2 # a second Ctrl-C also interrupts the nap
    done
  fi
  wait "$pid" 2>/dev/null || true
  rm -f "$RUN/$name.pid"
}

stop_all() {
  ((STOPPING)) && return 0
  STOPPING=1
  CRITICAL=0
  trap 'FORCE=1; drover_log "killing what is left"' INT TERM HUP
  if [[ -n $CHECKER ]]; then
    kill -TERM "$CHECKER" 2>/dev/null || true # timeout(1) passes it on to the CLI
    wait "$CHECKER" 2>/dev/null || true
  fi
  local i timeout
  for ((i = ${#NAMES[@]} - 1; i >= 0; i--)); do
    [[ -n ${PIDS[i]} ]] || continue # waiting for a restart: nothing runs
    case ${NAMES[i]} in etcd | nats) timeout=10 ;; *) timeout=20 ;; esac
    stop_one "${PIDS[i]}" "${NAMES[i]}" "$timeout"
    PIDS[i]=""
  done
  ((${#NAMES[@]} == 0)) || drover_log "stopped (data and logs kept in $DIR)"
}

# A child of this shell that gets a signal before it has reset the traps (between fork and exec) would run
# them too; only the script itself stops the cluster.
on_exit() {
  local rc=$?
  if [[ $BASHPID != "$$" ]]; then return 0; fi
  set +e # stop everything, whatever fails on the way
  stop_all
  exit "$rc"
}

on_signal() { # INT|TERM|HUP
  if [[ $BASHPID != "$$" ]]; then exit 1; fi
  if ((CRITICAL)); then
    PENDING_SIGNAL=$1
    return 0
  fi
  case $1 in
  INT)
    drover_log "interrupted"
    exit 130
    ;;
  TERM) exit 143 ;;
  HUP) exit 129 ;;
  esac
}

# A signal between starting a process and recording its pid would leave that process running unseen:
# such sections run with CRITICAL=1, and a signal that came meanwhile is handled at their end.
end_critical() {
  CRITICAL=0
  if [[ -n $PENDING_SIGNAL ]]; then on_signal "$PENDING_SIGNAL"; fi
  return 0
}

trap on_exit EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

fail() {
  drover_log "$*"
  exit 1
}

show_log() { # name [lines]
  drover_log "last lines of $LOGS/$1.log:"
  tail -n "${2:-30}" "$LOGS/$1.log" 2>/dev/null | sed 's/^/    /' >&2 || true
}

proc_command() { # name → CMD, the command line of that process
  case $1 in
  etcd)
    CMD=(etcd --name local --data-dir "$DIR/etcd"
      --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT"
      --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT"
      --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT"
      --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT"
      # Drover removes old events itself (log retention); etcd drops superseded revisions hourly and
      # keeps 2 GiB of space (see deploy/README.md, "etcd compaction").
      --auto-compaction-mode periodic --auto-compaction-retention 1h --quota-backend-bytes 2147483648)
    ;;
  nats) CMD=(nats-server -js -sd "$DIR/nats" -a 127.0.0.1 -p "$NATS_PORT") ;;
  master | scheduler | agent) CMD=(node "services/$1/dist/main.js") ;;
  agent-[1-9])
    # One of DROVER_LOCAL_AGENTS agents on this machine: its own work dir (and so its own agent id),
    # hostname, rack attribute, metrics port, share of the host port range and of the cpus and memory.
    local k=${1#agent-}
    CMD=(env "DROVER_AGENT_WORK_DIR=$DIR/agent-$k" "DROVER_AGENT_HOSTNAME=$AGENT_HOST_BASE-$k"
      "DROVER_AGENT_ATTRIBUTES=rack:r$k${DROVER_AGENT_ATTRIBUTES:+,$DROVER_AGENT_ATTRIBUTES}"
      "DROVER_AGENT_METRICS_LISTEN=$AGENT_METRICS_HOST:$((AGENT_METRICS_PORT + k - 1))"
      "DROVER_AGENT_PORTS=$((AGENT_PORT_FIRST + (k - 1) * AGENT_PORT_SHARE))-$((AGENT_PORT_FIRST + k * AGENT_PORT_SHARE - 1))"
      "DROVER_AGENT_CPUS=$AGENT_CPUS" "DROVER_AGENT_MEM=$AGENT_MEM"
      node services/agent/dist/main.js)
    ;;
  *)
    drover_log "unknown process $1"
    return 1
    ;;
  esac
}

launch() { # index: starts NAMES[index], appending to its log
  local i=$1 name=${NAMES[$1]} pid
  local -a CMD
  proc_command "$name"
  CRITICAL=1
  # Own session: the terminal's Ctrl-C reaches only this script, which then stops the processes in order.
  # (bash runs a background command in its own process group only with job control, so setsid execs in
  # place and $! is the process itself.)
  setsid "${CMD[@]}" >>"$LOGS/$name.log" 2>&1 </dev/null &
  pid=$!
  PIDS[i]=$pid
  now_ms
  STARTED[i]=$NOW
  DUE[i]=""
  end_critical
  echo "$pid" >"$RUN/$name.pid.tmp" && mv -f "$RUN/$name.pid.tmp" "$RUN/$name.pid"
}

start_proc() { # name: the first start of a process
  local name=$1 i=${#NAMES[@]}
  local log=$LOGS/$name.log
  if [[ -f $log ]]; then mv -f "$log" "$log.1"; fi
  : >"$log"
  NAMES[i]=$name
  PIDS[i]=""
  FAILS[i]=0
  RESTARTS[i]=0
  DUE[i]=""
  launch "$i"
  drover_log "started $name (pid ${PIDS[i]})"
}

pid_of() { # name
  local i
  for i in "${!NAMES[@]}"; do
    if [[ ${NAMES[i]} == "$1" ]]; then echo "${PIDS[i]}"; fi
  done
  return 0
}

describe_status() { # status → "status N" or "status N: SIGNAME"
  local rc=$1 sig
  if ((rc > 128)) && sig=$(kill -l "$((rc - 128))" 2>/dev/null); then
    echo "status $rc: SIG$sig"
  else
    echo "status $rc"
  fi
}

exited() { # index status: the process has exited on its own; schedule its restart, or stop the cluster
  local i=$1 rc=$2 name=${NAMES[$1]} pid=${PIDS[$1]}
  PIDS[i]=""
  rm -f "$RUN/$name.pid"
  now_ms
  if ((rc == NO_RESTART_STATUS)); then
    show_log "$name"
    local reason
    reason=$(tail -n 200 "$LOGS/$name.log" 2>/dev/null | grep -i 'invalid configuration' | tail -n 1) || true
    [[ -n $reason ]] || reason="status $NO_RESTART_STATUS is the exit for a bad configuration; see the log above"
    drover_log "$name (pid $pid) exited with status $rc: invalid configuration ($reason)"
    drover_log "a restart cannot fix its configuration: not restarting $name; stopping the cluster"
    exit "$NO_RESTART_STATUS"
  fi
  if ((NOW - STARTED[i] >= RESTART_RESET_S * 1000)); then FAILS[i]=0; fi
  local delay=$RESTART_DELAY_FIRST_S n
  for ((n = 0; n < FAILS[i] && delay < RESTART_DELAY_MAX_S; n++)); do delay=$((delay * 2)); done
  ((delay <= RESTART_DELAY_MAX_S)) || delay=$RESTART_DELAY_MAX_S
  FAILS[i]=$((FAILS[i] + 1))
  RESTARTS[i]=$((RESTARTS[i] + 1))
  DUE[i]=$((NOW + delay * 1000))
  show_log "$name" 10
  drover_log "$name exited ($(describe_status "$rc")); restarting in $delay s (restart ${RESTARTS[i]})"
}

supervise() { # one pass: report the processes that have exited, restart those whose delay is over
  local i pid rc
  for i in "${!NAMES[@]}"; do
    pid=${PIDS[i]}
    if [[ -n $pid ]] && ! is_alive "$pid"; then
      rc=0
      wait "$pid" 2>/dev/null || rc=$?
      exited "$i" "$rc"
    fi
  done
  now_ms
  for i in "${!NAMES[@]}"; do
    if [[ -n ${DUE[i]} ]] && ((NOW >= DUE[i])); then
      {
        echo
        echo "--- drover: restart ${RESTARTS[i]} of ${NAMES[i]} at $(date '+%F %T') ---"
      } >>"$LOGS/${NAMES[i]}.log"
      launch "$i"
      drover_log "restarted ${NAMES[i]} (pid ${PIDS[i]}, restart ${RESTARTS[i]})"
    fi
  done
}

idle() { # ms [pid]: waits that long at most, less if a process (or pid) exits or a restart is due first
  local end i left slice
  now_ms
  end=$((NOW + $1))
  while ((NOW < end)); do
    if [[ -n ${2:-} ]] && ! is_alive "$2"; then return 0; fi
    for i in "${!NAMES[@]}"; do
      if [[ -n ${PIDS[i]} ]] && ! is_alive "${PIDS[i]}"; then return 0; fi
      if [[ -n ${DUE[i]} ]] && ((NOW >= DUE[i])); then return 0; fi
    done
    left=$((end - NOW))
    ((left < 200)) || left=200
    printf -v slice '0.%03d' "$left"
    nap "$slice"
    now_ms
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
ETCD_PORT=${DROVER_ETCD_PORT:-2379}
ETCD_PEER_PORT=${DROVER_ETCD_PEER_PORT:-2380}
NATS_PORT=${DROVER_NATS_PORT:-4222}
for port in "$ETCD_PORT" "$ETCD_PEER_PORT" "$NATS_PORT"; do
  if ! [[ $port =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
    fail "DROVER_ETCD_PORT, DROVER_ETCD_PEER_PORT and DROVER_NATS_PORT must be port numbers (got '$port')"
  fi
done
export DROVER_ETCD_ENDPOINTS=http://127.0.0.1:$ETCD_PORT
export DROVER_NATS_SERVERS=nats://127.0.0.1:$NATS_PORT
export DROVER_MASTER_LISTEN=${DROVER_MASTER_LISTEN:-0.0.0.0:5050}
export DROVER_MASTER_ADVERTISE=${DROVER_MASTER_ADVERTISE:-127.0.0.1:5050}
export DROVER_SCHEDULER_LISTEN=${DROVER_SCHEDULER_LISTEN:-0.0.0.0:5060}
export DROVER_SCHEDULER_ADVERTISE=${DROVER_SCHEDULER_ADVERTISE:-127.0.0.1:5060}
export DROVER_SCHEDULER_HTTP_LISTEN=${DROVER_SCHEDULER_HTTP_LISTEN:-0.0.0.0:8080}
export DROVER_MASTER_METRICS_LISTEN=${DROVER_MASTER_METRICS_LISTEN:-127.0.0.1:9105}
export DROVER_SCHEDULER_METRICS_LISTEN=${DROVER_SCHEDULER_METRICS_LISTEN:-127.0.0.1:9106}
export DROVER_AGENT_METRICS_LISTEN=${DROVER_AGENT_METRICS_LISTEN:-127.0.0.1:9107}
export DROVER_MASTERS=${DROVER_MASTERS:-$DROVER_MASTER_ADVERTISE}
export DROVER_SCHEDULERS=${DROVER_SCHEDULERS:-$DROVER_SCHEDULER_ADVERTISE}
export DROVER_AGENT_WORK_DIR=$DIR/agent
export DROVER_LEADER_TTL_SECONDS=${DROVER_LEADER_TTL_SECONDS:-3}
export DROVER_LOG_LEVEL=${DROVER_LOG_LEVEL:-info}
# Fewer glibc malloc arenas: less native memory held after load peaks (deploy/README.md).
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2}

# DROVER_LOCAL_AGENTS=N (1-9) runs N agents on this machine (agent-1..agent-N, rack:r1..rN), so that
# constraints can be tried on one machine. They share the host: each gets 1/N of the cpus, the memory
# and the host port range 31000-32000 (unless DROVER_AGENT_CPUS / DROVER_AGENT_MEM say otherwise).
LOCAL_AGENTS=${DROVER_LOCAL_AGENTS:-1}
if ! [[ $LOCAL_AGENTS =~ ^[1-9]$ ]]; then
  drover_log "DROVER_LOCAL_AGENTS must be a number from 1 to 9 (got '$LOCAL_AGENTS')"
  exit 2
fi
AGENTS=(agent)
if ((LOCAL_AGENTS > 1)); then
  AGENTS=()
  for ((k = 1; k <= LOCAL_AGENTS; k++)); do AGENTS+=("agent-$k"); done
  AGENT_HOST_BASE=$(hostname 2>/dev/null || echo local)
  AGENT_METRICS_HOST=${DROVER_AGENT_METRICS_LISTEN%:*}
  AGENT_METRICS_PORT=${DROVER_AGENT_METRICS_LISTEN##*:}
  AGENT_PORT_FIRST=31000
  AGENT_PORT_SHARE=$((1001 / LOCAL_AGENTS))
  AGENT_CPUS=${DROVER_AGENT_CPUS:-$(awk -v n="$(nproc)" -v k="$LOCAL_AGENTS" 'BEGIN { printf "%.2f", n / k }')}
  AGENT_MEM=${DROVER_AGENT_MEM:-$(awk -v k="$LOCAL_AGENTS" '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.8 / k }' /proc/meminfo)}
fi

busy=$(ports_in_use "127.0.0.1:$ETCD_PORT=etcd" "127.0.0.1:$ETCD_PEER_PORT=etcd-peer" "127.0.0.1:$NATS_PORT=nats" \
  "$DROVER_MASTER_LISTEN=master" "$DROVER_SCHEDULER_LISTEN=scheduler" "$DROVER_SCHEDULER_HTTP_LISTEN=scheduler-http")
if [[ -n $busy ]]; then
  drover_log "cannot start: these addresses are already in use (another Drover cluster, etcd or NATS?):"
  sed 's/^/    /' <<<"$busy" >&2
  fail "stop whatever holds them and try again"
fi

mkdir -p "$LOGS" "$RUN" "$DIR/etcd" "$DIR/nats" "$DROVER_AGENT_WORK_DIR"
exec {NAP_FD}<> <(:) # see nap
rm -f "$RUN"/*.pid "$RUN"/*.pid.tmp # left by a run that was killed (its addresses are free, so it is gone)

# --- etcd ------------------------------------------------------------------------------------------
start_proc etcd
deadline=$((SECONDS + 30))
until ETCDCTL_API=3 etcdctl --endpoints="$DROVER_ETCD_ENDPOINTS" --dial-timeout=1s --command-timeout=2s \
  endpoint health >/dev/null 2>&1; do
  supervise
  if ((SECONDS >= deadline)); then
    show_log etcd
    fail "etcd did not become healthy within 30 s"
  fi
  idle 300
done
drover_log "etcd is healthy (pid $(pid_of etcd))"

# --- NATS ------------------------------------------------------------------------------------------
start_proc nats
deadline=$((SECONDS + 30))
until grep -q "Server is ready" "$LOGS/nats.log" 2>/dev/null && (: </dev/tcp/127.0.0.1/"$NATS_PORT") 2>/dev/null; do
  supervise
  if ((SECONDS >= deadline)); then
    show_log nats
    fail "nats-server was not ready within 30 s"
  fi
  idle 200
done
drover_log "NATS is ready (pid $(pid_of nats))"

# --- Drover services -------------------------------------------------------------------------------
for svc in master scheduler "${AGENTS[@]}"; do
  start_proc "$svc"
done

# `drover agent list --json` in the background, watching the processes meanwhile (a bad configuration
# stops the script at once); true once it lists an agent.
agent_registered() {
  local rc=0
  CRITICAL=1
  timeout 15 node services/cli/bin/drover.js agent list --json >"$LOGS/cli.out" 2>"$LOGS/cli.log" </dev/null &
  CHECKER=$!
  end_critical
  while is_alive "$CHECKER"; do
    supervise
    idle 1000 "$CHECKER"
  done
  wait "$CHECKER" 2>/dev/null || rc=$?
  CHECKER=""
  ((rc == 0)) || return 1
  node -e '
    let s = "";
    process.stdin.on("data", (d) => { s += d; }).on("end", () => {
      let v;
      try { v = JSON.parse(s); } catch { process.exit(1); }
      process.exit(Array.isArray(v) && v.length >= Number(process.argv[1]) ? 0 : 1);
    });' "$LOCAL_AGENTS" <"$LOGS/cli.out"
}

drover_log "waiting for $LOCAL_AGENTS agent(s) to register (up to 90 s)"
deadline=$((SECONDS + 90))
until agent_registered; do
  if ((SECONDS >= deadline)); then
    drover_log "last output of 'drover agent list --json': $(head -c 500 "$LOGS/cli.out" 2>/dev/null || true)"
    tail -n 5 "$LOGS/cli.log" 2>/dev/null | sed 's/^/    /' >&2 || true
    fail "$LOCAL_AGENTS agent(s) did not register within 90 s; see the logs in $LOGS"
  fi
  supervise
  idle 1000
done
rm -f "$LOGS/cli.out"

cat >&2 <<EOF
drover: etcd       127.0.0.1:$ETCD_PORT   data $DIR/etcd
drover: NATS       127.0.0.1:$NATS_PORT   data $DIR/nats (JetStream)
drover: master     $DROVER_MASTER_ADVERTISE   (listening on $DROVER_MASTER_LISTEN)
drover: scheduler  $DROVER_SCHEDULER_ADVERTISE   (listening on $DROVER_SCHEDULER_LISTEN)
drover: Marathon   http://${DROVER_SCHEDULER_HTTP_ADVERTISE:-${DROVER_SCHEDULER_ADVERTISE%:*}:${DROVER_SCHEDULER_HTTP_LISTEN##*:}}/v2/apps   (the /v2 REST API; listening on $DROVER_SCHEDULER_HTTP_LISTEN)
$(if ((LOCAL_AGENTS == 1)); then
  echo "drover: agent      work dir $DROVER_AGENT_WORK_DIR"
else
  for ((k = 1; k <= LOCAL_AGENTS; k++)); do
    echo "drover: agent-$k    hostname $AGENT_HOST_BASE-$k, rack:r$k, work dir $DIR/agent-$k, ports $((AGENT_PORT_FIRST + (k - 1) * AGENT_PORT_SHARE))-$((AGENT_PORT_FIRST + k * AGENT_PORT_SHARE - 1))"
  done
fi)
drover: metrics    http://$DROVER_MASTER_METRICS_LISTEN/metrics (master)
                   http://$DROVER_SCHEDULER_METRICS_LISTEN/metrics (scheduler)
$(if ((LOCAL_AGENTS == 1)); then
  echo "                   http://$DROVER_AGENT_METRICS_LISTEN/metrics (agent)"
else
  for ((k = 1; k <= LOCAL_AGENTS; k++)); do
    echo "                   http://$AGENT_METRICS_HOST:$((AGENT_METRICS_PORT + k - 1))/metrics (agent-$k)"
  done
fi)
drover: logs       $LOGS   pid files $RUN
drover: cluster ready — try: npx drover app add deploy/config/example-app.json
drover: Ctrl-C stops the cluster (task containers are left to the agent)
EOF

# --- run until interrupted, restarting what exits ----------------------------------------------------------
while true; do
  supervise
  idle 5000
done
