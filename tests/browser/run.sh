#!/usr/bin/env bash
# Browser test of the web client (`make test-browser`): installs what a bare
# Debian machine lacks (Chromium from apt, fonts so screenshots show CJK and
# emoji, node/npm, playwright-core from package-lock.json; Playwright never
# downloads a browser), builds wsmaster, then runs chat.test.mjs under node's
# test runner, which starts and stops the server itself. Screenshots land in
# tests/browser/out/. restart.test.mjs stops the whole server under an open
# page (SIGTERM, kill -9 of its process group) and starts it again on the same
# port and journal folder. interop.test.mjs drives the server with npm's `ws`
# client library. WSCHAT_BIN=path skips the build and tests that binary.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

apt_missing=()
[ -x /usr/bin/chromium ] || apt_missing+=(chromium)
command -v node >/dev/null 2>&1 || apt_missing+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_missing+=(npm)
# Without these the page still works, but screenshots show boxes for 中文 and emoji.
dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || apt_missing+=(fonts-noto-color-emoji)
dpkg -s fonts-wqy-zenhei >/dev/null 2>&1 || apt_missing+=(fonts-wqy-zenhei)
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

if [ ! -d "$HERE/node_modules/playwright-core" ] || [ ! -d "$HERE/node_modules/ws" ]; then
    echo "run.sh: installing playwright-core and ws"
    (cd "$HERE" && { npm ci --no-audit --no-fund || npm install --no-audit --no-fund; })
fi

if [ -z "${WSCHAT_BIN:-}" ]; then
    make -C "$ROOT" wsmaster
    WSCHAT_BIN="$ROOT/wsmaster"
fi
export WSCHAT_BIN
export WSCHAT_WEB="$ROOT/web"
export WSCHAT_OUT="$HERE/out"
mkdir -p "$WSCHAT_OUT"

cd "$HERE"
# The test bounds each step; this bounds the whole run (browser hangs included).
exec timeout -k 10 600 node --test --test-concurrency=1 chat.test.mjs restart.test.mjs interop.test.mjs
