#!/usr/bin/env bash
# run-bench.sh [--smoke] [--pin] [--journal-only | --cluster-only]: start wsmaster from a
# throwaway config, run the wsbench scenarios against it, print one summary
# table, stop the server. The full run then starts the uWebSockets.js peer
# (tests/bench/uws/, npm package `uwebsockets`, installed on first use) and
# runs join, echo and rooms against it the same way, for the wschat/uWS
# ratios in the table; last, it runs the fanout ramp three times, each on a
# fresh server with `history_file off`, `history_fsync everysec` and
# `history_fsync always`, for the journal's cost as ratios to `off`.
#
# Builds nothing: the Makefile passes WSCHAT_BIN (server binary) and
# WSBENCH (load generator) in the environment; WSCHAT_ROOT (repo root,
# for web_root) defaults to two levels above this script. BENCH_OUT, when
# set, is a directory that receives the JSON reports and the server log.
#
# --smoke: small figures, every scenario with --check, never the peer; exit
# 1 if any check fails, the server dies, or its log has [alert]/[crit]
# lines; a second server with `history_fsync always` runs a small fanout
# check (delivery waits for the disk there). Full: the figures in the design (fanout ramp 1000 members, echo
# 100, conns 10000, rooms 8000 x 2), report only; exit non-zero only if a
# scenario could not run at all.
#
# --pin (make bench PIN=1): the server (wsmaster with `workers 1`, or the
# peer) on CPU 0 and wsbench on CPU 1, with taskset; unpinned by default.
# The journal process inherits the mask: pinned, it shares CPU 0.
#
# --journal-only (make bench-journal): only the three fanout ramps above.
#
# Cluster (issue 14), last in a full run and alone with --cluster-only
# (make bench-cluster): when redis-server is installed and wsmaster knows
# the `cluster` directive, one redis-server on a free loopback port (its
# own folder in $TMP, --save '' --appendonly no) and 3 wsmaster nodes
# (workers 1 each, `cluster redis://127.0.0.1:PORT`, one cluster_prefix
# for this run) share the room of the fanout scenario: 1000 members spread
# evenly over the nodes, 10 publishers spread too, 100-byte messages; one
# fixed step of 100 msg/s, then the doubling ramp from 250 msg/s. Before
# the cluster, a single node with `cluster off` (workers 1 too) runs the
# same 100 msg/s step: the added p50 is the difference. Pinned, the nodes
# and redis-server share CPU 0. --smoke: 3 nodes, 30 members, a few
# messages, --check. Without redis-server or the directive it is skipped
# with the reason in the table, never failed.
set -u

MODE=full
PIN=0
JOURNAL_ONLY=0
CLUSTER_ONLY=0
for arg in "$@"; do
    case "$arg" in
        --smoke) MODE=smoke ;;
        --pin) PIN=1 ;;
        --journal-only) JOURNAL_ONLY=1 ;;
        --cluster-only) CLUSTER_ONLY=1 ;;
        *) echo "usage: $0 [--smoke] [--pin] [--journal-only | --cluster-only]" >&2; exit 2 ;;
    esac
done
[ "$MODE" = smoke ] && { JOURNAL_ONLY=0; CLUSTER_ONLY=0; }
if [ "$JOURNAL_ONLY" = 1 ] && [ "$CLUSTER_ONLY" = 1 ]; then
    echo "run-bench: --journal-only and --cluster-only exclude each other" >&2
    exit 2
fi
# Which parts run: the single-server scenarios (and the peer, full only),
# the journal's fan-outs, the cluster's.
RUN_MAIN=1 RUN_JOURNAL=1 RUN_CLUSTER=1
[ "$JOURNAL_ONLY" = 1 ] && { RUN_MAIN=0; RUN_CLUSTER=0; }
[ "$CLUSTER_ONLY" = 1 ] && { RUN_MAIN=0; RUN_JOURNAL=0; }

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${WSCHAT_ROOT:-$(cd "$HERE/../.." && pwd)}
: "${WSCHAT_BIN:?set WSCHAT_BIN to the wsmaster binary}"
: "${WSBENCH:?set WSBENCH to the wsbench binary}"
for b in "$WSCHAT_BIN" "$WSBENCH"; do
    [ -x "$b" ] || { echo "run-bench: $b is not an executable" >&2; exit 2; }
done

# A broken client would blame the server: check wsbench's own codec first.
"$WSBENCH" selftest >&2 || { echo "run-bench: wsbench selftest failed" >&2; exit 1; }

# Pinned: every server process (wsmaster's workers inherit the mask, and
# so do node's threads) shares CPU 0; the generator has CPU 1 to itself.
SRV_PFX=()
GEN_PFX=()
if [ "$PIN" = 1 ]; then
    command -v taskset >/dev/null ||
        { echo "run-bench: --pin needs taskset (util-linux)" >&2; exit 2; }
    [ "$(nproc)" -ge 2 ] ||
        { echo "run-bench: --pin needs 2 CPUs, this machine has $(nproc)" >&2; exit 2; }
    SRV_PFX=(taskset -c 0)
    GEN_PFX=(taskset -c 1)
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wschat-bench.XXXXXX")
SERVER_PID=
NODE_PIDS=()     # the cluster's wsmaster nodes
REDIS_PID=

# Stop a process we started the way an operator would: TERM, a bounded
# wait, KILL. $1 pid (empty: nothing), $2 what it is, for the message.
stop_pid() {
    [ -n "$1" ] || return 0
    if kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1" 2>/dev/null
        for _ in $(seq 50); do
            kill -0 "$1" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$1" 2>/dev/null; then
            echo "run-bench: $2 ignored TERM for 5 s, sending KILL" >&2
            kill -KILL "$1" 2>/dev/null
        fi
    fi
    wait "$1" 2>/dev/null
}
stop_server() {
    stop_pid "$SERVER_PID" server
    SERVER_PID=
}
stop_cluster() {
    local p
    for p in "${NODE_PIDS[@]}"; do stop_pid "$p" "cluster node"; done
    NODE_PIDS=()
    stop_pid "$REDIS_PID" redis-server
    REDIS_PID=
}

# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    stop_server
    stop_cluster
    if [ -n "${BENCH_OUT:-}" ]; then
        mkdir -p "$BENCH_OUT" && cp "$TMP"/*.json "$TMP"/*.log "$TMP"/*.out "$BENCH_OUT"/ 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The server holds up to 19,000 client sockets; so does wsbench.
ulimit -n "$(ulimit -Hn)" 2>/dev/null

PORT=$("$WSBENCH" freeport) || { echo "run-bench: no free port" >&2; exit 2; }
# Pinned, more workers than the one CPU they share would only add switches.
if [ "$PIN" = 1 ]; then WORKERS=1
elif [ "$MODE" = smoke ]; then WORKERS=2
else WORKERS=auto; fi
# write_conf NAME HISTORY-LINES [PORT PID-FILE WORKERS]: $TMP/NAME.conf,
# logging to $TMP/NAME.log (the main server's is error.log), with the
# journal (or cluster) lines given; by default on $PORT, $TMP/wschat.pid
# and $WORKERS.
write_conf() {
    cat > "$TMP/$1.conf" <<EOF
# written by tests/bench/run-bench.sh
listen 127.0.0.1:${3:-$PORT}
workers ${5:-$WORKERS}
max_connections 19000
pid_file ${4:-$TMP/wschat.pid}
$2
error_log $TMP/$([ "$1" = wschat ] && echo error || echo "$1").log
log_level warn
web_root $ROOT/web
history_size 10
ring_size 64m
max_send_queue 4m
# the bench measures the server, not the per-member rate limit or the
# per-address caps (every generated client is 127.0.0.1)
rate_limit 0
max_connections_per_ip 0
ip_publish_rate 0
EOF
}
write_conf wschat "history_file $TMP/history"

# Ready means: the process lives, the pid file (if any) exists and a TCP
# connect succeeds (bounded: 10 s). $1 port, $2 pid file or "", $3 the
# process (default $SERVER_PID).
wait_ready() {
    local pid=${3:-$SERVER_PID}
    for _ in $(seq 100); do
        if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        if { [ -z "$2" ] || [ -s "$2" ]; } &&
           (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# start_wschat NAME: wsmaster -c $TMP/NAME.conf, ready or exit 2.
# taskset execs the server, so $! is the server's own pid either way.
start_wschat() {
    rm -f "$TMP/wschat.pid"
    "${SRV_PFX[@]}" "$WSCHAT_BIN" -c "$TMP/$1.conf" > "$TMP/$1-server.out" 2>&1 &
    SERVER_PID=$!
    if ! wait_ready "$PORT" "$TMP/wschat.pid"; then
        echo "run-bench: server ($1.conf) did not come up on 127.0.0.1:$PORT within 10 s" >&2
        tail -20 "$TMP/$1-server.out" "$TMP/$1.log" "$TMP/error.log" 2>/dev/null >&2
        exit 2
    fi
}

COMMON=(--host 127.0.0.1 --port "$PORT" --pid-file "$TMP/wschat.pid" --json)
if [ "$MODE" = smoke ]; then
    FANOUT=(--members 20 --publishers 4 --rate 50 --bytes 100 --duration 2 --check)
    ECHO=(--conns 4 --bytes 100 --duration 2 --check)
    CONNS=(--conns 200 --check)
    JOIN=(--conns 200 --room benchjoin --check)
    ROOMS=(--rooms 50 --duration 3 --hold 0.5 --check)
else
    FANOUT=(--members 1000 --publishers 10 --rate 250 --bytes 100 --duration 5 --ramp)
    ECHO=(--conns 100 --bytes 100 --duration 5)
    CONNS=(--conns 10000)
    JOIN=(--conns 10000 --room benchjoin)
    # 16,000 connections: within the 20,000 open files of one wsbench and
    # of one worker (pinned), 19,000 per worker in the config above.
    ROOMS=(--rooms 8000 --duration 10 --hold 1)
fi
# The journal's cost: the fanout ramp once per setting, each on a fresh
# server. Steps of x1.1 from 2500 msg/s (the doubling ramp above passes
# 4000 and stops at 8000), so that a 10 % difference is a step apart.
if [ "$MODE" = smoke ]; then
    JSETTINGS=(always)
    JFANOUT=(--members 20 --publishers 4 --rate 50 --bytes 100 --duration 1 --check)
else
    JSETTINGS=(off everysec always)
    JFANOUT=(--members 1000 --publishers 10 --rate 2500 --ramp --ramp-factor 1.1
             --max-steps 16 --bytes 100 --duration 3)
fi

declare -A RC
# run_scenario REPORT SCENARIO ARGS...: its JSON lands in $TMP/REPORT.json.
run_scenario() {
    local rep=$1 name=$2; shift 2
    echo "== $rep" >&2
    "${GEN_PFX[@]}" "$WSBENCH" "$name" "${COMMON[@]}" "$@" > "$TMP/$rep.json"
    RC[$rep]=$?
}
# A warm-up first, not reported: 200 connections make every worker finish
# starting and fault in its code and first pages, which would otherwise be
# counted as the cost of the connections measured next.
warm_up() {
    echo "== warm-up" >&2
    "$WSBENCH" conns "${COMMON[@]}" --conns 200 --hold 1 > /dev/null 2>&1
}
server_alive=1
alerts=0
if [ "$RUN_MAIN" = 1 ]; then
    start_wschat wschat
    warm_up
    # conns next: memory per idle connection is measured on a fresh server,
    # before the other scenarios have grown its heap (which would flatter it).
    run_scenario conns conns "${CONNS[@]}"
    # join right after, with as many members as conns had connections: the
    # ratio of the two handshake rates is the cost of joining a room.
    run_scenario join join "${JOIN[@]}"
    run_scenario fanout fanout "${FANOUT[@]}"
    run_scenario echo echo "${ECHO[@]}"
    run_scenario rooms rooms "${ROOMS[@]}"

    kill -0 "$SERVER_PID" 2>/dev/null || server_alive=0
    stop_server
    alerts=$(grep -cE '\[(alert|crit|emerg)\]' "$TMP/error.log" 2>/dev/null)
fi

# ---- the uWebSockets.js peer (full run only) ---------------------------------

# Installs node/npm like the browser test (apt, as root) and the npm
# package from tests/bench/uws/package-lock.json; any failure is reported
# in the table as "peer not run: why", never as a failed bench.
UWS_DIR=$HERE/uws
peer_note=
start_peer() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        if [ "$(id -u)" -ne 0 ]; then
            peer_note="node/npm missing (run as root to install them)"
            return 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends nodejs npm >&2 ||
            { peer_note="apt-get install nodejs npm failed"; return 1; }
    fi
    if [ ! -d "$UWS_DIR/node_modules/uwebsockets" ]; then
        echo "run-bench: installing the uwebsockets npm package" >&2
        (cd "$UWS_DIR" && { npm ci --no-audit --no-fund ||
                            npm install --no-audit --no-fund; }) >&2 ||
            { peer_note="npm install uwebsockets failed"; return 1; }
    fi
    UWS_PORT=$("$WSBENCH" freeport) || { peer_note="no free port"; return 1; }
    "${SRV_PFX[@]}" node "$UWS_DIR/server.mjs" "$UWS_PORT" > "$TMP/uws.out" 2>&1 &
    SERVER_PID=$!
    if ! wait_ready "$UWS_PORT" ""; then
        peer_note="server.mjs did not come up: $(tail -3 "$TMP/uws.out" | tr '\n' ' ')"
        stop_server
        return 1
    fi
    return 0
}

peer_ran=0
peer_alive=0
if [ "$MODE" = full ] && [ "$RUN_MAIN" = 1 ]; then
    if start_peer; then
        peer_ran=1
        COMMON=(--host 127.0.0.1 --port "$UWS_PORT" --server-pid "$SERVER_PID" --json)
        run_scenario uws_join join "${JOIN[@]}"
        run_scenario uws_echo echo "${ECHO[@]}"
        run_scenario uws_rooms rooms "${ROOMS[@]}"
        kill -0 "$SERVER_PID" 2>/dev/null && peer_alive=1
        stop_server
    fi
fi

# ---- the history journal: fanout per history setting -------------------------

# One fresh server per setting, in this order, each with a new journal
# folder on the same file system as $TMP; the reports are journal_<setting>.
declare -A JALIVE JALERTS
COMMON=(--host 127.0.0.1 --port "$PORT" --pid-file "$TMP/wschat.pid" --json)
[ "$RUN_JOURNAL" = 1 ] || JSETTINGS=()
for js in "${JSETTINGS[@]}"; do
    case "$js" in
        off) jlines="history_file off" ;;
        *) jlines="history_file $TMP/history-$js
history_fsync $js" ;;
    esac
    write_conf "journal-$js" "$jlines"
    start_wschat "journal-$js"
    [ "$MODE" = smoke ] || warm_up
    run_scenario "journal_$js" fanout "${JFANOUT[@]}"
    JALIVE[$js]=1
    kill -0 "$SERVER_PID" 2>/dev/null || JALIVE[$js]=0
    stop_server
    JALERTS[$js]=$(grep -cE '\[(alert|crit|emerg)\]' "$TMP/journal-$js.log" 2>/dev/null)
done

# ---- the cluster: 3 nodes sharing rooms through one redis-server -------------

# Each node: workers 1 (3 nodes on this machine's CPUs; the single-node
# baseline has workers 1 too, so the cluster is the only difference);
# the smoke gives each node 2, like the cluster integration tests.
CL_WORKERS=1
[ "$MODE" = smoke ] && CL_WORKERS=2     # the smoke checks the workers' shared ring too
CL_NODES=3
CL_NOTE=             # why the cluster part did not run, when it did not
CL_RAN=0
CL_PREFIX="wsbench-$$-$RANDOM"
CL_PORTS=()
CL_PIDFILES=()
if [ "$MODE" = smoke ]; then
    CL_FIXED=(--members 30 --publishers 3 --rate 20 --bytes 100 --duration 1 --drain 3 --check)
else
    CL_FIXED=(--members 1000 --publishers 10 --rate 100 --bytes 100 --duration 5)
    CL_RAMP=(--members 1000 --publishers 10 --rate 250 --bytes 100 --duration 5 --ramp)
fi

# One line of RESP to 127.0.0.1:$1 (inline command $2); the first reply
# line on stdout, or nothing (bounded: 2 s).
redis_cmd() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "%s\r\n" "$2" >&3
        IFS= read -r line <&3 && printf "%s\n" "$line"' _ "$1" "$2" 2>/dev/null | tr -d '\r'
}
# The body of GET $2 on 127.0.0.1:$1 (headers dropped; bounded: 3 s).
http_get() {
    timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$2" >&3
        cat <&3' _ "$1" "$2" 2>/dev/null | sed '1,/^\r\{0,1\}$/d'
}

# Starts redis-server on a free port with its own folder and no
# persistence; REDIS_PORT, REDIS_PID; 1 with CL_NOTE set when it cannot.
start_redis() {
    REDIS_PORT=$("$WSBENCH" freeport) || { CL_NOTE="no free port"; return 1; }
    mkdir -p "$TMP/redis"
    "${SRV_PFX[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
        --dir "$TMP/redis" --save '' --appendonly no \
        --logfile "$TMP/redis.log" > "$TMP/redis.out" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 100); do
        kill -0 "$REDIS_PID" 2>/dev/null || break
        [ "$(redis_cmd "$REDIS_PORT" PING)" = +PONG ] && return 0
        sleep 0.1
    done
    CL_NOTE="redis-server did not answer PING on 127.0.0.1:$REDIS_PORT: $(tail -2 "$TMP/redis.log" "$TMP/redis.out" 2>/dev/null | tr '\n' ' ')"
    stop_pid "$REDIS_PID" redis-server
    REDIS_PID=
    return 1
}

# The status line of a WebSocket upgrade of /chat on 127.0.0.1:$1 (the
# connection is dropped right after; bounded: 2 s).
upgrade_status() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET /chat?nick=probe HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" >&3
        IFS= read -r line <&3 && printf "%s\n" "$line"' _ "$1" 2>/dev/null | tr -d '\r'
}
# A node is ready for /chat once it has synced with Redis: before that,
# upgrades get 503 (then 101), and /stats says "synced":0 (then 1).
# Bounded: 15 s. $1 port.
wait_synced() {
    for _ in $(seq 150); do
        case "$(http_get "$1" /stats)" in
            *'"cluster":{'*'"synced":1'*) return 0 ;;
        esac
        case "$(upgrade_status "$1")" in
            "HTTP/1.1 101"*) return 0 ;;
        esac
        sleep 0.1
    done
    return 1
}

# Starts the 3 nodes; 1 with CL_NOTE set when one does not come up.
start_nodes() {
    local i port
    for i in $(seq "$CL_NODES"); do
        port=$("$WSBENCH" freeport) || { CL_NOTE="no free port"; return 1; }
        CL_PORTS+=("$port")
        CL_PIDFILES+=("$TMP/node$i.pid")
        write_conf "node$i" "history_file off
cluster redis://127.0.0.1:$REDIS_PORT
cluster_prefix $CL_PREFIX" "$port" "$TMP/node$i.pid" "$CL_WORKERS"
        "${SRV_PFX[@]}" "$WSCHAT_BIN" -c "$TMP/node$i.conf" > "$TMP/node$i-server.out" 2>&1 &
        NODE_PIDS+=($!)
    done
    for i in $(seq "$CL_NODES"); do
        port=${CL_PORTS[$((i - 1))]}
        if ! wait_ready "$port" "$TMP/node$i.pid" "${NODE_PIDS[$((i - 1))]}"; then
            CL_NOTE="node $i did not come up on 127.0.0.1:$port: $(tail -3 "$TMP/node$i-server.out" "$TMP/node$i.log" 2>/dev/null | tr '\n' ' ')"
            return 1
        fi
        if ! wait_synced "$port"; then
            CL_NOTE="node $i did not report \"synced\":1 in /stats within 15 s: $(tail -3 "$TMP/node$i.log" 2>/dev/null | tr '\n' ' ')"
            return 1
        fi
    done
    return 0
}

# The `cluster` directive is known to this wsmaster: -t on a node config.
cluster_supported() {
    write_conf node-test "history_file off
cluster redis://127.0.0.1:1
cluster_prefix $CL_PREFIX" "$PORT" "$TMP/node-test.pid" 1
    "$WSCHAT_BIN" -t -c "$TMP/node-test.conf" > "$TMP/node-test.out" 2>&1
}

declare -A CL_STATS
cl_alive=0
cl_redis_alive=0
cl_alerts=0
if [ "$RUN_CLUSTER" = 1 ]; then
    if ! command -v redis-server >/dev/null; then
        CL_NOTE="redis-server is not installed (scripts/install-deps.sh installs it)"
    elif ! cluster_supported; then
        CL_NOTE="this wsmaster does not take the cluster directives: $(head -1 "$TMP/node-test.out")"
    fi
fi
if [ "$RUN_CLUSTER" = 1 ] && [ -z "$CL_NOTE" ]; then
    # Other work on the machine shares its CPUs with 4 servers here.
    CL_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
    CL_START=$(date -u '+%H:%M:%S')
    # The baseline first: one node, cluster off, the same 100 msg/s step.
    if [ "$MODE" = full ]; then
        write_conf single "history_file off" "$PORT" "$TMP/wschat.pid" "$CL_WORKERS"
        COMMON=(--host 127.0.0.1 --port "$PORT" --pid-file "$TMP/wschat.pid" --json)
        start_wschat single
        warm_up
        run_scenario cluster_single fanout "${CL_FIXED[@]}"
        kill -0 "$SERVER_PID" 2>/dev/null || CL_STATS[single_died]=1
        stop_server
    fi
    if start_redis && start_nodes; then
        CL_RAN=1
        csv() { local IFS=,; echo "$*"; }
        COMMON=(--host 127.0.0.1 --ports "$(csv "${CL_PORTS[@]}")"
                --pid-files "$(csv "${CL_PIDFILES[@]}")" --extra-pid "$REDIS_PID" --json)
        if [ "$MODE" = full ]; then
            echo "== warm-up" >&2
            "$WSBENCH" conns "${COMMON[@]}" --conns 200 --hold 1 > /dev/null 2>&1
        fi
        run_scenario cluster_fixed fanout "${CL_FIXED[@]}"
        [ "$MODE" = full ] && run_scenario cluster fanout "${CL_RAMP[@]}"
        cl_alive=1
        for p in "${NODE_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || cl_alive=0; done
        kill -0 "$REDIS_PID" 2>/dev/null && cl_redis_alive=1
        # The nodes' cluster counters, summed: anything but 0 explains loss.
        for port in "${CL_PORTS[@]}"; do
            cobj=$(http_get "$port" /stats | sed -n 's/.*"cluster":{\([^}]*\)}.*/\1/p')
            for k in publish_errors gaps reconnects; do
                v=$(printf '%s' "$cobj" | sed -n "s/.*\"$k\":\([0-9]*\).*/\1/p")
                CL_STATS[$k]=$(( ${CL_STATS[$k]:-0} + ${v:-0} ))
            done
            v=$(printf '%s' "$cobj" | sed -n 's/.*"lag_ms":\([0-9]*\).*/\1/p')
            [ "${v:-0}" -gt "${CL_STATS[lag_ms]:-0}" ] && CL_STATS[lag_ms]=$v
        done
        CL_STATS[redis_mem]=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
            printf "INFO memory\r\n" >&3
            while IFS= read -r -t 1 l <&3; do
                case "$l" in used_memory_human:*) printf "%s" "${l#*:}" | tr -d "\r"; exit 0 ;; esac
            done' _ "$REDIS_PORT" 2>/dev/null)
    fi
    stop_cluster
    for i in $(seq "$CL_NODES"); do
        n=$(grep -cE '\[(alert|crit|emerg)\]' "$TMP/node$i.log" 2>/dev/null)
        cl_alerts=$((cl_alerts + ${n:-0}))
    done
