#!/usr/bin/env bash
# run-bench.sh [--smoke] [--pin] [--journal-only]: start wsmaster from a
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
set -u

MODE=full
PIN=0
JOURNAL_ONLY=0
for arg in "$@"; do
    case "$arg" in
        --smoke) MODE=smoke ;;
        --pin) PIN=1 ;;
        --journal-only) JOURNAL_ONLY=1 ;;
        *) echo "usage: $0 [--smoke] [--pin] [--journal-only]" >&2; exit 2 ;;
    esac
done
[ "$MODE" = smoke ] && JOURNAL_ONLY=0

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

# Stop the server the way an operator would: TERM, a bounded wait, KILL.
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "run-bench: server ignored TERM for 5 s, sending KILL" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=
}

# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    stop_server
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
# write_conf NAME HISTORY-LINES: $TMP/NAME.conf, logging to $TMP/NAME.log
# (the main server's is error.log), with the journal lines given.
write_conf() {
    cat > "$TMP/$1.conf" <<EOF
# written by tests/bench/run-bench.sh
listen 127.0.0.1:$PORT
workers $WORKERS
max_connections 19000
pid_file $TMP/wschat.pid
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
# connect succeeds (bounded: 10 s). $1 port, $2 pid file or "".
wait_ready() {
    for _ in $(seq 100); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then return 1; fi
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
if [ "$JOURNAL_ONLY" = 0 ]; then
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
if [ "$MODE" = full ] && [ "$JOURNAL_ONLY" = 0 ]; then
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
echo "wschat benchmark ($MODE$([ "$JOURNAL_ONLY" = 1 ] && echo ", journal only"), $pin_mode)   $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine   $(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r), workers $WORKERS"
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
if [ "$JOURNAL_ONLY" = 0 ]; then
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

if [ "$MODE" = full ] && [ "$JOURNAL_ONLY" = 0 ]; then
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
jdead=
jal=0
for js in "${JSETTINGS[@]}"; do
    [ "${JALIVE[$js]}" = 1 ] || jdead="$jdead $js"
    jal=$((jal + ${JALERTS[$js]:-0}))
done
echo "servers   $([ -z "$jdead" ] && echo "alive after each run" || echo "DIED during:$jdead"), $jal alert/crit log lines"

status=0
for s in fanout echo conns join rooms $(printf 'journal_%s ' "${JSETTINGS[@]}"); do
    [ "$JOURNAL_ONLY" = 1 ] && [ "${s#journal_}" = "$s" ] && continue
    case "${RC[$s]}" in
        0) ;;
        1) [ "$MODE" = smoke ] && status=1 ;;
        *) status=${RC[$s]} ;;
    esac
done
if [ $server_alive != 1 ] || [ -n "$jdead" ] ||
   { [ "$MODE" = smoke ] && [ "$((${alerts:-0} + jal))" != 0 ]; }; then
    [ "$status" = 0 ] && status=1
fi
exit "$status"
