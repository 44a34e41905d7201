#!/usr/bin/env bash
# run-bench.sh [--smoke]: start wsmaster from a throwaway config, run the
# wsbench scenarios against it, print one summary table, stop the server.
#
# Builds nothing: the Makefile passes WSCHAT_BIN (server binary) and
# WSBENCH (load generator) in the environment; WSCHAT_ROOT (repo root,
# for web_root) defaults to two levels above this script. BENCH_OUT, when
# set, is a directory that receives the JSON reports and the server log.
#
# --smoke: small figures, every scenario with --check; exit 1 if any check
# fails, the server dies, or its log has [alert]/[crit] lines. Full: the
# figures in the design (fanout ramp 1000 members, echo 100, conns 10000),
# report only; exit non-zero only if a scenario could not run at all.
set -u

MODE=full
case "${1:-}" in
    --smoke) MODE=smoke ;;
    "") ;;
    *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${WSCHAT_ROOT:-$(cd "$HERE/../.." && pwd)}
: "${WSCHAT_BIN:?set WSCHAT_BIN to the wsmaster binary}"
: "${WSBENCH:?set WSBENCH to the wsbench binary}"
for b in "$WSCHAT_BIN" "$WSBENCH"; do
    [ -x "$b" ] || { echo "run-bench: $b is not an executable" >&2; exit 2; }
done

