#!/usr/bin/env bash
# Run the whole benchmark comparison on this machine and write
# bench/RESULTS.md and bench/p99_vs_rate.png.
#
# Every server is pinned to CPU $SERVER_CPU (taskset), the load generator to
# CPU $GEN_CPU; only 127.0.0.1 is used.  Peers that are not installed are
# skipped and RESULTS.md says so.  Raw results (one JSON per run), server logs
# and the exact commands go to bench/out/run-<time>/ (gitignored).
#
# Knobs (environment): VENV (default /tmp/benchvenv), PEERS, RATES, DURATION,
# IDLE_USERS, IDLE_SECONDS, IDLE_LOGIN_TIMEOUT, STORM_USERS, PORT_BASE, and
# OUT=bench/out/run-<time> to add peers to an earlier run (the ceiling is
# then measured only if missing; the bare hashing goes with our login
# storm); RESULTS and PLOT (default
# bench/RESULTS.md, bench/p99_vs_rate.png) say where the report goes.
#
# PEER_WORKLOADS (default "fanout storm idle") chooses what each peer runs.
# The fan-out runs in REPEAT (2) rounds, every peer in turn each round:
# <peer>-fanout-<rate>-<round>.json (a re-run of a peer replaces its own).
# Ours is measured with IRC clients too (its --irc-listen, channel #general,
# PASS = the account's password), beside the IRC peers: ours-irc-fanout-*.
#
# The scale-out (hub) section runs when HUB=1 or PEERS includes "hub": one
# node without --hub, then HUB_NODES (1 2 3) nodes on one redis-server, the
# same users spread over them, at HUB_RATES (500 2000) msg/s, REPEAT (2)
# rounds of every setup in turn.  Only it:
#   PEERS=hub bash bench/run.sh
#
# The front-ends section runs when FRONTENDS=1 or PEERS includes
# "frontends": one server listening for line, IRC and web clients, and at
# each of FRONTENDS_RATES (500 2000) msg/s the FRONTENDS_WORKLOADS (line
# mixed irc web rooms; also rooms-mixed rooms-irc rooms-web all3 line-long)
# in turn, REPEAT (2) rounds, so that each stands beside all-line in one run:
#   PEERS=frontends bash bench/run.sh
set -uo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
VENV="${VENV:-/tmp/benchvenv}"
PY="$VENV/bin/python"
OUT="${OUT:-$BENCH/out/run-$(date +%Y%m%d-%H%M%S)}"  # an existing run: adds to it
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"  # absolute: the servers run in their own directories
RESULTS="${RESULTS:-$BENCH/RESULTS.md}"
PLOT="${PLOT:-$BENCH/p99_vs_rate.png}"
SERVER_CPU="${SERVER_CPU:-0}"
GEN_CPU="${GEN_CPU:-1}"
PEERS="${PEERS:-ours words miniircd ngircd inspircd}"
RATES="${RATES:-500 1000 2000 4000 8000}"
DURATION="${DURATION:-4}"
USERS="${USERS:-100}"
SENDERS="${SENDERS:-10}"
OBSERVERS="${OBSERVERS:-3}"
WINDOW="${WINDOW:-200}"
READ_INTERVAL="${READ_INTERVAL:-5}"
IDLE_USERS="${IDLE_USERS:-10000}"
IDLE_SECONDS="${IDLE_SECONDS:-15}"
IDLE_LOGIN_TIMEOUT="${IDLE_LOGIN_TIMEOUT:-420}"
STORM_USERS="${STORM_USERS:-1000}"
HUB_NODES="${HUB_NODES:-1 2 3}"
HUB_RATES="${HUB_RATES:-500 2000}"
PEER_WORKLOADS="${PEER_WORKLOADS:-fanout storm idle}"
FRONTENDS_RATES="${FRONTENDS_RATES:-500 2000}"
FRONTENDS_WORKLOADS="${FRONTENDS_WORKLOADS:-line mixed irc web rooms}"
REPEAT="${REPEAT:-2}"
ROOMS="${ROOMS:-10}"
PORT="${PORT_BASE:-17000}"
SERVER_PID=""
IRC_PORT=""    # ours: the port of its IRC listener
NODE_PIDS=()   # the nodes of the hub section, and their ports
NODE_PORTS=()
REDIS_PID=""
REDIS_PORT=""

