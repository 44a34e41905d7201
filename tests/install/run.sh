#!/usr/bin/env bash
# make install / uninstall, checked from the outside (part of `make test`):
#  1. DESTDIR staging of the default layout (as nobody when run as root, so
#     it proves no root is needed): every file where it belongs, the web
#     client byte for byte, the unit's ExecStart at the installed binary and
#     conf (and, for the default layout, scripts/wschat.service unchanged),
#     no relative path left in the installed conf, `wsmaster -t` on it.
#  2. An installed conf that was edited survives a second install, which
#     puts the new one beside it as wschat.conf.default; an unedited one is
#     left as it is with no .default; uninstall keeps the edited one.
#  3. PREFIX=/usr and an overridden SYSCONFDIR/SYSTEMDUNITDIR (staged).
#  4. PREFIX in a temp dir, no DESTDIR, so the paths are real: the installed
#     wsmaster runs on a copy of the installed conf (port 0, one worker),
#     creates its run folder, serves the installed web client at /, stops
#     through `wsmaster -s quit` (its pid_file); then uninstall leaves
#     nothing behind.
# Environment: MAKE (the make to call), B (build dir holding wsmaster).
# Everything lives in one temp dir; the only process started is that
# wsmaster, stopped by its pid on every exit path.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MAKE=${MAKE:-make}
B=${B:-build/release}
BIN="$ROOT/$B/wsmaster"
T=$(mktemp -d /tmp/wschat-install-XXXXXX)
SRV_PID=
FAILS=0

cleanup() {
    if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
        kill -TERM "$SRV_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SRV_PID" 2>/dev/null
    fi
    if [ "$FAILS" -eq 0 ] && [ -z "${WSCHAT_IT_KEEP:-}" ]; then rm -rf "$T"; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
ok()   { echo "ok   $*"; }
not() { ! "$@"; }
to()  { local out=$1; shift; "$@" >"$out" 2>&1; }  # to FILE COMMAND...: output into FILE
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}

# The nested makes must see only the variables this script gives them: drop
# whatever `make test` was called with (MAKEFLAGS carries its command-line
# variables, e.g. DESTDIR) and any layout variable of the environment.
unset MAKEFLAGS MAKEOVERRIDES MFLAGS MAKELEVEL
for v in PREFIX EXEC_PREFIX SBINDIR DATADIR SYSCONFDIR LOCALSTATEDIR RUNSTATEDIR \
         SYSTEMDUNITDIR DESTDIR INSTALL; do unset "$v"; done

AS=()  # the user the staged installs run as
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
    AS=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
    if ! "${AS[@]}" test -r "$ROOT/Makefile" -a -r "$BIN" -a -x "$ROOT/web"; then
        echo "note: nobody cannot read $ROOT; staged installs run as root" >&2
        AS=()
    fi
fi

mk() { # mk LOG make-arguments... (quiet; the log is shown when it fails)
    local log=$1; shift
    if ! "${AS[@]}" "$MAKE" --no-print-directory -C "$ROOT" B="$B" "$@" >"$log" 2>&1; then
        cat "$log" >&2
        return 1
    fi
}
mk_root() { local save=("${AS[@]}"); AS=(); mk "$@"; local rc=$?; AS=("${save[@]}"); return $rc; }

# Value of the first active "NAME value" line of a conf.
conf_value() { sed -n "s/^$2[[:space:]]\{1,\}\([^;#]*[^;#[:space:]]\).*/\1/p" "$1" | head -1; }
unit_value() { sed -n "s/^$2=//p" "$1" | head -1; }

# Every active directive that names a file or folder holds an absolute path:
# catches a path directive added to conf/wschat.conf but not to the
# Makefile's INSTALL_CONF_PATHS.
conf_paths_absolute() {
    local bad
    bad=$(grep -E '^[a-z_]+_(root|file|log|dir)[[:space:]]' "$1" |
          awk '$2 != "stderr" && substr($2, 1, 1) != "/"')
    [ -z "$bad" ] || { echo "relative: $bad" >&2; return 1; }
}

same_tree() { # same_tree SRC DST: every file of SRC is in DST, byte for byte
    local f
    while read -r f; do cmp -s "$1/$f" "$2/$f" || { echo "differs: $f" >&2; return 1; }; done \
        < <(cd "$1" && find . -type f)
}