# A broken client would blame the server: check wsbench's own codec first.
"$WSBENCH" selftest >&2 || { echo "run-bench: wsbench selftest failed" >&2; exit 1; }

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
        mkdir -p "$BENCH_OUT" && cp "$TMP"/*.json "$TMP"/error.log "$BENCH_OUT"/ 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The server holds up to 19,000 client sockets; so does wsbench.
ulimit -n "$(ulimit -Hn)" 2>/dev/null

PORT=$("$WSBENCH" freeport) || { echo "run-bench: no free port" >&2; exit 2; }
if [ "$MODE" = smoke ]; then WORKERS=2; else WORKERS=auto; fi
cat > "$TMP/wschat.conf" <<EOF
# written by tests/bench/run-bench.sh
listen 127.0.0.1:$PORT
workers $WORKERS
max_connections 19000
pid_file $TMP/wschat.pid
error_log $TMP/error.log
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

"$WSCHAT_BIN" -c "$TMP/wschat.conf" > "$TMP/server.out" 2>&1 &
SERVER_PID=$!

# Ready means: the pid file exists and a TCP connect succeeds (bounded).
ready=0
for _ in $(seq 100); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    if [ -s "$TMP/wschat.pid" ] &&
       (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ "$ready" != 1 ]; then
    echo "run-bench: server did not come up on 127.0.0.1:$PORT within 10 s" >&2
    tail -20 "$TMP/server.out" "$TMP/error.log" 2>/dev/null >&2
    exit 2
fi

COMMON=(--host 127.0.0.1 --port "$PORT" --pid-file "$TMP/wschat.pid" --json)
if [ "$MODE" = smoke ]; then
    FANOUT=(--members 20 --publishers 4 --rate 50 --bytes 100 --duration 2 --check)
    ECHO=(--conns 4 --bytes 100 --duration 2 --check)
    CONNS=(--conns 200 --check)
    JOIN=(--conns 200 --room benchjoin --check)
else
    FANOUT=(--members 1000 --publishers 10 --rate 250 --bytes 100 --duration 5 --ramp)
    ECHO=(--conns 100 --bytes 100 --duration 5)
    CONNS=(--conns 10000)
    JOIN=(--conns 10000 --room benchjoin)
fi

declare -A RC
run_scenario() {
    local name=$1; shift
    echo "== $name" >&2
    "$WSBENCH" "$name" "${COMMON[@]}" "$@" > "$TMP/$name.json"
    RC[$name]=$?
}
# conns first: memory per idle connection is measured on a fresh server,
# before the other scenarios have grown its heap (which would flatter it).
run_scenario conns "${CONNS[@]}"
# join right after, with as many members as conns had connections: the
# ratio of the two handshake rates is the cost of joining a room.
run_scenario join "${JOIN[@]}"
run_scenario fanout "${FANOUT[@]}"
run_scenario echo "${ECHO[@]}"

server_alive=1
kill -0 "$SERVER_PID" 2>/dev/null || server_alive=0
stop_server
alerts=$(grep -cE '\[(alert|crit|emerg)\]' "$TMP/error.log" 2>/dev/null)

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
verdict() {
    case "${RC[$1]}" in
        0) echo PASS ;; 1) echo FAIL ;; 2) echo "NOT RUN" ;; 3) echo TIMEOUT ;;
        *) echo "ERROR(${RC[$1]})" ;;
    esac
}

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo
echo "wschat benchmark ($MODE)   $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine   $(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r), workers $WORKERS"
printf '%-8s %-8s %s\n' scenario result figures
fx="best $(num "$(jv fanout best_rate)" 0) msg/s = $(num "$(jv fanout best_deliveries_per_s)" 0) deliveries/s, p99 $(num "$(jv fanout best_p99_ms)" 2) ms"
if [ "$(jv fanout ramp)" = 1 ]; then
    fx="$fx; ramp stopped at $(num "$(jv fanout stop_rate)" 0) msg/s: $(jv fanout stop_reason)"
else
    fx="$fx; lost $(jv fanout lost), dup $(jv fanout duplicates), reordered $(jv fanout reorders)+$(jv fanout id_reorders)"
fi
printf '%-8s %-8s %s (%s members, %s publishers, %s B)\n' fanout "$(verdict fanout)" \
    "$fx" "$(jv fanout members)" "$(jv fanout publishers)" "$(jv fanout bytes)"
printf '%-8s %-8s %s round trips/s, p50 %s ms, p99 %s ms (%s conns, %s B)\n' \
    echo "$(verdict echo)" "$(num "$(jv echo round_trips_per_s)" 0)" \
    "$(num "$(jv echo p50_ms)" 3)" "$(num "$(jv echo p99_ms)" 3)" \
    "$(jv echo conns)" "$(jv echo bytes)"
printf '%-8s %-8s %s/%s open, %s handshakes/s, %s failed, %s B RSS per idle conn\n' \
    conns "$(verdict conns)" "$(jv conns opened)" "$(jv conns conns)" \
    "$(num "$(jv conns handshakes_per_s)" 0)" "$(jv conns total)" \
    "$(num "$(jv conns rss_per_conn_bytes)" 0)"
ratio=$(awk -v j="$(jv join handshakes_per_s)" -v c="$(jv conns handshakes_per_s)" \
    'BEGIN { if (c > 0) printf "%.2f", j / c; else print "?" }')
printf '%-8s %-8s %s/%s members of one room, %s joins/s (%s x the /echo rate above), %s frames per member, %s B RSS per idle member\n' \
    join "$(verdict join)" "$(jv join opened)" "$(jv join conns)" \
    "$(num "$(jv join handshakes_per_s)" 0)" "$ratio" \
    "$(num "$(jv join frames_per_member)" 1)" "$(num "$(jv join rss_per_conn_bytes)" 0)"
printf 'generator CPU share of one core: fanout last step %s, echo loop %s, conns open %s (near 1 = the generator is the limit)\n' \
    "$(num "$(jv fanout generator_cpu_fraction)" 2)" \
    "$(num "$(jo echo generator_loop cpu_fraction)" 2)" \
    "$(num "$(jo conns generator_open cpu_fraction)" 2)"
echo "server    $([ $server_alive = 1 ] && echo "alive after the run" || echo "DIED during the run"), ${alerts:-0} alert/crit log lines"

status=0
for s in fanout echo conns join; do
    case "${RC[$s]}" in
        0) ;;
        1) [ "$MODE" = smoke ] && status=1 ;;
        *) status=${RC[$s]} ;;
    esac
done
if [ $server_alive != 1 ] || { [ "$MODE" = smoke ] && [ "${alerts:-0}" != 0 ]; }; then
    [ "$status" = 0 ] && status=1
fi
exit "$status"
