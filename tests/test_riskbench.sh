#!/usr/bin/env bash
# riskbench from the outside: --help, usage errors (exit 2, one line and a
# hint), an unreadable log (exit 1); against its own bare echo at 2,000/s for
# 3 s it reports the rate it was asked for (within 5%) with nothing lost;
# --find-max reports its steps and a result; and when riskd is built, a short
# run against a live riskd (shipped rules, a private data directory and admin
# socket, a free port) is answered in full with real decisions. Bounded: about
# 20 s. Only loopback endpoints are used.
#
# Usage: bash tests/test_riskbench.sh BUILD_DIR   (from the source directory; ctest does this)
set -euo pipefail

BUILD_DIR=${1:?usage: bash tests/test_riskbench.sh BUILD_DIR}
RB=$BUILD_DIR/riskbench
RISKD=$BUILD_DIR/riskd

. tests/support/lib.sh

# json_check PYTHON-EXPRESSION: evaluated with j = the JSON on stdout; must be true.
json_check() {
    $PY -c 'import json, sys; j = json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' \
        "$OUT" "$1" || fail "JSON check failed: $1"
}

# A small log: 500 score requests, some labelled.
$PY - "$TMP/t.rlog" <<'EOF'
import sys, msgpack
with open(sys.argv[1], "wb") as f:
    for i in range(500):
        f.write(msgpack.packb({
            "id": "rb-%05d" % i, "account": "acct-%d" % (i % 40), "amount": 100 + i * 37 % 90000,
            "ts": 1795000000000 + i * 1000, "currency": "USD", "channel": "web",
            "card": "card-%d" % (i % 70), "device": "dev-%d" % (i % 50),
            "ip": "10.0.%d.%d" % (i % 5, i % 250), "country": "US",
            "ip_country": "NG" if i % 11 == 0 else "US", "card_country": "US", "mcc": 5411,
            "label": int(i % 97 == 0)}))
EOF

# ---------------------------------------------------------------- usage

t "--help"
run "$RB" --help
rc_is 0
out_matches '^Usage: riskbench --endpoint EP --log LOG --rate R --duration S'

usage_error() { # NAME EXPECTED-FIRST-LINE ARGS...
    local name=$1 want=$2
    shift 2
    t "usage: $name"
    run "$RB" "$@"
    rc_is 2
    err_is "riskbench: $want
Try 'riskbench --help'."
}
usage_error "no arguments" "--log LOG is required (the traffic log to replay)"
usage_error "no endpoint" "--endpoint EP is required (or --echo for a bare echo)" --log "$TMP/t.rlog" --rate 10
usage_error "no rate" "--rate R is required" --echo --log "$TMP/t.rlog"
usage_error "a rate that is not a number" \
    "option '--rate' takes a number above 0 and at most 1e+07, not 'fast'" --echo --log x --rate fast
usage_error "zero connections" \
    "option '--connections' takes a number from 1 and at most 64, not '0'" --echo --log x --rate 5 --connections 0
usage_error "an unknown option" "unknown option '--rates'" --echo --log x --rates 5
usage_error "an option without its value" "option '--duration' needs a value" --echo --log x --rate 5 --duration
usage_error "find-max without a bound" "--find-max needs one of --p99-bound-us B and --p99-vs-echo K" \
    --find-max --echo --log x
usage_error "find-max with two bounds" "--find-max needs one of --p99-bound-us B and --p99-vs-echo K" \
    --find-max --echo --log x --p99-bound-us 100 --p99-vs-echo 2
usage_error "an echo factor without find-max" \
    "--p99-bound-us and --p99-vs-echo only apply with --find-max" --echo --log x --rate 5 --p99-vs-echo 2
usage_error "a stray argument" "unexpected argument 'now' (options only)" --echo --log x --rate 5 now

t "a missing log"
run "$RB" --echo --log "$TMP/none.rlog" --rate 10 --duration 1
rc_is 1
err_is "riskbench: $TMP/none.rlog: no such file"

t "a corrupt log"
printf 'not a log' >"$TMP/bad.rlog"
run "$RB" --echo --log "$TMP/bad.rlog" --rate 10 --duration 1
rc_is 1
err_is "riskbench: $TMP/bad.rlog: record at byte 0: expected a msgpack map (a request or a decision record), found int"