# ---- 1. staged default layout -----------------------------------------------
S="$T/stage"
mkdir -p "$S"
chmod 711 "$T"
[ ${#AS[@]} -gt 0 ] && chown nobody "$S"
check "install DESTDIR=$S${AS:+ (as nobody)}" mk "$T/install1.log" install DESTDIR="$S"

P=/usr/local
CONF="$S$P/etc/wschat/wschat.conf"
UNIT="$S$P/lib/systemd/system/wschat.service"
check "binary in \$PREFIX/sbin, the built one" cmp -s "$BIN" "$S$P/sbin/wsmaster"
check "binary executable" test -x "$S$P/sbin/wsmaster"
check "conf in \$PREFIX/etc/wschat" test -f "$CONF"
check "web client in \$PREFIX/share/wschat/web" same_tree "$ROOT/web" "$S$P/share/wschat/web"
check "unit in \$PREFIX/lib/systemd/system" test -f "$UNIT"
check "state folder /var/lib/wschat" test -d "$S/var/lib/wschat"
check "nothing outside PREFIX and /var" \
    test "$(cd "$S" && find . -mindepth 1 -maxdepth 1 | sort | tr '\n' ' ')" = "./usr ./var "
check "unit ExecStart = installed binary and conf" \
    test "$(unit_value "$UNIT" ExecStart)" = "$P/sbin/wsmaster -c $P/etc/wschat/wschat.conf"
check "unit ExecStartPre tests that conf" \
    test "$(unit_value "$UNIT" ExecStartPre)" = "$P/sbin/wsmaster -t -c $P/etc/wschat/wschat.conf"
check "default layout's unit is scripts/wschat.service" cmp -s "$ROOT/scripts/wschat.service" "$UNIT"
check "conf web_root = installed web client" \
    test "$(conf_value "$CONF" web_root)" = "$P/share/wschat/web"
check "conf pid_file under /run/wschat" \
    test "$(conf_value "$CONF" pid_file)" = "/run/wschat/wschat.pid"
check "conf history_file under /var/lib/wschat" \
    test "$(conf_value "$CONF" history_file)" = "/var/lib/wschat/history"
check "conf has no relative path" conf_paths_absolute "$CONF"
check "conf otherwise conf/wschat.conf" \
    test "$(grep -Ev '^(web_root|pid_file|history_file)[[:space:]]' "$CONF" | grep -v '^# Installed\|^# paths below')" \
       = "$(grep -Ev '^(web_root|pid_file|history_file)[[:space:]]' "$ROOT/conf/wschat.conf")"
check "installed wsmaster -t accepts the installed conf" \
    to "$T/t1.out" "$S$P/sbin/wsmaster" -t -c "$CONF"
check "  and says so" grep -q "test is successful" "$T/t1.out"
sed 's/^max_text .*/max_text 2m/' "$CONF" > "$S$P/etc/wschat/broken.conf"
check "  and -t can fail (max_text above max_message)" \
    not to "$T/t2.out" "$S$P/sbin/wsmaster" -t -c "$S$P/etc/wschat/broken.conf"
rm -f "$S$P/etc/wschat/broken.conf"

# ---- 2. an edited conf is kept ----------------------------------------------
cp "$CONF" "$T/pristine.conf"
check "install again, unedited" mk "$T/install2.log" install DESTDIR="$S"
check "  conf unchanged" cmp -s "$T/pristine.conf" "$CONF"
check "  no .default for an unedited conf" test ! -e "$CONF.default"
sed -i 's/^log_level .*/log_level debug/' "$CONF"
cp "$CONF" "$T/edited.conf"
check "install again, conf edited" mk "$T/install3.log" install DESTDIR="$S"
check "  edited conf not overwritten" cmp -s "$T/edited.conf" "$CONF"
check "  new default beside it as wschat.conf.default" cmp -s "$T/pristine.conf" "$CONF.default"
check "  and install said so" grep -q "wschat.conf.default" "$T/install3.log"
check "uninstall DESTDIR=$S" mk "$T/uninstall1.log" uninstall DESTDIR="$S"
check "  binary, unit, web client and .default gone" \
    test ! -e "$S$P/sbin/wsmaster" -a ! -e "$UNIT" -a ! -e "$S$P/share/wschat" -a ! -e "$CONF.default"
check "  edited conf kept" cmp -s "$T/edited.conf" "$CONF"
check "  empty state folder gone" test ! -e "$S/var/lib/wschat"

# ---- 3. other layouts (staged) ------------------------------------------------
S2="$T/stage-usr"
mkdir -p "$S2"
[ ${#AS[@]} -gt 0 ] && chown nobody "$S2"
check "install PREFIX=/usr" mk "$T/install4.log" install PREFIX=/usr DESTDIR="$S2"
check "  /usr/sbin, /etc/wschat, /usr/share/wschat/web, /usr/lib/systemd/system" \
    test -x "$S2/usr/sbin/wsmaster" -a -f "$S2/etc/wschat/wschat.conf" \
         -a -f "$S2/usr/share/wschat/web/index.html" -a -f "$S2/usr/lib/systemd/system/wschat.service"
check "  unit ExecStart" \
    test "$(unit_value "$S2/usr/lib/systemd/system/wschat.service" ExecStart)" \
       = "/usr/sbin/wsmaster -c /etc/wschat/wschat.conf"
check "  conf web_root" test "$(conf_value "$S2/etc/wschat/wschat.conf" web_root)" = "/usr/share/wschat/web"

S3="$T/stage-opt"
mkdir -p "$S3"
[ ${#AS[@]} -gt 0 ] && chown nobody "$S3"
check "install PREFIX=/opt/wschat SYSCONFDIR=/etc/opt RUNSTATEDIR=/var/run" \
    mk "$T/install5.log" install PREFIX=/opt/wschat SYSCONFDIR=/etc/opt RUNSTATEDIR=/var/run DESTDIR="$S3"
check "  unit in /etc/systemd/system for a prefix systemd does not read" \
    test -f "$S3/etc/systemd/system/wschat.service"
check "  unit ExecStart" \
    test "$(unit_value "$S3/etc/systemd/system/wschat.service" ExecStart)" \
       = "/opt/wschat/sbin/wsmaster -c /etc/opt/wschat/wschat.conf"
check "  conf pid_file" test "$(conf_value "$S3/etc/opt/wschat/wschat.conf" pid_file)" = "/var/run/wschat/wschat.pid"
check "  conf web_root" test "$(conf_value "$S3/etc/opt/wschat/wschat.conf" web_root)" = "/opt/wschat/share/wschat/web"

# ---- 4. a real install in a temp prefix, then run it ----------------------------
R="$T/prefix"
LAYOUT=(PREFIX="$R" LOCALSTATEDIR="$R/var" RUNSTATEDIR="$R/run" SYSTEMDUNITDIR="$R/lib/systemd/system" DESTDIR=)
check "install PREFIX=$R (no DESTDIR)" mk_root "$T/install6.log" install "${LAYOUT[@]}"
RCONF="$R/etc/wschat/wschat.conf"
check "  conf names the real web root" test "$(conf_value "$RCONF" web_root)" = "$R/share/wschat/web"
check "  unit ExecStart" \
    test "$(unit_value "$R/lib/systemd/system/wschat.service" ExecStart)" = "$R/sbin/wsmaster -c $RCONF"
check "  wsmaster -t" to "$T/t3.out" "$R/sbin/wsmaster" -t -c "$RCONF"

# The copy differs in listen and workers only; it sits beside the installed one.
TCONF="$R/etc/wschat/test.conf"
sed -e 's/^listen .*/listen 127.0.0.1:0/' -e 's/^workers .*/workers 1/' "$RCONF" > "$TCONF"
RPID="$R/run/wschat/wschat.pid"
mkdir -p "$R/run"   # the system's /run: the master makes one level, wschat/, in it
"$R/sbin/wsmaster" -c "$TCONF" </dev/null >"$T/srv.out" 2>"$T/srv.err" &
SRV_PID=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$T/srv.err" | head -1)
    [ -n "$port" ] && [ -s "$RPID" ] && break
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.05
done
if [ -z "$port" ]; then
    fail "installed wsmaster did not come up"; tail -20 "$T/srv.err" >&2
else
    ok "installed wsmaster listening on 127.0.0.1:$port"
    check "  pid file in the installed run folder" test "$(cat "$RPID")" = "$SRV_PID"
    get() { # get PATH OUT: HTTP/1.1 GET with Connection: close, whole response in OUT
        exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
        printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$1" >&3
        timeout 5 cat <&3 >"$2"
        local rc=$?
        exec 3<&-
        return $rc
    }
    body() { sed '1,/^\r$/d' "$1"; }
    check "  GET / answered" get / "$T/index.resp"
    check "  200" grep -q '^HTTP/1.1 200' "$T/index.resp"
    check "  the installed index.html" cmp -s <(body "$T/index.resp") "$R/share/wschat/web/index.html"
    check "  GET /chat.js: the installed one" \
        eval 'get /chat.js "$T/js.resp" && cmp -s <(body "$T/js.resp") "$R/share/wschat/web/chat.js"'
    check "  wsmaster -s quit through the pid file" "$R/sbin/wsmaster" -c "$TCONF" -s quit
    for _ in $(seq 100); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$SRV_PID" 2>/dev/null; then
        fail "  master still running 5 s after -s quit"
    else
        wait "$SRV_PID"; rc=$?
        check "  master exited 0" test "$rc" -eq 0
        check "  no alert or crit line" not grep -q '\[alert\]\|\[crit\]' "$T/srv.err"
        SRV_PID=
    fi
fi
rm -f "$TCONF"
check "uninstall PREFIX=$R" mk_root "$T/uninstall2.log" uninstall "${LAYOUT[@]}"
check "  nothing but empty folders left" \
    test -z "$(find "$R" ! -type d)"

if [ "$FAILS" -ne 0 ]; then
    echo "install test: $FAILS check(s) failed; files kept in $T" >&2
    exit 1
fi
echo "install test: all checks passed"