mkdir -p "$OUT"
touch "$OUT/commands.txt" "$OUT/settings.txt" "$OUT/skipped.txt"
ulimit -n "$(ulimit -Hn)"  # idle scale: one descriptor per session, both sides

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
commas() { local IFS=,; echo "$*"; }
record() { printf '%s\n' "$*" >>"$OUT/commands.txt"; }
# forget SECTION: drop the commands a section recorded in an earlier run
# into this OUT (those naming $OUT/SECTION/, SECTION.json or SECTION-*.json,
# and a server started for it, which ends in "# SECTION"), so that re-running
# one section (PEERS=hub) replaces its commands.
forget() {
  grep -v -e "$OUT/$1/" -e "/$1\.json" -e "/$1-[^ ]*\.json" -e "# $1\$" "$OUT/commands.txt" \
    >"$OUT/commands.txt.new"
  mv "$OUT/commands.txt.new" "$OUT/commands.txt"
}
# quote ARGS...: the words as a shell would need them, quoted only when they
# hold anything but plain characters (an IRC channel's "#" starts a comment).
quote() {
  local word words=() q="'"
  for word in "$@"; do
    if [[ "$word" =~ ^[-A-Za-z0-9_./,:=@+]+$ ]]; then
      words+=("$word")
    else
      words+=("$q${word//$q/$q\\$q$q}$q")
    fi
  done
  echo "${words[*]}"
}

# Options of `twistd chat` that raise a limit a workload would hit; passed
# only when `twistd chat --help` lists them (they come with the hardening
# issue).  0 turns a limit off.
CHAT_LIMITS=(
  "--flood-rate 0"
  "--max-connections 0"
  "--max-connections-per-ip 0"
  "--max-new-connections-per-ip 0"
  "--max-registrations-per-ip 0"
  "--login-timeout 0"
)
chat_options() {
  local help opts=() item
  help="$("$VENV/bin/twistd" chat --help 2>/dev/null)"
  for item in "${CHAT_LIMITS[@]}" "--udp-port 0" "--udp-interface 127.0.0.1"; do
    if grep -q -- "${item%% *}=" <<<"$help"; then opts+=($item); fi
  done
  echo "${opts[*]}"
}

installed() {
  case "$1" in
    hub)
      command -v redis-server >/dev/null && "$PY" -c "import txredisapi" 2>/dev/null &&
        grep -q -- "--hub=" <<<"$("$VENV/bin/twistd" chat --help 2>/dev/null)"
      ;;
    ours) [ -x "$VENV/bin/twistd" ] && "$VENV/bin/twistd" chat --help >/dev/null 2>&1 ;;
    words) "$PY" -c "import twisted.words" 2>/dev/null ;;
    miniircd) [ -x "$VENV/bin/miniircd" ] ;;
    ngircd) command -v ngircd >/dev/null ;;
    inspircd) command -v inspircd >/dev/null ;;
    *) return 1 ;;
  esac
}

hub_wanted() { [ "${HUB:-0}" = 1 ] || [[ " $PEERS " == *" hub "* ]]; }
frontends_wanted() { [ "${FRONTENDS:-0}" = 1 ] || [[ " $PEERS " == *" frontends "* ]]; }
peer_workload() { [[ " $PEER_WORKLOADS " == *" $1 "* ]]; }

proto_args() {  # loadgen options for the protocol a server speaks
  case "$1" in
    ours) echo "--proto chat" ;;
    words) echo "--proto irc --irc-pass" ;;
    *) echo "--proto irc" ;;
  esac
}

# ours_command DIR PORT USERS [IRC_PORT [WEB_PORT]]: the command line of one
# of our servers, with IRC and web listeners when their ports are given (the
# limits raised apply to every front-end).
ours_command() {
  echo "$VENV/bin/twistd -n --pidfile= --logfile=$1/twistd.log chat" \
    "--listen tcp:$2:interface=127.0.0.1:backlog=1024" \
    "${4:+--irc-listen tcp:$4:interface=127.0.0.1:backlog=1024}" \
    "${5:+--web-listen tcp:$5:interface=127.0.0.1:backlog=1024}" \
    "--users $3 --audit-log $1/server.log $(chat_options)"
}