fi

# ---- summary ----------------------------------------------------------------

# Value of "key": in a wsbench JSON report (the last one: top-level keys
# are written after nested ones, and the keys used here are unique).
jv() {
    sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$TMP/$1.json" 2>/dev/null | tail -1 | tr -d '"'
}
# Value of "key" inside the flat JSON object "obj" (no nested braces).
jo() {
    sed -n "s/.*\"$2\":{\([^}]*\)}.*/\1/p" "$TMP/$1.json" 2>/dev/null |
        sed -n "s/.*\"$3\":\([^,}]*\).*/\1/p" | tail -1
}
# A JSON number with $2 decimals; anything else (null, missing) as "-".
num() {
    if [[ "${1:-}" =~ ^-?[0-9.]+([eE][-+]?[0-9]+)?$ ]]; then
        printf '%.*f' "$2" "$1"
    else
        printf -- '-'
    fi
}
# Exit 0 without --check still says, in "pass", whether the checks held.
verdict() {
    case "${RC[$1]}" in
        0) if [ "$(jv "$1" pass)" = 0 ]; then echo FAIL; else echo PASS; fi ;; 1) echo FAIL ;; 2) echo "NOT RUN" ;; 3) echo TIMEOUT ;;
        *) echo "ERROR(${RC[$1]})" ;;
    esac
}

