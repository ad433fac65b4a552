#!/usr/bin/env bash
# Our server at several revisions, side by side in one run: the fan-out
# workload against each revision in turn, REPEAT rounds, so that a change on
# the hot path can state its before/after figures from one run.
#
#   bash bench/ab.sh facd7cd HEAD            # or any git revisions; WORK = the tree
#   RATES="500 2000" REPEAT=3 bash bench/ab.sh main WORK
#   bash bench/ab.sh WORK miniircd           # beside a peer (miniircd, from the venv)
#   bash bench/ab.sh /tmp/copy WORK          # a directory: a source tree as it is
#
# Each revision is exported (git archive) to $OUT/src-<rev> and run with that
# directory first on PYTHONPATH, from the bench venv ($VENV, as in run.sh);
# WORK runs the working tree itself.  Server on CPU $SERVER_CPU, the load
# generator on CPU $GEN_CPU, 127.0.0.1 only, a fresh server per rate.
# Extra `twistd chat` options for every revision go in CHAT_ARGS, and for
# the n-th revision only (from 1) in ARGS_<n>: `ARGS_2="--history none"
# bash bench/ab.sh WORK WORK` compares one tree with itself under two
# settings.  LOADGEN_ARGS go to every fan-out run (e.g. "--rooms 10").
# PROTO picks the front-end our revisions are driven through: chat (the
# line protocol, the default), irc or web.  NODES=N runs each of our
# revisions as N nodes on one redis-server (all on the server CPU, users
# round-robin over the nodes, CPU summed over the nodes and Redis); the
# default, 0, is one node without --hub.
# Writes $OUT/ab.md (with the lines each data segment to a user carried,
# and the server CPU per segment) and one JSON per run.
set -uo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
VENV="${VENV:-/tmp/benchvenv}"
PY="$VENV/bin/python"
OUT="${OUT:-$BENCH/out/ab-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"  # absolute: the servers run in their own directories
SERVER_CPU="${SERVER_CPU:-0}"
GEN_CPU="${GEN_CPU:-1}"
RATES="${RATES:-2000}"
REPEAT="${REPEAT:-3}"
DURATION="${DURATION:-6}"
USERS="${USERS:-100}"
SENDERS="${SENDERS:-10}"
OBSERVERS="${OBSERVERS:-3}"
CHAT_ARGS="${CHAT_ARGS:-}"
LOADGEN_ARGS="${LOADGEN_ARGS:-}"  # e.g. "--rooms 10"
PROTO="${PROTO:-chat}"
NODES="${NODES:-0}"
case "$PROTO" in
  chat) LISTEN=--listen ;;
  irc) LISTEN=--irc-listen ;;
  web) LISTEN=--web-listen ;;
  *) echo "PROTO is chat, irc or web" >&2; exit 2 ;;
esac
LIMITS="--flood-rate 0 --max-connections 0 --max-connections-per-ip 0 --max-new-connections-per-ip 0 --max-registrations-per-ip 0 --login-timeout 0 --udp-port 0 --udp-interface 127.0.0.1"
PORT="${PORT_BASE:-18000}"
SERVER_PID=""
NODE_PIDS=()
REDIS_PID=""