# start_server NAME DIR CPUS SECTION: start NAME pinned to CPUS, its files
# in DIR, for the section SECTION (its command is recorded as one of that
# section's); sets SERVER_PID and PORT (and IRC_PORT for ours, which listens
# for IRC clients too).
start_server() {
  local name="$1" dir="$2" cpus="$3" section="$4" cmd
  PORT=$((PORT + 1))
  IRC_PORT=""
  mkdir -p "$dir"
  case "$name" in
    ours)
      IRC_PORT=$PORT  # then PORT, the line port, is the last one taken
      PORT=$((PORT + 1))
      cmd="$(ours_command "$dir" "$PORT" "$dir/users.json" "$IRC_PORT")"
      ;;
    words) cmd="$PY $BENCH/peers/words_server.py --port $PORT" ;;
    miniircd) cmd="$VENV/bin/miniircd --listen 127.0.0.1 --ports $PORT --setuid root" ;;
    ngircd)
      sed -e "s/@PORT@/$PORT/" -e "s#@DIR@#$dir#g" "$BENCH/peers/ngircd.conf.in" >"$dir/ngircd.conf"
      cmd="ngircd -n -f $dir/ngircd.conf"
      ;;
    inspircd)
      sed -e "s/@PORT@/$PORT/" -e "s#@DIR@#$dir#g" "$BENCH/peers/inspircd.conf.in" >"$dir/inspircd.conf"
      cmd="inspircd --nofork --runasroot --config=$dir/inspircd.conf"
      ;;
  esac
  record "taskset -c $cpus $cmd  # $section"
  # shellcheck disable=SC2086
  (cd "$dir" && exec taskset -c "$cpus" $cmd >"$dir/stdout.log" 2>&1) &
  SERVER_PID=$!
  if ! "$PY" "$BENCH/loadgen.py" waitport --port "$PORT" --timeout 30 >/dev/null ||
    { [ -n "$IRC_PORT" ] &&
      ! "$PY" "$BENCH/loadgen.py" waitport --port "$IRC_PORT" --timeout 30 >/dev/null; }; then
    log "$name did not start; see $dir/stdout.log"
    stop_server
    return 1
  fi
}

# stop_pids PID...: SIGTERM, up to 10 s to exit, then SIGKILL.
stop_pids() {
  local pid
  kill -TERM "$@" 2>/dev/null
  for pid in "$@"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  stop_pids "$SERVER_PID"
  SERVER_PID=""
}

stop_nodes() {
  [ "${#NODE_PIDS[@]}" -gt 0 ] && stop_pids "${NODE_PIDS[@]}"
  NODE_PIDS=()
  NODE_PORTS=()
}

stop_redis() {
  [ -n "$REDIS_PID" ] || return 0
  stop_pids "$REDIS_PID"
  REDIS_PID=""
}

cleanup() { stop_server; stop_nodes; stop_redis; }
trap cleanup EXIT

# gen JSON ARGS...: run the load generator on its own CPU, bounded in time.
gen() {
  local json="$1"; shift
  record "taskset -c $GEN_CPU $PY bench/loadgen.py --json ${json#"$BENCH/"} $(quote "$@")"
  timeout 900 taskset -c "$GEN_CPU" "$PY" "$BENCH/loadgen.py" --json "$json" "$@" \
    >/dev/null 2>>"$OUT/loadgen.stderr" || log "loadgen $1 reported an error ($json)"
}

describe_settings() {
  case "$1" in
    ours) echo "ours: listen backlog=1024; $(chat_options) (the IRC and web front-ends share these limits; ours with IRC clients: --irc-listen beside --listen, channel #general, PASS with the account's password)" ;;
    words) echo "words: no limits to raise (listen backlog 1024)" ;;
    miniircd) echo "miniircd: no flood limits; select() loop (at most ~1020 connections)" ;;
    ngircd) echo "ngircd: bench/peers/ngircd.conf.in (MaxPenaltyTime=0, MaxConnections=0, MaxConnectionsIP=0, MaxJoins=0, PingTimeout=600, DNS/Ident/PAM off)" ;;
    inspircd) echo "inspircd: bench/peers/inspircd.conf.in (commandrate=1e9, threshold=1e6, fakelag=no, localmax/globalmax=30000, sendq 16 MiB, pingfreq=600)" ;;
    frontends) echo "frontends: one server as ours with --listen, --irc-listen and --web-listen (tcp, 127.0.0.1, backlog=1024); the same limits for every front-end" ;;
    hub) echo "hub: every node as ours plus --hub redis://127.0.0.1:<port>/0 (accounts in Redis); $(redis-server --version | cut -d' ' -f1-3) --save \"\" --appendonly no, pinned with the nodes" ;;
  esac
}