# ratio A B: A / B with 2 decimals, "-" when either is not a number > 0.
ratio() {
    awk -v a="${1:-}" -v b="${2:-}" 'BEGIN {
        if (a ~ /^[0-9.eE+-]+$/ && b ~ /^[0-9.eE+-]+$/ && a + 0 > 0 && b + 0 > 0)
            printf "%.2f", a / b; else printf "-" }'
}
# One rooms row from report $2, labelled $1.
rooms_row() {
    local r=$2 fx refused
    fx="$(jv "$r" rooms_complete)/$(jv "$r" rooms) rooms of 2 complete, $(num "$(jv "$r" joins_per_s)" 0) joins/s"
    refused=$(jv "$r" refused_before_ready)
    if [ -n "$refused" ] && [ "$refused" != 0 ]; then
        fx="$fx ($refused members refused by the server, $(jv "$r" refused_1013) with 1013)"
    fi
    local p99 lost met=no
    p99=$(jv "$r" peer_p99_ms)
    lost=$(jv "$r" lost)
    if [ "${lost:-x}" = 0 ] && [ "$(verdict "$r")" = PASS ] &&
       awk -v p="${p99:-999}" 'BEGIN { exit !(p + 0 < 50) }'; then
        met=yes
    fi
    printf '%-9s %-8s %s, %s msg/s per room: %s deliveries/s, to the peer p50 %s ms p99 %s ms, lost %s, dup %s, reordered %s, misrouted %s (0 lost and p99 < 50 ms: %s), %s B RSS per idle member (%s B without code pages)\n' \
        "$1" "$(verdict "$r")" "$fx" "$(jv "$r" room_rate)" \
        "$(num "$(jv "$r" deliveries_per_s)" 0)" \
        "$(num "$(jv "$r" peer_p50_ms)" 2)" "$(num "$p99" 2)" \
        "${lost:--}" "$(jv "$r" duplicates)" "$(jv "$r" reorders)" \
        "$(jv "$r" misrouted)" "$met" \
        "$(num "$(jv "$r" idle_rss_per_member_bytes)" 0)" "$(num "$(jv "$r" idle_mem_per_member_bytes)" 0)"
}

