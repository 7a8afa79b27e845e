#!/usr/bin/env bash
# Benchmarks ssechat beside its peers, side by side, and writes BENCHMARKS.md:
#   - ssechat (target/release/server, built here), data in a fresh temp folder per run;
#   - nginx + nchan (Debian's nginx and libnginx-mod-nchan), config bench/peers/nchan/;
#   - the original design, Hono on Bun (npm's bun and hono), code bench/peers/hono/;
#   - ssechat as two instances sharing one redis-server (Debian's redis-server, AOF with
#     appendfsync always: the same durability promise as SQLite), for the 5,000-subscriber
#     fan-out with the subscribers split over both (scenario fanout-5000-cluster).
# Peers are installed into target/bench-peers/ (git-ignored) when missing. Every server gets a
# fresh start for every scenario, pinned to CPU 0; the load tester (target/release/loadtest)
# runs pinned to CPU 1. Everything listens on and connects to 127.0.0.1 only. Every process
# started here is stopped by its PID.
#
# The scenarios run in rounds (two by default): each round runs every scenario, and each
# scenario against ssechat and nginx + nchan one right after the other, ssechat first in odd
# rounds and nchan first in even ones, so that a drift of the machine weighs on both alike.
# The page opens with each round's figures for both, the ratio ssechat / nchan per round and
# its spread (lowest–highest) over the rounds; the tables after it show round 1. Hono on Bun
# runs in round 1 only (it is not in the ratio).
#
# Usage: scripts/bench.sh [--quick] [--rounds N] [--only SCENARIO,...] [--targets TARGET,...] [--out FILE]
#   --quick     shrink sizes and durations (a few minutes a round); writes
#               target/bench-peers/BENCHMARKS.quick.md unless --out is given
#   --rounds    rounds to run, at least 2 (default 2, or SSECHAT_BENCH_ROUNDS)
#   --only      scenarios: idle, fanout-1000, fanout-5000, fanout-5000-cluster, search-5000,
#               throughput, join, rooms-1000, rooms-followed (default: all)
#   --targets   ssechat, nchan, hono (default: all three)
#   --out       where to write the page (default: BENCHMARKS.md for a full run)
# Environment:
#   SSECHAT_BENCH_ROUNDS=N     the default for --rounds
#   SSECHAT_BENCH_NO_BUILD=1   skip the cargo builds and use the server, loadtest and bench-tool
#                              already in ${CARGO_TARGET_DIR:-target}/release
# Run it when nothing else is building: the figures are only as good as the quiet machine.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SSECHAT_ROOT"

invocation="scripts/bench.sh${*:+ $*}"
quick=0
only="idle,fanout-1000,fanout-5000,fanout-5000-cluster,search-5000,throughput,join,rooms-1000,rooms-followed"
targets="ssechat,nchan,hono"
out=""
rounds="${SSECHAT_BENCH_ROUNDS:-2}"
while (( $# > 0 )); do
  case "$1" in
    --quick) quick=1 ;;
    --only) only="${2:?--only needs a list}"; shift ;;
    --targets) targets="${2:?--targets needs a list}"; shift ;;
    --rounds) rounds="${2:?--rounds needs a number}"; shift ;;
    --out) out="${2:?--out needs a file}"; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
wants() { [[ ",$1," == *",$2,"* ]]; }
if ! [[ "$rounds" =~ ^[1-9][0-9]*$ ]] || (( rounds < 2 )); then
  die "--rounds (or SSECHAT_BENCH_ROUNDS) must be a whole number of at least 2, not '$rounds'"
fi

# --- Sizes -------------------------------------------------------------------------------
if (( quick )); then
  idle_streams=1000
  f1_subs=200;  f1_rate=100; f1_duration=5s
  f2_subs=1000; f2_rate=50;  f2_duration=5s
  search_step=3s
  tp_subs=10;   tp_pubs=16;  tp_duration=3s
  join_sizes=(300 1000)
  connect_timeout=20s; drain_timeout=10s; settle_timeout=15s
  hono_join_max=1000
  r1_rooms=100;  r1_subs=1000
  r2_rooms=20;   r2_per=5; r2_subs=500; r2_rate=50; r2_duration=5s
  out="${out:-target/bench-peers/BENCHMARKS.quick.md}"