run_fanout() {
  local name="$1" round="$2" dir="$OUT/$1-fanout" rate
  mkdir -p "$dir"
  if [ "$round" = 1 ]; then
    rm -f "$OUT/$name-fanout-"*.json "$OUT/$name-irc-fanout-"*.json
    forget "$name-fanout"
    forget "$name-irc-fanout"
    if [ "$name" = ours ]; then
      "$PY" "$BENCH/loadgen.py" mkusers --users "$USERS" --prefix f --out "$dir/users.json" >/dev/null
    fi
  fi
  start_server "$name" "$dir" "$SERVER_CPU" "$name-fanout" || return
  for rate in $RATES 0; do
    log "$name fan-out rate=$rate, round $round"
    gen "$OUT/$name-fanout-$rate-$round.json" fanout $(proto_args "$name") --label "$name" \
      --port "$PORT" --pid "$SERVER_PID" --users "$USERS" --senders "$SENDERS" \
      --observers "$OBSERVERS" --rate "$rate" --window "$WINDOW" \
      --duration "$DURATION" --read-interval "$READ_INTERVAL" --prefix f \
      --connect-concurrency 16
    [ -n "$IRC_PORT" ] || continue
    # Ours again with IRC clients, as the IRC peers are measured: the same
    # users (nick = account, PASS its password) in #general.
    log "$name fan-out rate=$rate, IRC clients, round $round"
    gen "$OUT/$name-irc-fanout-$rate-$round.json" fanout --proto irc --irc-pass \
      --irc-channel "#general" --label "$name-irc" --port "$IRC_PORT" \
      --pid "$SERVER_PID" --users "$USERS" --senders "$SENDERS" \
      --observers "$OBSERVERS" --rate "$rate" --window "$WINDOW" \
      --duration "$DURATION" --read-interval "$READ_INTERVAL" --prefix f \
      --connect-concurrency 16
  done
  stop_server
}

# frontend_args WORKLOAD LINE_PORT IRC_PORT WEB_PORT: the loadgen options of
# one workload of the front-ends section (empty for an unknown one).
frontend_args() {
  local irc="--irc-pass --irc-channel #general" rooms="--rooms $ROOMS"
  case "$1" in
    line) echo "--proto chat --port $2" ;;
    # All line with each line as long as a web user's frame of the default
    # 48-byte text (183 bytes): the same bytes on the wire as web.
    line-long) echo "--proto chat --size 172 --port $2" ;;
    mixed) echo "--proto chat,irc $irc --port $2,$3" ;;
    irc) echo "--proto irc $irc --port $3" ;;
    web) echo "--proto web --port $4" ;;
    all3) echo "--proto chat,irc,web $irc --port $2,$3,$4" ;;
    rooms) echo "--proto chat $rooms --port $2" ;;
    rooms-mixed) echo "--proto chat,irc $irc $rooms --port $2,$3" ;;
    rooms-irc) echo "--proto irc $irc $rooms --port $3" ;;
    rooms-web) echo "--proto web $rooms --port $4" ;;
  esac
}

# The front-ends section: one of our servers listening for line, IRC and web
# clients; at each rate, every workload in turn, REPEAT rounds, so that each
# is measured beside all-line on the same server in the same run.
# Results: frontends-<workload>-<rate>-<round>.json (a re-run replaces them all).
run_frontends() {
  local dir="$OUT/frontends" line irc web port cmd rate round workload args
  mkdir -p "$dir"
  rm -f "$OUT"/frontends-*.json
  forget frontends
  "$PY" "$BENCH/loadgen.py" mkusers --users "$USERS" --prefix w --out "$dir/users.json" >/dev/null
  line=$((PORT + 1)) irc=$((PORT + 2)) web=$((PORT + 3))
  PORT=$web
  cmd="$(ours_command "$dir" "$line" "$dir/users.json" "$irc" "$web")"
  record "taskset -c $SERVER_CPU $cmd"
  # shellcheck disable=SC2086
  (cd "$dir" && exec taskset -c "$SERVER_CPU" $cmd >"$dir/stdout.log" 2>&1) &
  SERVER_PID=$!
  for port in "$line" "$irc" "$web"; do
    if ! "$PY" "$BENCH/loadgen.py" waitport --port "$port" --timeout 30 >/dev/null; then
      log "the front-ends server did not start; see $dir/stdout.log"
      stop_server
      return 1
    fi
  done
  for rate in $FRONTENDS_RATES; do
    for round in $(seq "$REPEAT"); do
      for workload in $FRONTENDS_WORKLOADS; do
        args="$(frontend_args "$workload" "$line" "$irc" "$web")"
        if [ -z "$args" ]; then
          log "front-ends: unknown workload $workload"
          continue
        fi
        log "front-ends: $workload rate=$rate round $round"
        # shellcheck disable=SC2086
        gen "$OUT/frontends-$workload-$rate-$round.json" fanout $args \
          --label "$workload" --pid "$SERVER_PID" --users "$USERS" \
          --senders "$SENDERS" --observers "$OBSERVERS" --rate "$rate" \
          --duration "$DURATION" --read-interval "$READ_INTERVAL" --prefix w \
          --connect-concurrency 16
      done
    done
  done
  stop_server
}