if [ "$PIN" = 1 ]; then
    pin_mode="pinned: server on CPU 0 (wsmaster workers 1), generator on CPU 1"
else
    pin_mode="unpinned: server and generator share all CPUs"
fi
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo
echo "wschat benchmark ($MODE$([ "$JOURNAL_ONLY" = 1 ] && echo ", journal only")$([ "$CLUSTER_ONLY" = 1 ] && echo ", cluster only"), $pin_mode)   $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine   $(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r), workers $([ "$CLUSTER_ONLY" = 1 ] && echo "$CL_WORKERS per node" || echo "$WORKERS")"
echo_row() {
    printf '%-9s %-8s %s round trips/s, p50 %s ms, p99 %s ms (%s conns, %s B)\n' \
        "$1" "$(verdict "$2")" "$(num "$(jv "$2" round_trips_per_s)" 0)" \
        "$(num "$(jv "$2" p50_ms)" 3)" "$(num "$(jv "$2" p99_ms)" 3)" \
        "$(jv "$2" conns)" "$(jv "$2" bytes)"
}
join_row() {
    local extra=$3
    printf '%-9s %-8s %s/%s members of one room, %s joins/s%s, %s frames per member, %s B RSS per idle member (%s B without code pages)\n' \
        "$1" "$(verdict "$2")" "$(jv "$2" opened)" "$(jv "$2" conns)" \
        "$(num "$(jv "$2" handshakes_per_s)" 0)" "$extra" \
        "$(num "$(jv "$2" frames_per_member)" 1)" "$(num "$(jv "$2" rss_per_conn_bytes)" 0)" \
        "$(num "$(jv "$2" mem_per_conn_bytes)" 0)"
}
if [ "$RUN_MAIN" = 1 ]; then
    printf '%-9s %-8s %s\n' scenario result figures
    fx="best $(num "$(jv fanout best_rate)" 0) msg/s = $(num "$(jv fanout best_deliveries_per_s)" 0) deliveries/s, p99 $(num "$(jv fanout best_p99_ms)" 2) ms"
    if [ "$(jv fanout ramp)" = 1 ]; then
        fx="$fx; ramp stopped at $(num "$(jv fanout stop_rate)" 0) msg/s: $(jv fanout stop_reason)"
    else
        fx="$fx; lost $(jv fanout lost), dup $(jv fanout duplicates), reordered $(jv fanout reorders)+$(jv fanout id_reorders)"
    fi
    printf '%-9s %-8s %s (%s members, %s publishers, %s B)\n' fanout "$(verdict fanout)" \
        "$fx" "$(jv fanout members)" "$(jv fanout publishers)" "$(jv fanout bytes)"
    echo_row echo echo
    printf '%-9s %-8s %s/%s open, %s handshakes/s, %s failed, %s B RSS per idle conn (%s B without code pages)\n' \
        conns "$(verdict conns)" "$(jv conns opened)" "$(jv conns conns)" \
        "$(num "$(jv conns handshakes_per_s)" 0)" "$(jv conns total)" \
        "$(num "$(jv conns rss_per_conn_bytes)" 0)" "$(num "$(jv conns mem_per_conn_bytes)" 0)"
    join_row join join " ($(ratio "$(jv join handshakes_per_s)" "$(jv conns handshakes_per_s)") x the /echo rate above)"
    # join reuses the connection slots conns left behind: a member with its
    # connection costs both figures.
    echo "          a member with its connection: $(awk -v a="$(jv conns mem_per_conn_bytes)" -v b="$(jv join mem_per_conn_bytes)" 'BEGIN { if (a == "" || b == "") print "-"; else printf "%.0f", a + b }') B without code pages (conns + join)"
    rooms_row rooms rooms
    printf 'generator CPU share of one core: fanout last step %s, echo loop %s, conns open %s, rooms traffic %s (near 1 = the generator is the limit)\n' \
        "$(num "$(jv fanout generator_cpu_fraction)" 2)" \
        "$(num "$(jo echo generator_loop cpu_fraction)" 2)" \
        "$(num "$(jo conns generator_open cpu_fraction)" 2)" \
        "$(num "$(jo rooms generator_traffic cpu_fraction)" 2)"
    echo "server    $([ $server_alive = 1 ] && echo "alive after the run" || echo "DIED during the run"), ${alerts:-0} alert/crit log lines"