else
  idle_streams=10000
  f1_subs=1000; f1_rate=100; f1_duration=30s
  f2_subs=5000; f2_rate=50;  f2_duration=20s
  search_step=5s
  tp_subs=10;   tp_pubs=16;  tp_duration=10s
  join_sizes=(1000 3000 10000)
  connect_timeout=60s; drain_timeout=30s; settle_timeout=30s
  # The original design sends N²/2 new-user events: 50 million at 10,000 users, gigabytes of
  # buffers in Bun. It is run up to 3,000 (the issue's figures stop there too).
  hono_join_max=3000
  # 1,000 rooms of 10 subscribers, one publisher per room.
  r1_rooms=1000; r1_subs=10000
  # 5,000 streams each following 10 of 100 rooms, one publisher per room, 200 messages/s.
  r2_rooms=100;  r2_per=10; r2_subs=5000; r2_rate=200; r2_duration=20s
  out="${out:-BENCHMARKS.md}"
fi
# Streams being opened at once: below nginx's stock listen backlog (511), so every server's
# connect time is its own; a server with a smaller backlog shows accept-queue overflows.
connect_concurrency=500

# --- Preconditions -----------------------------------------------------------------------
command -v taskset >/dev/null || die "taskset not found (Debian: util-linux)"
# jq turns the rounds into the table of ratios (scripts/bench-rounds.jq).
command -v jq >/dev/null || ensure_apt_packages jq
(( $(nproc) >= 2 )) || die "needs 2 CPUs: the server on CPU 0, the load tester on CPU 1"
if pgrep -f "cargo |rustc" >/dev/null 2>&1; then
  log "WARNING: cargo or rustc is running: the figures will be disturbed"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(( $(ulimit -n) >= idle_streams + 100 )) ||
  log "WARNING: open-file limit $(ulimit -n) is low for $idle_streams streams"