# start_redis DIR: a redis-server of our own on the server CPU; sets REDIS_PID
# and REDIS_PORT.
start_redis() {
  local dir="$1" cmd
  PORT=$((PORT + 1))
  REDIS_PORT=$PORT
  mkdir -p "$dir"
  cmd=(redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no
    --dir "$dir" --logfile "$dir/redis.log")
  record "taskset -c $SERVER_CPU $(printf '%q ' "${cmd[@]}")"
  (cd "$dir" && exec taskset -c "$SERVER_CPU" "${cmd[@]}" >"$dir/stdout.log" 2>&1) &
  REDIS_PID=$!
  if ! "$PY" "$BENCH/loadgen.py" waitport --port "$REDIS_PORT" --timeout 30 >/dev/null; then
    log "redis-server did not start; see $dir/redis.log"
    stop_redis
    return 1
  fi
}

# start_nodes COUNT DIR USERS [HUB]: COUNT of our servers on the server CPU,
# each with --hub HUB when given; sets NODE_PIDS and NODE_PORTS.
start_nodes() {
  local count="$1" dir="$2" users="$3" hub="${4:-}" i cmd
  for i in $(seq "$count"); do
    PORT=$((PORT + 1))
    mkdir -p "$dir/node$i"
    cmd="$(ours_command "$dir/node$i" "$PORT" "$users")${hub:+ --hub $hub}"
    record "taskset -c $SERVER_CPU $cmd"
    # shellcheck disable=SC2086
    (cd "$dir/node$i" && exec taskset -c "$SERVER_CPU" $cmd >"$dir/node$i/stdout.log" 2>&1) &
    NODE_PIDS+=("$!")
    NODE_PORTS+=("$PORT")
  done
  for i in "${!NODE_PORTS[@]}"; do
    if ! "$PY" "$BENCH/loadgen.py" waitport --port "${NODE_PORTS[$i]}" --timeout 30 >/dev/null; then
      log "node $((i + 1)) did not start; see $dir/node$((i + 1))/stdout.log"
      stop_nodes
      return 1
    fi
  done
}

# The scale-out section: the same fan-out (USERS users, SENDERS senders) on
# one node without a hub, then on 1, 2, 3 nodes sharing one Redis, users and
# senders round-robin over the nodes; CPU summed over the nodes and Redis;
# REPEAT rounds of every setup in turn, so that each round's setups share
# the machine's speed of the moment.  Results: hub-<nodes>-<rate>-<round>.json,
# nodes 0 being the node without a hub (a re-run replaces them all).
run_hub() {
  local dir="$OUT/hub" nodes rate hub pids round
  mkdir -p "$dir"
  rm -f "$OUT"/hub-*.json
  forget hub
  "$PY" "$BENCH/loadgen.py" mkusers --users "$USERS" --prefix h --out "$dir/users.json" >/dev/null
  start_redis "$dir/redis" || return
  hub="redis://127.0.0.1:$REDIS_PORT/0"
  # Accounts live in Redis: the first logins on the hub register them (one
  # Argon2 hash each, outside the measurement).
  for round in $(seq "$REPEAT"); do
    for nodes in 0 $HUB_NODES; do
      if [ "$nodes" = 0 ]; then
        start_nodes 1 "$dir/single" "$dir/users.json" || continue
      else
        start_nodes "$nodes" "$dir/nodes$nodes" "$dir/users.json" "$hub" || continue
      fi
      pids="$(commas "${NODE_PIDS[@]}")"
      [ "$nodes" = 0 ] || pids+=",$REDIS_PID"
      for rate in $HUB_RATES; do
        log "hub: $nodes node(s), rate=$rate, round $round"
        gen "$OUT/hub-$nodes-$rate-$round.json" fanout --proto chat --label "hub-$nodes" \
          --port "$(commas "${NODE_PORTS[@]}")" --pid "$pids" --users "$USERS" \
          --senders "$SENDERS" --observers "$OBSERVERS" --rate "$rate" \
          --duration "$DURATION" --read-interval "$READ_INTERVAL" --prefix h \
          --connect-concurrency 16
      done
      stop_nodes
    done
  done
  stop_redis
}