fi

if [ "$MODE" = full ] && [ "$RUN_MAIN" = 1 ]; then
    echo
    if [ "$peer_ran" = 1 ]; then
        uver=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$UWS_DIR/node_modules/uwebsockets/package.json" | head -1)
        usrc=$(head -c 12 "$UWS_DIR/node_modules/uwebsockets/source_commit" 2>/dev/null)
        echo "peer      uWebSockets.js (npm uwebsockets $uver, uWS.js commit ${usrc:-?}) on node $(node --version), one thread, tests/bench/uws/server.mjs; same generator, same mode"
        join_row uws-join uws_join ""
        echo_row uws-echo uws_echo
        rooms_row uws-rooms uws_rooms
        echo "peer      $([ $peer_alive = 1 ] && echo "alive after the run" || echo "DIED during the run")"
        echo "wschat/uWS (above 1: wschat higher): join rate $(ratio "$(jv join handshakes_per_s)" "$(jv uws_join handshakes_per_s)"), echo rate $(ratio "$(jv echo round_trips_per_s)" "$(jv uws_echo round_trips_per_s)"), rooms deliveries/s $(ratio "$(jv rooms deliveries_per_s)" "$(jv uws_rooms deliveries_per_s)"); lower is better: echo p99 $(ratio "$(jv echo p99_ms)" "$(jv uws_echo p99_ms)"), rooms peer p99 $(ratio "$(jv rooms peer_p99_ms)" "$(jv uws_rooms peer_p99_ms)"), RSS per idle member join $(ratio "$(jv join rss_per_conn_bytes)" "$(jv uws_join rss_per_conn_bytes)"), rooms $(ratio "$(jv rooms idle_rss_per_member_bytes)" "$(jv uws_rooms idle_rss_per_member_bytes)")"
        if [ "$(jv rooms rooms_complete)" != "$(jv rooms rooms)" ]; then
            echo "          (rooms ratios compare unlike runs: wschat completed only $(jv rooms rooms_complete) of $(jv rooms rooms) rooms)"
        fi
        [ "$PIN" = 1 ] || echo "          (unpinned, wschat runs $WORKERS workers and the peer one thread: run PIN=1 for one core each)"
    else
        echo "peer      uWebSockets.js not run: ${peer_note:-unknown reason}"
    fi
