#!/usr/bin/env bash
# TLS test (`make test-tls`): wschat behind nginx, driven over wss:// by
# npm's `ws` client. Installs what a bare Debian machine lacks (nginx and
# the openssl command come from scripts/install-deps.sh through the
# Makefile's deps; node/npm here, and `ws` from package-lock.json), then
# runs tls.test.mjs under node's test runner. The test makes a throw-away
# certificate, starts the real wsmaster and nginx on ephemeral 127.0.0.1
# ports with every file in one temp dir, and stops both itself.
# WSCHAT_BIN=path tests that binary (default: build it).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

apt_missing=()
command -v node >/dev/null 2>&1 || apt_missing+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_missing+=(npm)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || apt_missing+=(nginx)
command -v openssl >/dev/null 2>&1 || apt_missing+=(openssl)
if [ ${#apt_missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "run.sh: missing ${apt_missing[*]}; run as root (or install them) first" >&2
        exit 1
    fi
    echo "run.sh: installing ${apt_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${apt_missing[@]}"
fi

if [ ! -d "$HERE/node_modules/ws" ]; then
    echo "run.sh: installing ws"
    (cd "$HERE" && { npm ci --no-audit --no-fund || npm install --no-audit --no-fund; })
fi

if [ -z "${WSCHAT_BIN:-}" ]; then
    make -C "$ROOT" build/release/wsmaster
    WSCHAT_BIN="$ROOT/build/release/wsmaster"
fi
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
TLS_TMP=$(mktemp -d /tmp/wschat-tls.XXXXXX)
export WSCHAT_BIN WSCHAT_ROOT="$ROOT" NGINX_BIN TLS_TMP

# Whatever happens to the test (a timeout included), stop what it started:
# only the pids its own pid files name, and only while they are still the
# program that wrote them.
stop_started() {
    local pidfile prog pid
    for pidfile in "$TLS_TMP/nginx.pid:$NGINX_BIN" "$TLS_TMP/wschat.pid:$WSCHAT_BIN"; do
        prog=${pidfile#*:}
        pidfile=${pidfile%%:*}
        [ -s "$pidfile" ] || continue
        pid=$(head -c 16 "$pidfile" | tr -dc 0-9)
        [ -n "$pid" ] || continue
        if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$prog")" ]; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in 1 2 3 4 5 6 7 8 9 10; do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.2
            done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if [ "${TLS_KEEP:-}" = "" ] && [ "${status:-1}" = 0 ]; then
        rm -rf "$TLS_TMP"
    else
        echo "run.sh: files of this run kept in $TLS_TMP" >&2
    fi
}
trap stop_started EXIT

cd "$HERE"
status=0
# The test bounds each step; this bounds the whole run.
timeout -k 5 120 node --test --test-concurrency=1 tls.test.mjs || status=$?
exit $status