t "nobody listening"
run "$RB" --endpoint "tcp://127.0.0.1:$(free_port)" --log "$TMP/t.rlog" --rate 10 --duration 1
rc_is 1
[[ $ERR == *"(is riskd running?)" ]] || fail "no 'is riskd running?' hint"

# ---------------------------------------------------------------- the echo

t "echo at 2,000/s for 3 s: the rate asked, nothing lost"
run "$RB" --echo --log "$TMP/t.rlog" --rate 2000 --duration 3 --json
rc_is 0
json_check 'abs(j["achieved"] - 2000) <= 100'
json_check 'j["sent"] == 6000 and j["answered"] == 6000 and j["errors"] == 0 and j["lost"] == 0'
json_check 'j["decisions"]["none"] == 6000 and j["echo"] is True'
json_check '0 < j["p50_us"] <= j["p90_us"] <= j["p99_us"] <= j["p999_us"] <= j["max_us"]'

t "echo, text report"
run "$RB" --echo --log "$TMP/t.rlog" --rate 500 --duration 0.5 --connections 3 --warmup 0.2
rc_is 0
out_matches 'rate 500/s for 0.5 s: sent 250, achieved [0-9.]+/s, answered 250'
out_matches 'latency us from intended send time: p50 [0-9.]+ +p90'

t "find-max against the echo"
run "$RB" --echo --find-max --log "$TMP/t.rlog" --rate 2000 --duration 0.5 --p99-bound-us 1000000 \
    --timeout 500 --json
rc_is 0
json_check 'len(j["steps"]) >= 2 and j["steps"][0]["rate"] == 2000'
json_check 'all(s["pass"] == (s["lost"] == 0 and s["p99_us"] <= 1e6 and s["achieved"] >= 0.95 * s["rate"]) for s in j["steps"])'
json_check 'j["max_rate"] == max([s["rate"] for s in j["steps"] if s["pass"]] or [0])'
json_check 'j["max_rate"] == 0 or j["at_max"]["lost"] == 0'

t "find-max against the echo, bounded by a second echo at each step's rate"
# a bound no step can meet (a thousandth of the echo's p99): the search halves
# from 8/s down to 1/s and reports no rate
run "$RB" --echo --find-max --log "$TMP/t.rlog" --rate 8 --duration 0.5 --p99-vs-echo 0.001 \
    --timeout 500 --json
rc_is 0
json_check '[s["rate"] for s in j["steps"]] == [8, 4, 2, 1] and not any(s["pass"] for s in j["steps"])'
json_check 'all(s["echo_p99_us"] > 0 and s["echo_lost"] == 0 for s in j["steps"])'
json_check 'all(abs(s["p99_bound_us"] - 0.001 * s["echo_p99_us"]) <= 0.1 for s in j["steps"])'
json_check 'j["p99_vs_echo"] == 0.001 and j["max_rate"] == 0'

# ---------------------------------------------------------------- a live riskd

if [[ -x $RISKD ]]; then
    PORT=$(free_port)
    EP=tcp://127.0.0.1:$PORT
    "$RISKD" --rules rules/default.yaml --endpoint "$EP" --admin-endpoint "ipc://$TMP/admin.sock" \
        --data-dir "$TMP" --log-level warn 2>"$TMP/riskd.log" &
    RISKD_PID=$!

    t "riskd at 500/s for 2 s: every request decided"
    run "$RB" --endpoint "$EP" --log "$TMP/t.rlog" --rate 500 --duration 2 --json
    rc_is 0
    json_check 'j["sent"] == 1000 and j["answered"] == 1000 and j["errors"] == 0'
    json_check 'sum(j["decisions"][k] for k in ("allow", "review", "block")) == 1000'

    t "riskd, the log looped twice more with fresh ids"
    run "$RB" --endpoint "$EP" --log "$TMP/t.rlog" --rate 1000 --duration 1.5 --tag again --json
    rc_is 0
    json_check 'j["answered"] == 1500 and j["errors"] == 0 and j["decisions"]["none"] == 0'

    kill "$RISKD_PID"
    wait "$RISKD_PID" 2>/dev/null || true
    RISKD_PID=
else
    echo "test_riskbench: $RISKD not built; live riskd checks skipped"
fi

finish test_riskbench