fi

# ---- the journal rows ---------------------------------------------------------

# One row per history setting: the ramp's best step, and its ratio to off.
journal_row() {
    local r=journal_$1 vs=- best
    [ "$MODE" = full ] && vs=$(ratio "$(jv "$r" best_rate)" "$(jv journal_off best_rate)")
    best=$(num "$(jv "$r" best_rate)" 0)
    # No step passed: below the first rate.
    [ "$best" = 0 ] && best="<$(num "$(jv "$r" stop_rate)" 0)"
    printf '%-9s %-8s %10s %13s %8s %8s %7s %6s  %s\n' "$1" "$(verdict "$r")" \
        "$best" "$(num "$(jv "$r" best_deliveries_per_s)" 0)" \
        "$(num "$(jv "$r" best_p50_ms)" 2)" "$(num "$(jv "$r" best_p99_ms)" 2)" \
        "$(num "$(jv "$r" best_server_cpu)" 2)" "$vs" \
        "$([ "$MODE" = full ] && echo "$(num "$(jv "$r" stop_rate)" 0): $(jv "$r" stop_reason)" || echo -)"
}
jdead=
jal=0
if [ "$RUN_JOURNAL" = 1 ]; then
echo
if [ "$MODE" = full ]; then
    echo "journal   fanout ramp per history setting, a fresh server each, in this order ($(jv journal_off members) members, $(jv journal_off publishers) publishers, $(jv journal_off bytes) B; from 2500 msg/s, x1.1 per 3 s step, until loss or p99 > 100 ms); journals on $(df -PT "$TMP" 2>/dev/null | awk 'NR == 2 { print $2 }') under ${TMPDIR:-/tmp}"
else
    echo "journal   fanout check with history_fsync always (delivery waits for the disk)"
fi
printf '%-9s %-8s %10s %13s %8s %8s %7s %6s  %s\n' setting result "best msg/s" deliveries/s \
    "p50 ms" "p99 ms" "srv CPU" "vs off" "ramp stopped at"
for js in "${JSETTINGS[@]}"; do journal_row "$js"; done
if [ "$MODE" = full ]; then
    es=$(ratio "$(jv journal_everysec best_rate)" "$(jv journal_off best_rate)")
    met=no
    awk -v r="$es" 'BEGIN { exit !(r ~ /^[0-9.]+$/ && r + 0 >= 0.9) }' && met=yes
    echo "journal   everysec/off $es: at most 10 % below off: $met (one run: a step is 10 %, so compare several)"
fi
for js in "${JSETTINGS[@]}"; do
    [ "${JALIVE[$js]}" = 1 ] || jdead="$jdead $js"
    jal=$((jal + ${JALERTS[$js]:-0}))
done
echo "servers   $([ -z "$jdead" ] && echo "alive after each run" || echo "DIED during:$jdead"), $jal alert/crit log lines"
fi

# ---- the cluster rows ---------------------------------------------------------

