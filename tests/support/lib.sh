# Shared preamble of the script tests (tests/test_*.sh), sourced by each after
# `set -euo pipefail` from the source directory:
#
#     . tests/support/lib.sh
#
# It gives a private temporary directory $TMP, removed on exit together with a
# riskd the script started and recorded in $RISKD_PID; the check helpers (t,
# run, fail, rc_is, out_is, err_is, out_matches, err_matches);
# free_port; and finish, which reports the failures and sets the exit status.
# This file lives under tests/support/ so that ctest's glob of tests/*.sh does
# not take it for a test.

PY=/usr/bin/python3

TMP=$(mktemp -d)
RISKD_PID=
cleanup() {
    if [[ -n $RISKD_PID ]] && kill -0 "$RISKD_PID" 2>/dev/null; then
        kill "$RISKD_PID" 2>/dev/null || true
        wait "$RISKD_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

failures=0
NAME=

# t NAME: starts a check; run CMD...: runs it, capturing OUT, ERR and RC.
t() { NAME=$1; }
run() {
    set +e
    "$@" >"$TMP/out" 2>"$TMP/err"
    RC=$?
    set -e
    OUT=$(cat "$TMP/out")
    ERR=$(cat "$TMP/err")
}
fail() {
    failures=$((failures + 1))
    printf 'FAIL: %s: %s\n' "$NAME" "$1"
    printf '  stdout: %s\n' "${OUT//$'\n'/$'\n'          }"
    printf '  stderr: %s\n' "${ERR//$'\n'/$'\n'          }"
}
rc_is() { [[ $RC == "$1" ]] || fail "exit status $RC, expected $1"; }
out_is() { [[ $OUT == "$1" ]] || fail "stdout differs; expected: $1"; }
err_is() { [[ $ERR == "$1" ]] || fail "stderr differs; expected: $1"; }
out_matches() { [[ $OUT =~ $1 ]] || fail "stdout does not match /$1/"; }
err_matches() { [[ $ERR =~ $1 ]] || fail "stderr does not match /$1/"; }

free_port() {
    $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# finish LABEL: the last line of a script; exit 1 if any check failed.
finish() {
    if ((failures)); then
        echo "$1: $failures check(s) failed"
        exit 1
    fi
    echo "$1: all checks passed"
}