run_idle() {
  local name="$1" dir="$OUT/$1-idle" extra=() cpus="$SERVER_CPU" timeout=60
  mkdir -p "$dir"
  forget "$name-idle"
  if [ "$name" = ours ]; then
    "$PY" "$BENCH/loadgen.py" mkusers --users "$IDLE_USERS" --prefix i --out "$dir/users.json" >/dev/null
    # Each login is an Argon2 verify (~25 ms): let the login phase use both
    # CPUs, then pin the server to $SERVER_CPU before measuring.
    cpus="0-$(($(nproc) - 1))"
    extra=(--heartbeat --pin-after-login "$SERVER_CPU")
    timeout="$IDLE_LOGIN_TIMEOUT"
  fi
  start_server "$name" "$dir" "$cpus" "$name-idle" || return
  log "$name idle scale, $IDLE_USERS sessions"
  gen "$OUT/$name-idle.json" idle $(proto_args "$name") --label "$name" --port "$PORT" \
    --pid "$SERVER_PID" --users "$IDLE_USERS" --prefix i --duration "$IDLE_SECONDS" \
    --login-timeout "$timeout" --connect-concurrency 64 "${extra[@]}"
  stop_server
}

run_storm() {
  local name="$1" dir="$OUT/$1-storm" timeout=60
  forget "$name-storm"
  rm -rf "$dir"  # new users every time: ours registers them in a new users.json
  if [ "$name" = ours ]; then
    timeout=300  # ours hashes: ~25 s for 1000 on one core
    # The bare hashing ours is held against, just before its storm, so that
    # both see the machine's speed of the moment.
    forget hashbench
    log "argon2 hash baseline: $STORM_USERS hashes on CPU $SERVER_CPU"
    GEN_CPU="$SERVER_CPU" gen "$OUT/hashbench.json" hashbench --users "$STORM_USERS"
  fi
  start_server "$name" "$dir" "$SERVER_CPU" "$name-storm" || return
  log "$name login storm, $STORM_USERS users"
  gen "$OUT/$name-storm.json" storm $(proto_args "$name") --label "$name" \
    --port "$PORT" --pid "$SERVER_PID" --users "$STORM_USERS" --prefix n \
    --login-timeout "$timeout"
  stop_server
}

run_ceiling() {
  local dir="$OUT/blaster" chunk
  mkdir -p "$dir"
  for chunk in 64; do
    PORT=$((PORT + 1))
    record "taskset -c $SERVER_CPU $PY bench/loadgen.py blaster --port $PORT --chunk-lines $chunk --max-seconds 60"
    taskset -c "$SERVER_CPU" "$PY" "$BENCH/loadgen.py" blaster --port "$PORT" \
      --chunk-lines "$chunk" --max-seconds 60 >"$dir/flood-$chunk.log" 2>&1 &
    SERVER_PID=$!
    "$PY" "$BENCH/loadgen.py" waitport --port "$PORT" >/dev/null
    log "generator ceiling: flood, $chunk lines per write"
    gen "$OUT/ceiling-flood-$chunk-event.json" ceiling --label "flood-$chunk" \
      --port "$PORT" --pid "$SERVER_PID" --duration 3 --read-interval 0
    gen "$OUT/ceiling-flood-$chunk-polled.json" ceiling --label "flood-$chunk" \
      --port "$PORT" --pid "$SERVER_PID" --duration 3 --read-interval "$READ_INTERVAL"
    stop_server
  done
  # The trivial asyncio relay server (one write per recipient per line) as
  # fast as it goes: small chunks, the generator's worst case.
  PORT=$((PORT + 1))
  record "taskset -c $SERVER_CPU $PY bench/loadgen.py blaster --mode relay --port $PORT --max-seconds 60"
  taskset -c "$SERVER_CPU" "$PY" "$BENCH/loadgen.py" blaster --mode relay \
    --port "$PORT" --max-seconds 60 >"$dir/relay.log" 2>&1 &
  SERVER_PID=$!
  "$PY" "$BENCH/loadgen.py" waitport --port "$PORT" >/dev/null
  for ri in 0 "$READ_INTERVAL"; do
    log "generator ceiling: relay blaster, read interval $ri ms"
    gen "$OUT/ceiling-relay-$ri.json" fanout --label "relay-blaster" --port "$PORT" \
      --pid "$SERVER_PID" --users "$USERS" --senders "$SENDERS" \
      --observers "$OBSERVERS" --rate 0 --window "$WINDOW" --duration 3 \
      --read-interval "$ri"
  done
  stop_server
}