# "yes" when awk expression $1 holds (variables a, b, c from $2 $3 $4).
holds() {
    awk -v a="${2:-}" -v b="${3:-}" -v c="${4:-}" "BEGIN { exit !($1) }" && echo yes || echo no
}
# Server (nodes) and redis-server CPU in cores: of report $1's best step,
# or with $2 = last, of its last step (a fixed step that failed has no best).
cl_cpu() {
    local srv red
    if [ "${2:-}" = last ]; then
        srv=$(ratio "$(jv "$1" server_cpu_s)" "$(jv "$1" wall_s)")
        red=$(ratio "$(jv "$1" extra_cpu_s)" "$(jv "$1" wall_s)")
    else
        srv=$(num "$(jv "$1" best_server_cpu)" 2)
        red=$(num "$(jv "$1" best_extra_cpu)" 2)
    fi
    printf 'nodes %s cores, redis-server %s' "$srv" "$red"
}
# Fixed-rate row: p50 and p99 of the one step (its "latency" object, so
# a failed step still shows them), its loss and CPU.
cl_fixed_row() {
    local r=$1
    printf '%-9s %-8s %s msg/s: %s deliveries/s, p50 %s ms, p99 %s ms, lost %s, dup %s, reordered %s+%s; %s\n' \
        "$2" "$(verdict "$r")" "$(num "$(jv "$r" rate)" 0)" \
        "$(num "$(jv "$r" deliveries_per_s)" 0)" "$(num "$(jo "$r" latency p50_ms)" 2)" \
        "$(num "$(jo "$r" latency p99_ms)" 2)" "$(jv "$r" lost)" "$(jv "$r" duplicates)" \
        "$(jv "$r" reorders)" "$(jv "$r" id_reorders)" "$3"
}
# One line per step of fanout report $1: rate, deliveries/s, p50/p99,
# loss, CPU of the nodes and of redis-server (cores), how it ended.
step_lines() {
    awk '{
        n = split($0, part, /\{"rate":/)
        for (i = 2; i <= n; i++) {
            s = part[i]
            rate = s; sub(/,.*/, "", rate)
            d = v(s, "deliveries_per_s"); lost = v(s, "lost")
            lat = s; sub(/.*"latency":\{/, "", lat); sub(/\}.*/, "", lat)
            w = v(s, "wall_s") + 0; srv = v(s, "server_cpu_s") + 0; x = v(s, "extra_cpu_s")
            res = "ok"
            if (v(s, "latency_ok") == 0) res = "slow"
            if (v(s, "pass") == 0) res = "FAIL"
            cs = "-"; cx = "-"
            if (w > 0) cs = sprintf("%.2f", srv / w)
            if (w > 0 && x != "") cx = sprintf("%.2f", x / w)
            printf "          step %2d %6.0f msg/s %9.0f deliveries/s p50 %7.2f ms p99 %7.2f ms lost %7d  nodes %s redis %s cores  %s\n",
                i - 1, rate, d, v(lat, "p50_ms"), v(lat, "p99_ms"), lost, cs, cx, res
        }
    }
    function v(s, k,   t) {
        if (!match(s, "\"" k "\":[^,}]*")) return ""
        t = substr(s, RSTART, RLENGTH); sub(/^[^:]*:/, "", t); return t
    }' "$TMP/$1.json" 2>/dev/null
}
if [ "$RUN_CLUSTER" = 1 ]; then
    echo
    if [ "$CL_RAN" = 1 ]; then
        rver=$(redis-server --version 2>/dev/null | sed -n 's/.* v=\([^ ]*\).*/\1/p')
        echo "cluster   $CL_NODES wsmaster nodes (workers $CL_WORKERS each) + redis-server ${rver:-?} on 127.0.0.1 (--save '' --appendonly no)$([ "$PIN" = 1 ] && echo ", all on CPU 0"); $(jv cluster_fixed members) members and $(jv cluster_fixed publishers) publishers spread evenly over the nodes, $(jv cluster_fixed bytes) B"
        echo "          started $CL_START UTC, load average then $CL_LOAD"
        printf '%-9s %-8s %s\n' scenario result figures
        if [ "$MODE" = full ]; then
            if [ "$(num "$(jv cluster best_rate)" 0)" = 0 ]; then
                fx="no step passed"
            else
                fx="best $(num "$(jv cluster best_rate)" 0) msg/s = $(num "$(jv cluster best_deliveries_per_s)" 0) deliveries/s, p50 $(num "$(jv cluster best_p50_ms)" 2) ms, p99 $(num "$(jv cluster best_p99_ms)" 2) ms, $(cl_cpu cluster)"
            fi
            fx="$fx; ramp stopped at $(num "$(jv cluster stop_rate)" 0) msg/s: $(jv cluster stop_reason)"
            printf '%-9s %-8s %s\n' cluster "$(verdict cluster)" "$fx"
            step_lines cluster
            cl_fixed_row cluster_single one-100 "single node, cluster off, workers $CL_WORKERS; server $(ratio "$(jv cluster_single server_cpu_s)" "$(jv cluster_single wall_s)") cores"
        fi
        cl_fixed_row cluster_fixed "$([ "$MODE" = full ] && echo cl-100 || echo cluster)" "$CL_NODES nodes; $(cl_cpu cluster_fixed last)"
        if [ "$MODE" = full ]; then
            added=$(awk -v a="$(jo cluster_fixed latency p50_ms)" -v b="$(jo cluster_single latency p50_ms)" \
                'BEGIN { if (a == "" || b == "") print "-"; else printf "%.2f", a - b }')
            m1=$(holds 'a + 0 >= 1000' "$(jv cluster best_rate)")
            m2=$(holds 'a != "-" && a + 0 < 2' "$added")
            [ "$(verdict cluster_fixed)" = PASS ] && [ "$(jv cluster_fixed lost)" = 0 ] || m2=no
            echo "cluster   targets: >= 1000 msg/s (1M deliveries/s) with 0 loss and p99 < 100 ms: $m1 (best $(num "$(jv cluster best_rate)" 0)); added p50 at 100 msg/s over one node < 2 ms: $m2 ($(num "$(jo cluster_fixed latency p50_ms)" 2) - $(num "$(jo cluster_single latency p50_ms)" 2) = $added ms)"
        fi
        echo "nodes     $([ $cl_alive = 1 ] && echo "alive after the run" || echo "one DIED during the run"), redis-server $([ $cl_redis_alive = 1 ] && echo alive || echo DIED), $cl_alerts alert/crit log lines; cluster counters summed over the nodes: publish_errors ${CL_STATS[publish_errors]:-0}, gaps ${CL_STATS[gaps]:-0}, reconnects ${CL_STATS[reconnects]:-0}, lag_ms max ${CL_STATS[lag_ms]:-0}; redis used_memory ${CL_STATS[redis_mem]:-?}"
        [ -n "${CL_STATS[single_died]:-}" ] && echo "one-100   the single node DIED during its run"
        if [ "$cl_alerts" != 0 ]; then
            echo "          first alert: $(grep -hE '\[(alert|crit|emerg)\]' "$TMP"/node[0-9]*.log 2>/dev/null | sort | head -1 | cut -c1-160)"
        fi
    else
        echo "cluster   not run: ${CL_NOTE:-unknown reason}"
    fi
fi

status=0
ran=()
[ "$RUN_MAIN" = 1 ] && ran+=(fanout echo conns join rooms)
for js in "${JSETTINGS[@]}"; do ran+=("journal_$js"); done
if [ "$CL_RAN" = 1 ]; then
    ran+=(cluster_fixed)
    [ "$MODE" = full ] && ran+=(cluster cluster_single)
fi
for s in "${ran[@]}"; do
    case "${RC[$s]}" in
        0) ;;
        1) [ "$MODE" = smoke ] && status=1 ;;
        *) status=${RC[$s]} ;;
    esac
done
cl_bad=0
if [ "$CL_RAN" = 1 ] && { [ $cl_alive != 1 ] || [ $cl_redis_alive != 1 ] ||
                          [ -n "${CL_STATS[single_died]:-}" ]; }; then
    cl_bad=1
fi
if [ $server_alive != 1 ] || [ -n "$jdead" ] || [ $cl_bad = 1 ] ||
   { [ "$MODE" = smoke ] && [ "$((${alerts:-0} + jal + cl_alerts))" != 0 ]; }; then
    [ "$status" = 0 ] && status=1
fi
exit "$status"
