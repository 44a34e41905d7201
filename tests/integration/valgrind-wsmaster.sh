#!/bin/sh
# The server under valgrind's memcheck for `make valgrind`: one log per
# process (master and every worker) in $WSCHAT_VG_DIR, a non-zero exit on
# any error it reports.
exec valgrind --quiet --error-exitcode=99 --log-file="${WSCHAT_VG_DIR:-/tmp}/memcheck.%p" \
    "$WSCHAT_VG_SERVER" "$@"