# --- Build -------------------------------------------------------------------------------
# The binaries are where cargo puts them: ${CARGO_TARGET_DIR:-target}/release.
target_dir="${CARGO_TARGET_DIR:-target}"
[[ "$target_dir" == /* ]] || target_dir="$SSECHAT_ROOT/$target_dir"
bin_dir="$target_dir/release"
server_bin="$bin_dir/server"
loadtest_bin="$bin_dir/loadtest"
tool_bin="$bin_dir/bench-tool"
if [[ "${SSECHAT_BENCH_NO_BUILD:-0}" == 1 ]]; then
  log "SSECHAT_BENCH_NO_BUILD=1: not building; using the binaries in $bin_dir"
  for bin in "$server_bin" "$loadtest_bin" "$tool_bin"; do
    [[ -x "$bin" ]] || die "$bin not found: build it, or unset SSECHAT_BENCH_NO_BUILD"
  done
  ssechat_version="binaries not rebuilt ($server_bin of $(date -u -r "$server_bin" '+%Y-%m-%d %H:%M UTC')), checkout $(git rev-parse --short HEAD)"
else
  # The server is built exactly as `cargo leptos build --release` builds it (same features, same
  # LEPTOS_OUTPUT_NAME, which leptos reads at compile time), so neither build undoes the other.
  log "cargo build --release -p server; cargo build --release -p bench"
  LEPTOS_OUTPUT_NAME=ssechat cargo build --release -p server --bin server --no-default-features --features ssr
  cargo build --release -p bench --bins
  # Said now: someone may commit while the scenarios run.
  ssechat_version="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- server app Cargo.lock 2>/dev/null || echo ' with uncommitted changes')"
fi

# --- Peers -------------------------------------------------------------------------------
peers="$SSECHAT_ROOT/target/bench-peers"
mkdir -p "$peers"
if wants "$targets" nchan; then
  ensure_apt_packages nginx libnginx-mod-nchan
  nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
  [[ -x "$nginx_bin" ]] || die "nginx not found after installing it"
fi
if wants "$targets" ssechat && wants "$only" fanout-5000-cluster; then
  # The same installer the tests use (apt, when redis-server is missing).
  ensure_apt_packages redis-server
  redis_bin="$(command -v redis-server || echo /usr/bin/redis-server)"
  [[ -x "$redis_bin" ]] || die "redis-server not found after installing it"
fi
hono_dir="$peers/hono"
if wants "$targets" hono; then
  mkdir -p "$hono_dir"
  cp bench/peers/hono/server.ts "$hono_dir/server.ts"
  if ! cmp -s bench/peers/hono/package.json "$hono_dir/package.json" || [[ ! -x "$hono_dir/node_modules/.bin/bun" ]]; then
    command -v npm >/dev/null || die "npm not found: install Node.js 20+"
    log "npm: installing bun and hono into $hono_dir"
    cp bench/peers/hono/package.json "$hono_dir/package.json"
    npm install --prefix "$hono_dir" --no-audit --no-fund --loglevel=error >/dev/null
  fi
  bun_bin="$hono_dir/node_modules/.bin/bun"
  "$bun_bin" --version >/dev/null || die "the bun from npm does not run here"
fi

# --- Run bookkeeping ---------------------------------------------------------------------
run_dir="$peers/run"
rm -rf "$run_dir"
mkdir -p "$run_dir/logs"
results="$run_dir/results.jsonl"
commands="$run_dir/commands.txt"
disturbed="$run_dir/disturbed.txt"
: >"$disturbed"
: >"$results"
echo "$invocation   # runs everything below" >"$commands"

server_pid=""
server_pids=()
# One --url per instance of the server under test.
server_urls=()
server_data=""

# Stops one process by its PID: SIGTERM, up to 10 s to go, then SIGKILL.
stop_pid() {
  local pid="$1"
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "process $pid did not stop on SIGTERM; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

stop_server() {
  [[ -n "$server_pid" ]] || return 0
  stop_pid "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  # nginx's workers leave with their master; the other processes of a run (the second
  # instance, redis-server) are stopped the same way, each by its own PID.
  local pid
  for pid in "${server_pids[@]}"; do
    stop_pid "$pid"
  done
  if [[ -n "$server_data" ]]; then
    rm -rf "$server_data"
  fi
  server_pid=""
  server_pids=()
  server_urls=()
  server_data=""
}
trap 'stop_server' EXIT
trap 'exit 130' INT TERM

# The flags every ssechat instance runs with here: rate limits out of the way (configuration,
# not a special build) and room for every stream and every room.
ssechat_bench_args=(--rate-burst 1000000 --rate-per-sec 1000000 --addr-rate-burst 1000000 --addr-rate-per-sec 1000000 --max-streams 100000 --max-connections 120000 --max-streams-per-addr 100000 --new-ids-per-addr-per-min 1000000 --max-rooms 2000)

# Starts a fresh server of kind $1 for scenario $2: sets server_pid, server_pids, server_urls.
start_server() {
  local kind="$1" label="$2" port log
  port="$("$tool_bin" free-port)"
  log="$run_dir/logs/$kind-$label.log"
  server_urls=("http://127.0.0.1:$port")
  case "$kind" in
    ssechat)
      server_data="$(mktemp -d -t ssechat-bench.XXXXXX)"
      local args=(--addr "127.0.0.1:$port" --data-dir "$server_data" "${ssechat_bench_args[@]}")
      echo "taskset -c 0 target/release/server ${args[*]/#$server_data/\$DATA}" >>"$commands"
      taskset -c 0 "$server_bin" "${args[@]}" >"$log" 2>&1 &
      server_pid=$!
      server_pids=("$server_pid")
      ;;
    nchan)
      local prefix="$run_dir/nchan-$label"
      mkdir -p "$prefix"
      sed -e "s#@PREFIX@#$prefix#g" -e "s#@PORT@#$port#g" -e "s#@NOFILE@#$(ulimit -Hn)#g" \
        bench/peers/nchan/nginx.conf.in >"$prefix/nginx.conf"
      echo "taskset -c 0 nginx -p \$PREFIX -c \$PREFIX/nginx.conf   # bench/peers/nchan/nginx.conf.in, port $port" >>"$commands"
      taskset -c 0 "$nginx_bin" -p "$prefix" -c "$prefix/nginx.conf" >"$log" 2>&1 &
      server_pid=$!
      ;;
    hono)
      echo "PORT=$port NODE_ENV=production taskset -c 0 bun run bench/peers/hono/server.ts" >>"$commands"
      PORT="$port" NODE_ENV=production taskset -c 0 "$bun_bin" run "$hono_dir/server.ts" >"$log" 2>&1 &
      server_pid=$!
      server_pids=("$server_pid")
      ;;
    ssechat-cluster)
      start_cluster "$label" "$port" "$log" || return 1
      return 0
      ;;
  esac
  if ! "$tool_bin" wait-ready --addr "127.0.0.1:$port" --timeout 20s; then
    tail -20 "$log" >&2 || true
    stop_server
    return 1
  fi
  if [[ "$kind" == nchan ]]; then
    # The master and its workers, by parent PID: memory and CPU are summed over all.
    mapfile -t server_pids < <(printf '%s\n' "$server_pid"; pgrep -P "$server_pid" || true)
  fi
}

# Two ssechat instances on one redis-server, all pinned to CPU 0 like every other server here
# (the same one core, so the figure shows what sharing the room costs). The first instance is
# server_pid; the second and redis-server are in server_pids, for memory, CPU and stopping.
start_cluster() {
  local label="$1" port_a="$2" log="$3" port_b redis_port secret
  server_data="$(mktemp -d -t ssechat-bench.XXXXXX)"
  mkdir -p "$server_data/redis" "$server_data/a" "$server_data/b"
  redis_port="$("$tool_bin" free-port)"
  echo "taskset -c 0 redis-server --bind 127.0.0.1 --port $redis_port --dir \$DATA/redis --save '' --appendonly yes --appendfsync always" >>"$commands"
  taskset -c 0 "$redis_bin" --bind 127.0.0.1 --port "$redis_port" --dir "$server_data/redis" \
    --save "" --appendonly yes --appendfsync always >"$run_dir/logs/redis-$label.log" 2>&1 &
  local redis_pid=$!
  server_pids=("$redis_pid")
  if ! "$tool_bin" wait-ready --addr "127.0.0.1:$redis_port" --timeout 20s; then
    tail -20 "$run_dir/logs/redis-$label.log" >&2 || true
    return 1
  fi
  secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  port_b="$("$tool_bin" free-port)"
  while [[ "$port_b" == "$port_a" || "$port_b" == "$redis_port" ]]; do port_b="$("$tool_bin" free-port)"; done
  local instance port pids=() urls=()
  for instance in a b; do
    if [[ "$instance" == a ]]; then port="$port_a"; else port="$port_b"; fi
    local args=(--addr "127.0.0.1:$port" --data-dir "$server_data/$instance" "${ssechat_bench_args[@]}"
      --redis-url "redis://127.0.0.1:$redis_port")
    echo "SSECHAT_SESSION_SECRET=\$SECRET taskset -c 0 target/release/server ${args[*]//$server_data/\$DATA}" >>"$commands"
    SSECHAT_SESSION_SECRET="$secret" taskset -c 0 "$server_bin" "${args[@]}" >"${log%.log}-$instance.log" 2>&1 &
    pids+=($!)
    urls+=("http://127.0.0.1:$port")
  done
  server_pid="${pids[0]}"
  server_pids=("${pids[@]}" "$redis_pid")
  server_urls=("${urls[@]}")
  for port in "$port_a" "$port_b"; do
    if ! "$tool_bin" wait-ready --addr "127.0.0.1:$port" --timeout 20s; then
      tail -20 "${log%.log}-a.log" "${log%.log}-b.log" >&2 || true
      return 1
    fi
  done
}

# Builds or browsers of other people on this machine disturb the figures: names of what runs.
other_work() {
  pgrep -af "cargo |rustc|playwright|chrom" 2>/dev/null |
    awk '{ n = split($2, path, "/"); print path[n] }' | sort -u | paste -sd ' ' || true
}

# Appends one line to the results: the load tester's JSON object ($1) with the round it ran in
# and, when other work was running, what ($2, process names). The renderer ignores both fields.
record() {
  local json="$1" others="${2:-}" extra
  extra="\"round\":$round,"
  [[ -n "$others" ]] && extra+="\"disturbed\":\"${others//[\"\\]/}\","
  printf '{%s%s\n' "$extra" "${json#\{}" >>"$results"
}

# Runs one scenario ($1, the label) against one server ($2) with loadtest arguments $3...,
# in round $round (its logs and nchan's prefix are named LABEL-rROUND).
run_scenario() {
  local label="$1" kind="$2"
  shift 2
  local run_name="$label-r$round"
  log "$label: $kind (round $round of $rounds)"
  local others_before others_after
  others_before="$(other_work)"
  # The load tester speaks ssechat's protocol to every ssechat deployment.
  local protocol="${kind%-cluster}"
  if ! start_server "$kind" "$run_name"; then
    record "$(printf '{"label":"%s","target":"%s","error":"the server did not start"}' "$label" "$protocol")"
    stop_server
    return 0
  fi
  local pid_args=() url_args=() pid url
  for pid in "${server_pids[@]}"; do pid_args+=(--server-pid "$pid"); done
  for url in "${server_urls[@]}"; do url_args+=(--url "$url"); done
  local cmd=(taskset -c 1 "$loadtest_bin" --target "$protocol" "${url_args[@]}" "${pid_args[@]}"
    --label "$label" --connect-concurrency "$connect_concurrency"
    --connect-timeout "$connect_timeout" --drain-timeout "$drain_timeout" "$@")
  local shown_urls="--url \$URL"
  (( ${#server_urls[@]} > 1 )) && shown_urls="--url \$URL_A --url \$URL_B"
  echo "taskset -c 1 target/release/loadtest --target $protocol $shown_urls --server-pid \$PID... --label $label --connect-concurrency $connect_concurrency --connect-timeout $connect_timeout --drain-timeout $drain_timeout $*" >>"$commands"
  local json status=0
  # The human summary goes to the terminal and the log; the JSON line to the results.
  json="$(timeout 600 "${cmd[@]}" 2> >(tee "$run_dir/logs/loadtest-$kind-$run_name.txt" >&2))" || status=$?
  json="$(printf '%s\n' "$json" | tail -n 1)"
  others_after="$(other_work)"
  local others=""
  if [[ -n "$others_before$others_after" ]]; then
    log "WARNING: other work was running: ${others_before:-nothing} at the start, ${others_after:-nothing} at the end"
    others="$(printf '%s %s' "$others_before" "$others_after" | tr ' ' '\n' | sed '/^$/d' | sort -u | paste -sd ' ')"
    printf '%s/%s (round %s: %s)\n' "$label" "$protocol" "$round" "$others" >>"$disturbed"
  fi
  if [[ "$json" == "{"* ]]; then
    record "$json" "$others"
  else
    record "$(printf '{"label":"%s","target":"%s","error":"the load tester exited with %s and no report"}' \
      "$label" "$protocol" "$status")" "$others"
  fi
  stop_server
}

# The servers named in $@ (in round 1's order) that this run benchmarks, in round $round's
# order: as given in odd rounds, reversed in even ones, so that ssechat and nchan take turns
# at going first. Hono on Bun runs in round 1 only: it is in the tables, not in the ratios.
round_order() {
  local kind kinds=()
  for kind in "$@"; do
    wants "$targets" "${kind%-cluster}" || continue
    [[ "$kind" == hono ]] && (( round > 1 )) && continue
    kinds+=("$kind")
  done
  if (( round % 2 == 0 )); then
    local i
    for (( i = ${#kinds[@]} - 1; i >= 0; i-- )); do printf '%s\n' "${kinds[i]}"; done
  else
    (( ${#kinds[@]} == 0 )) || printf '%s\n' "${kinds[@]}"
  fi
}

# Runs scenario $2 against the servers named in $1 (comma-separated, in round 1's order) that
# are wanted, in this round's order, with loadtest arguments $3...
for_each_target() {
  local servers="$1" label="$2" kind kinds
  shift 2
  IFS=, read -ra kinds <<<"$servers"
  # Read into an array first: the servers and the load tester must not inherit the list as stdin.
  mapfile -t kinds < <(round_order "${kinds[@]}")
  for kind in "${kinds[@]}"; do
    run_scenario "$label" "$kind" "$@"
  done
}

started=$(date +%s)
for (( round = 1; round <= rounds; round++ )); do
  log "round $round of $rounds: $(round_order ssechat nchan hono | paste -sd ' ') in turn, every scenario"
  echo "# round $round of $rounds" >>"$commands"
  if wants "$only" idle; then
    for_each_target ssechat,nchan,hono idle idle --streams "$idle_streams" --hold 2s
  fi
  if wants "$only" fanout-1000; then
    for_each_target ssechat,nchan,hono fanout-1000 fanout --subscribers "$f1_subs" --publishers 1 \
      --rate "$f1_rate" --duration "$f1_duration"
  fi
  if wants "$only" fanout-5000; then
    for_each_target ssechat,nchan,hono fanout-5000 fanout --subscribers "$f2_subs" --publishers 1 \
      --rate "$f2_rate" --duration "$f2_duration"
  fi
  if wants "$only" fanout-5000-cluster; then
    # The fanout-5000 scenario again, its subscribers dealt out over two instances in turn; the
    # publisher posts on the first, so every message crosses Redis to reach half the room.
    for_each_target ssechat-cluster fanout-5000-cluster fanout --subscribers "$f2_subs" --publishers 1 \
      --rate "$f2_rate" --duration "$f2_duration"
  fi
  if wants "$only" search-5000; then
    # From 10 messages/s, doubling while a rate holds, then three bisection steps.
    for_each_target ssechat,nchan,hono search-5000 search --subscribers "$f2_subs" --publishers 1 \
      --step-duration "$search_step" --p99-bound-ms 100 --start-rate 10 --max-rate 1600 --refine-steps 3
  fi
  if wants "$only" throughput; then
    for_each_target ssechat,nchan,hono throughput throughput --subscribers "$tp_subs" --publishers "$tp_pubs" \
      --duration "$tp_duration"
  fi
  if wants "$only" join; then
    mapfile -t join_kinds < <(round_order ssechat hono)
    for size in "${join_sizes[@]}"; do
      for kind in "${join_kinds[@]}"; do
        if [[ "$kind" == hono ]] && (( size > hono_join_max )); then
          record "$(printf '{"label":"join-%s","target":"hono","error":"not run: N²/2 = %s new-user events"}' \
            "$size" "$(( size * (size - 1) / 2 ))")"
          continue
        fi
        run_scenario "join-$size" "$kind" join-burst --users "$size" --settle-timeout "$settle_timeout"
      done
    done
  fi
  # Rooms: ssechat and nchan (channels) only; the original design has one room.
  if wants "$only" rooms-1000; then
    for_each_target ssechat,nchan rooms-1000 --rooms "$r1_rooms" search --subscribers "$r1_subs" \
      --publishers "$r1_rooms" --step-duration "$search_step" --p99-bound-ms 100 --start-rate 100 \
      --max-rate 51200 --refine-steps 3
  fi
  if wants "$only" rooms-followed; then
    for_each_target ssechat,nchan rooms-followed --rooms "$r2_rooms" --rooms-per-stream "$r2_per" fanout \
      --subscribers "$r2_subs" --publishers "$r2_rooms" --rate "$r2_rate" --duration "$r2_duration"
  fi
done
log "all scenarios done in $(( $(date +%s) - started )) s"

# --- BENCHMARKS.md -----------------------------------------------------------------------
notes="$run_dir/notes.md"
: >"$notes"
if [[ -f "$out" ]]; then
  awk '/<!-- notes:end -->/ { keep = 0 } keep { print } /<!-- notes:begin -->/ { keep = 1 }' "$out" >"$notes"
fi
machine=(
  "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores"
  "Memory: $(free -g | awk '/^Mem:/ { print $2 }') GiB"
  "OS: Debian $(cat /etc/debian_version 2>/dev/null || echo '?'), Linux $(uname -r)"
)
if [[ -s "$disturbed" ]]; then
  machine+=("**Not quiet**: other work was running at the start or the end of $(wc -l <"$disturbed") runs (marked ‡): $(paste -sd ';' "$disturbed" | sed 's/;/; /g')")
else
  machine+=("Quiet: no cargo, rustc or browser running at the start or the end of any run")
fi
versions=(
  "ssechat: $ssechat_version, $(rustc --version)"
)
if wants "$targets" nchan; then
  versions+=("nginx $("$nginx_bin" -v 2>&1 | sed 's#.*nginx/##'), libnginx-mod-nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan)")
fi
if wants "$targets" hono; then
  versions+=("Bun $("$bun_bin" --version), Hono $(node -p "require('$hono_dir/node_modules/hono/package.json').version")")
fi
# The renderer shows one run per scenario and server: it is given round 1 (and the runs of
# round 1 that were disturbed). The rounds, side by side with their ratios, come from jq and
# go before its summary.
results_first="$run_dir/results.round1.jsonl"
disturbed_first="$run_dir/disturbed.round1.txt"
grep '^{"round":1,' "$results" >"$results_first" || true
grep ' (round 1: ' "$disturbed" >"$disturbed_first" || true
render_args=(render --results "$results_first" --out "$run_dir/page.md" --date "$(date -u '+%Y-%m-%d %H:%M UTC')"
  --commands "$commands" --notes "$notes" --disturbed "$disturbed_first")
for line in "${machine[@]}"; do render_args+=(--machine "$line"); done
for line in "${versions[@]}"; do render_args+=(--version "$line"); done
(( quick )) && render_args+=(--quick)
"$tool_bin" "${render_args[@]}"
jq -r -s --argjson rounds "$rounds" -f scripts/bench-rounds.jq "$results" >"$run_dir/rounds.md"
mkdir -p "$(dirname "$out")"
awk -v rounds_md="$run_dir/rounds.md" '
  !done && $0 == "## Against the targets" {
    while ((getline line < rounds_md) > 0) print line
    print ""
    print "## Against the targets, round 1"
    done = 1
    next
  }
  { print }
' "$run_dir/page.md" >"$out"
log "wrote $out (raw results of every round: $results)"