[ $# -ge 1 ] || { echo "usage: bench/ab.sh REV [REV ...]" >&2; exit 2; }
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

stop_pid() {
  kill -TERM "$1" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

stop_server() {
  local pid
  for pid in "${NODE_PIDS[@]}" $SERVER_PID $REDIS_PID; do stop_pid "$pid"; done
  NODE_PIDS=()
  SERVER_PID=""
  REDIS_PID=""
}
trap stop_server EXIT

# The source tree of each revision.
REVS=("$@")
SOURCES=()
for rev in "$@"; do
  if [ "$rev" = miniircd ]; then
    SOURCES+=("")
  elif [ "$rev" = WORK ]; then
    SOURCES+=("$ROOT")
  elif [ -d "$rev" ]; then
    SOURCES+=("$(cd "$rev" && pwd)")
  else
    dir="$OUT/src-$(git -C "$ROOT" rev-parse --short "$rev")"
    mkdir -p "$dir"
    git -C "$ROOT" archive "$rev" | tar -x -C "$dir"
    SOURCES+=("$dir")
  fi
done

"$PY" "$BENCH/loadgen.py" mkusers --users "$USERS" --prefix f --out "$OUT/users.json" >/dev/null

for round in $(seq "$REPEAT"); do
  for rate in $RATES; do
    for i in "${!SOURCES[@]}"; do
      rev="${REVS[$i]}"
      src="${SOURCES[$i]}"
      extra_var="ARGS_$((i + 1))"
      dir="$OUT/run-$round-$rate-$((i + 1))"
      mkdir -p "$dir"
      cp "$OUT/users.json" "$dir/users.json"
      PORT=$((PORT + 1))
      proto=$PROTO
      # Our IRC listener: the account's password as PASS, channel #general.
      proto_args=""
      [ "$PROTO" = irc ] && proto_args="--irc-pass --irc-channel #general"
      if [ "$rev" = miniircd ]; then
        proto=irc
        proto_args=""
        (cd "$dir" && exec taskset -c "$SERVER_CPU" "$VENV/bin/miniircd" --listen 127.0.0.1 \
          --ports "$PORT" --setuid root >"$dir/stdout.log" 2>&1) &
      else
        hub=""
        ports=()
        if [ "$NODES" -gt 0 ]; then
          (cd "$dir" && exec taskset -c "$SERVER_CPU" redis-server --bind 127.0.0.1 \
            --port "$PORT" --save "" --appendonly no --dir "$dir" \
            --logfile "$dir/redis.log" >/dev/null 2>&1) &
          REDIS_PID=$!
          "$PY" "$BENCH/loadgen.py" waitport --port "$PORT" --timeout 30 >/dev/null
          hub="--hub redis://127.0.0.1:$PORT/0"
          PORT=$((PORT + 1))
        fi
        for node in $(seq "$(( NODES > 0 ? NODES : 1 ))"); do
          [ "$node" = 1 ] || PORT=$((PORT + 1))
          ports+=("$PORT")
          mkdir -p "$dir/node$node"
          # shellcheck disable=SC2086
          (cd "$dir/node$node" && PYTHONPATH="$src" exec taskset -c "$SERVER_CPU" "$VENV/bin/twistd" -n \
            --pidfile= --logfile="$dir/node$node/twistd.log" chat \
            "$LISTEN" "tcp:$PORT:interface=127.0.0.1:backlog=1024" --users "$dir/users.json" \
            --audit-log "$dir/node$node/server.log" $LIMITS $hub $CHAT_ARGS ${!extra_var:-} \
            >"$dir/node$node/stdout.log" 2>&1) &
          NODE_PIDS+=("$!")
        done
      fi
      if [ "$rev" = miniircd ]; then
        SERVER_PID=$!
        pids=$SERVER_PID
        ports=("$PORT")
      else
        pids="$(IFS=,; echo "${NODE_PIDS[*]}")${REDIS_PID:+,$REDIS_PID}"
      fi
      started=1
      for port in "${ports[@]}"; do
        "$PY" "$BENCH/loadgen.py" waitport --port "$port" --timeout 30 >/dev/null || started=""
      done
      if [ -z "$started" ]; then
        log "$rev did not start; see $dir"
        stop_server
        continue
      fi
      log "round $round rate $rate: $rev"
      timeout 300 taskset -c "$GEN_CPU" "$PY" "$BENCH/loadgen.py" \
        --json "$OUT/$round-$rate-$((i + 1)).json" fanout --proto "$proto" --label "$rev" \
        --port "$(IFS=,; echo "${ports[*]}")" --pid "$pids" --users "$USERS" --senders "$SENDERS" \
        --observers "$OBSERVERS" --rate "$rate" --duration "$DURATION" --prefix f \
        --connect-concurrency 16 $proto_args $LOADGEN_ARGS >/dev/null 2>>"$OUT/loadgen.stderr" ||
        log "loadgen reported an error ($rev, rate $rate)"
      stop_server
    done
  done
done

"$PY" - "$OUT" "$@" <<'EOF' | tee "$OUT/ab.md"
import glob, json, os, statistics, sys
out, revs = sys.argv[1], sys.argv[2:]
rows = {}
for path in sorted(glob.glob(os.path.join(out, "*-*-*.json"))):
    round_, rate, index = os.path.basename(path)[:-5].split("-")
    result = json.load(open(path))
    rows.setdefault((int(rate), int(index)), []).append(result)
print("| rate | revision | deliveries / server CPU-s (each round) | median | p50 ms | p99 ms "
      "| lines per segment | server CPU us per segment | lost |")
print("|---|---|---|---|---|---|---|---|---|")
for (rate, index), results in sorted(rows.items()):
    per = [r.get("lines_per_server_cpu_s") or 0 for r in results]
    p50 = [r.get("latency", {}).get("p50_ms") for r in results]
    p99 = [r.get("latency", {}).get("p99_ms") for r in results]
    perSegment = [r.get("lines_per_segment") for r in results]
    cpuPerSegment = [r.get("server_cpu_us_per_segment") for r in results]
    lost = sum(r.get("lost", 0) or 0 for r in results)
    fmt = lambda xs: " / ".join("-" if x is None else f"{x:.1f}" for x in xs)
    print(f"| {rate} | {revs[index - 1]} | {' / '.join(f'{x/1e3:.0f}k' for x in per)} "
          f"| {statistics.median(per)/1e3:.0f}k | {fmt(p50)} | {fmt(p99)} "
          f"| {fmt(perSegment)} | {fmt(cpuPerSegment)} | {lost} |")
EOF