log "results in $OUT"
[ -s "$OUT/parameters.txt" ] || {
  echo "venv: $VENV"
  echo "server cpu: $SERVER_CPU, generator cpu: $GEN_CPU"
  echo "fan-out: users=$USERS senders=$SENDERS observers=$OBSERVERS rates=[$RATES] + windowed($WINDOW) duration=${DURATION}s read-interval=${READ_INTERVAL}ms"
  echo "idle: users=$IDLE_USERS idle=${IDLE_SECONDS}s login-timeout=${IDLE_LOGIN_TIMEOUT}s"
  echo "storm: users=$STORM_USERS"
} >"$OUT/parameters.txt"
# A section run again into the same directory states its new parameters.
if frontends_wanted; then
  sed -i '/^front-ends:/d' "$OUT/parameters.txt"
  echo "front-ends: users=$USERS senders=$SENDERS observers=$OBSERVERS workloads=[$FRONTENDS_WORKLOADS] rates=[$FRONTENDS_RATES] rounds=$REPEAT rooms=$ROOMS duration=${DURATION}s read-interval=${READ_INTERVAL}ms; with several front-ends user i speaks the (i mod K)th" >>"$OUT/parameters.txt"
fi
if hub_wanted; then
  sed -i '/^hub:/d' "$OUT/parameters.txt"
  echo "hub: users=$USERS senders=$SENDERS observers=$OBSERVERS nodes=[0 $HUB_NODES] (0: one node without --hub) rates=[$HUB_RATES] rounds=$REPEAT duration=${DURATION}s read-interval=${READ_INTERVAL}ms; users and senders round-robin over the nodes" >>"$OUT/parameters.txt"
fi
PEERS_ONLY="$(tr ' ' '\n' <<<"$PEERS" | grep -vx -e hub -e frontends -e '' | tr '\n' ' ')"

[ -e "$OUT/ceiling-relay-0.json" ] || run_ceiling

PEERS_FOUND=""
for name in $PEERS_ONLY; do
  if ! installed "$name"; then
    log "skipping $name: not installed"
    echo "$name" >>"$OUT/skipped.txt"
    continue
  fi
  describe_settings "$name" >>"$OUT/settings.txt"
  PEERS_FOUND+=" $name"
done
# The fan-out in rounds, every server in turn each round, so that each
# round's servers share the machine's speed of the moment.
if peer_workload fanout; then
  for round in $(seq "$REPEAT"); do
    for name in $PEERS_FOUND; do run_fanout "$name" "$round"; done
  done
fi
for name in $PEERS_FOUND; do
  ! peer_workload storm || run_storm "$name"
  ! peer_workload idle || run_idle "$name"
done

if frontends_wanted; then
  if installed ours; then
    describe_settings ours >>"$OUT/settings.txt"
    describe_settings frontends >>"$OUT/settings.txt"
    run_frontends
  else
    log "skipping frontends: twistd chat is not installed"
    echo frontends >>"$OUT/skipped.txt"
  fi
fi

if hub_wanted; then
  if installed hub; then
    describe_settings hub >>"$OUT/settings.txt"
    run_hub
  else
    log "skipping hub: needs redis-server, txredisapi and twistd chat --hub"
    echo hub >>"$OUT/skipped.txt"
  fi
fi

"$PY" "$BENCH/report.py" "$OUT" --results "$RESULTS" --plot "$PLOT"
log "wrote $RESULTS and $PLOT"
