#!/usr/bin/env bash
# riskctl backtest, end to end (docs/backtest.md): a generated labelled log
# through the shipped rules; a baseline comparison; the decision log of a real
# riskd replayed through the rules that made it (no decision may differ), also
# from a backup taken half way (--state); --emit-features; and the one-line
# failures (usage, missing or corrupt log, broken rule file).
#
# Usage: bash tests/test_backtest.sh BUILD_DIR   (from the repository root; ctest does this)
set -euo pipefail

BUILD=$(cd "${1:?usage: test_backtest.sh BUILD_DIR}" && pwd)
ROOT=$(pwd)
RISKCTL="$BUILD/riskctl"
RISKD="$BUILD/riskd"
PY=/usr/bin/python3
T=$(mktemp -d /tmp/rk_backtest_XXXXXX)
RISKD_PID=
cleanup() {
    [ -n "$RISKD_PID" ] && kill -9 "$RISKD_PID" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
export TMPDIR="$T/tmp" # the replayers' private stores, checked for leftovers below
mkdir -p "$TMPDIR"

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() {
    echo "FAIL: $*" >&2
    fail=$((fail + 1))
}
# expect_status WANT CMD...: runs CMD, keeps stdout/stderr in $T/out, $T/err;
# fails (showing why) unless it exits with WANT. Callers count: `&& ok || bad`.
expect_status() {
    local want=$1 got=0
    shift
    "$@" >"$T/out" 2>"$T/err" || got=$?
    if [ "$got" -ne "$want" ]; then
        echo "exit $got, wanted $want: $*" >&2
        sed 's/^/    /' "$T/err" >&2
        return 1
    fi
}
# check NAME PYTHON-EXPR: evaluates EXPR with r = the JSON report in $T/out.
check() {
    local name=$1 expr=$2
    if "$PY" -c "import json,sys; r=json.load(open('$T/out')); sys.exit(0 if ($expr) else 1)"; then
        ok
    else
        bad "$name: $expr"
        "$PY" -c "import json; r=json.load(open('$T/out')); print({k: r[k] for k in r if k not in ('rule_hits', 'shadow_hits')})" >&2 || cat "$T/out" >&2
    fi
}

N=20000
tools/gen-traffic --seed 3 -n $N --fraud-rate 0.01 -o "$T/t.rlog" 2>/dev/null

# ---- help and usage ----
expect_status 0 "$RISKCTL" backtest --help && grep -q "Usage: riskctl backtest" "$T/out" && ok || bad "line $LINENO"
expect_status 0 "$RISKCTL" --help && grep -q "backtest" "$T/out" && ok || bad "line $LINENO"
expect_status 2 "$RISKCTL" backtest --log "$T/t.rlog" && grep -q "needs --rules" "$T/err" && ok || bad "line $LINENO"
expect_status 2 "$RISKCTL" backtest --rules rules/default.yaml && grep -q "needs --log" "$T/err" && ok || bad "line $LINENO"
expect_status 2 "$RISKCTL" backtest --rules rules/default.yaml --log "$T/t.rlog" --examples x && ok || bad "line $LINENO"
expect_status 2 "$RISKCTL" backtest --rules rules/default.yaml --log "$T/t.rlog" --batch 0 && ok || bad "line $LINENO"
expect_status 2 "$RISKCTL" backtest --rules rules/default.yaml --log "$T/t.rlog" --jsno &&
    grep -q "did you mean '--json'" "$T/err" && ok || bad "line $LINENO"

# ---- inputs that cannot be read: one line, exit 1 ----
expect_status 1 "$RISKCTL" backtest --rules rules/default.yaml --log "$T/nope.rlog" &&
    grep -q "nope.rlog: no such file" "$T/err" && [ "$(wc -l <"$T/err")" -eq 1 ] && ok || bad "line $LINENO"
"$PY" - "$T/t.rlog" "$T/corrupt.rlog" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
import msgpack
up = msgpack.Unpacker(raw=False)
up.feed(data)
next(up); next(up)
cut = up.tell()                       # after two good records: a value that is not a map
open(sys.argv[2], "wb").write(data[:cut] + msgpack.packb(7) + data[cut:])
print(cut, file=open(sys.argv[2] + ".offset", "w"))
EOF
off=$(cat "$T/corrupt.rlog.offset")
expect_status 1 "$RISKCTL" backtest --rules rules/default.yaml --log "$T/corrupt.rlog" &&
    grep -q "corrupt.rlog: .*byte $off" "$T/err" && [ "$(wc -l <"$T/err")" -eq 1 ] && ok || bad "line $LINENO"
# Modified copies of the shipped rules live in $T/rules, next to the same
# lists/ and, one level up, models/ (the paths a rule file names are
# relative to it).
mkdir -p "$T/rules"
cp -r rules/lists "$T/rules/"
ln -s "$ROOT/models" "$T/models"
sed 's/when: amount >= /when: amout >= /' rules/default.yaml >"$T/rules/broken.yaml"
grep -q "amout" "$T/rules/broken.yaml" || bad "could not make a broken rule file"
expect_status 1 "$RISKCTL" backtest --rules "$T/rules/broken.yaml" --log "$T/t.rlog" &&
    grep -Eq "broken.yaml:[0-9]+:[0-9]+: unknown field 'amout'" "$T/err" &&
    [ "$(wc -l <"$T/err")" -eq 1 ] && ok || bad "line $LINENO"
expect_status 1 "$RISKCTL" backtest --rules rules/default.yaml --log "$T/t.rlog" --state "$T/none" &&
    grep -q "backup" "$T/err" && ok || bad "line $LINENO"
printf 'ruleset: nofeat\nversion: "1"\nrules:\n  - id: big\n    when: amount > 100\n    score: 1\n' >"$T/rules/nofeat.yaml"
expect_status 1 "$RISKCTL" backtest --rules "$T/rules/nofeat.yaml" --log "$T/t.rlog" --emit-features "$T/f.csv" &&
    grep -q "declares no model features" "$T/err" && [ ! -e "$T/f.csv" ] && ok || bad "line $LINENO"

# ---- a labelled log through the shipped rules ----
expect_status 0 "$RISKCTL" backtest --rules rules/default.yaml --log "$T/t.rlog" --json || bad "line $LINENO"
check transactions "r['transactions'] == $N"
check decisions_sum "sum(r['decisions'].values()) + sum(r['errors'].values()) + r['not_scored'] == $N"
check no_errors "r['errors'] == {} and r['degraded'] == 0"
check ruleset "r['ruleset'].startswith('default@')"
NRULES=$("$RISKCTL" check rules/default.yaml | sed -n 's/.*, \([0-9]*\) rules)$/\1/p')
check rule_hits "len(r['rule_hits']) + len(r['shadow_hits']) == $NRULES and sum(r['rule_hits'].values()) > 0"
check labels "r['labels']['caught'] + r['labels']['missed'] == r['labels']['fraud'] == 200"
check labels_split "r['labels']['caught'] == r['labels']['caught_block'] + r['labels']['caught_review']"
check labelled "r['labels']['labelled'] == $N and r['labels']['legit'] == $N - 200"
check fp "abs(r['labels']['false_positive_rate'] - r['labels']['false_positives'] / r['labels']['legit']) < 1e-6"
check scenarios "set(r['labels']['scenarios']) == {'legit', 'card_testing', 'ato', 'stolen_card', 'high_value', 'friendly'}"
check scenario_sum "sum(s['fraud'] for s in r['labels']['scenarios'].values()) == 200"
check no_baseline "'changes' not in r and 'differs_from_logged' not in r"
check timing "r['throughput_tps'] > 0 and r['elapsed_s'] > 0"
cp "$T/out" "$T/default.json"
# Deterministic: the same log through the same rules gives the same report,
# whatever the commit batch.
expect_status 0 "$RISKCTL" backtest --rules rules/default.yaml --log "$T/t.rlog" --json --batch 1 || bad "line $LINENO"
"$PY" - "$T/default.json" "$T/out" <<'EOF' && ok || bad "report differs between --batch 1000 and --batch 1"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for r in (a, b):
    for k in ("throughput_tps", "elapsed_s", "cpu_s", "load_s"):
        r.pop(k)
sys.exit(0 if a == b else 1)
EOF
expect_status 0 "$RISKCTL" backtest --rules rules/default.yaml --log "$T/t.rlog" &&
    grep -q "^Decisions" "$T/out" && grep -q "^Rule hits" "$T/out" && grep -q "^Labels" "$T/out" &&
    grep -q "card_testing" "$T/out" && ok || bad "line $LINENO"
[ -z "$(ls -A "$TMPDIR")" ] && ok || bad "private stores left in \$TMPDIR: $(ls "$TMPDIR")"

# ---- against a baseline: lower review threshold ----
sed 's/^  review: 50$/  review: 30/' rules/default.yaml >"$T/rules/cand.yaml"
cmp -s rules/default.yaml "$T/rules/cand.yaml" && bad "could not change the review threshold"
expect_status 0 "$RISKCTL" backtest --rules "$T/rules/cand.yaml" --baseline rules/default.yaml \
    --log "$T/t.rlog" --json --examples 3 || bad "line $LINENO"
check base_decisions "r['baseline']['decisions'] == json.load(open('$T/default.json'))['decisions']"
check changed "r['changes']['changed'] > 0"
check rows "all(sum(r['changes'][b].values()) == r['baseline']['decisions'][b] for b in ('allow', 'review', 'block'))"
check cols "all(sum(r['changes'][b][c] for b in ('allow', 'review', 'block')) == r['decisions'][c] for c in ('allow', 'review', 'block'))"
check changed_sum "r['changes']['changed'] == sum(r['changes'][b][c] for b in ('allow', 'review', 'block') for c in ('allow', 'review', 'block') if b != c)"
check examples "all(0 < len(v) <= 3 for v in r['changes']['examples'].values()) and 'allow->review' in r['changes']['examples']"
check example_ids "all(i.startswith('tx_') for v in r['changes']['examples'].values() for i in v)"
check caught_more "r['labels']['caught'] >= r['baseline']['labels']['caught']"
expect_status 0 "$RISKCTL" backtest --rules "$T/rules/cand.yaml" --baseline rules/default.yaml \
    --log "$T/t.rlog" && grep -q "^Decision changes" "$T/out" && grep -q "allow -> review" "$T/out" && ok || bad "line $LINENO"

# ---- --emit-features ----
cat >"$T/rules/feat.yaml" <<'EOF'
ruleset: feat
version: "1"
schema:
  account_age_days: int
counters:
  acct_txn_1h: {by: account, window: 1h}
model:
  features:
    log_amount: log(amount + 1)
    acct_txn_1h: acct_txn_1h
    foreign_ip: ip_country != card_country
    age: account_age_days
rules:
  - id: big
    when: amount > 500000
    score: 50
EOF
expect_status 0 "$RISKCTL" backtest --rules "$T/rules/feat.yaml" --log "$T/t.rlog" \
    --emit-features "$T/f.csv" --json || bad "line $LINENO"
"$PY" - "$T/f.csv" "$N" <<'EOF' && ok || bad "--emit-features CSV"
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
assert rows[0] == ["id", "ts", "label", "log_amount", "acct_txn_1h", "foreign_ip", "age"], rows[0]
body = rows[1:]
assert len(body) == int(sys.argv[2]), len(body)
assert all(r[0].startswith("tx_") and r[2] in ("0", "1") for r in body)
assert all(int(a[1]) <= int(b[1]) for a, b in zip(body, body[1:])), "not in event-time order"
assert all(float(r[4]) >= 1 for r in body), "a counter includes its own transaction"
assert any(r[5] == "" for r in body) and any(r[5] == "1" for r in body)  # pos payments: no ip_country
assert all(r[3] == "" or float(r[3]) > 0 for r in body)
assert sum(r[2] == "1" for r in body) == 200
EOF

# The shipped rules declare the model's features: the CSV has them all.
expect_status 0 "$RISKCTL" backtest --rules rules/default.yaml --log "$T/t.rlog" \
    --emit-features "$T/f2.csv" --json || bad "line $LINENO"
"$PY" - "$T/f2.csv" "$N" <<'EOF' && ok || bad "--emit-features CSV with the shipped rules"
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
assert rows[0][:3] == ["id", "ts", "label"] and len(rows[0]) > 3, rows[0]
assert len(set(rows[0])) == len(rows[0])
assert len(rows) == 1 + int(sys.argv[2]) and all(len(r) == len(rows[0]) for r in rows)
assert all(c == "" or float(c) == float(c) for r in rows[1:] for c in r[3:])
EOF

# ---- a real riskd's decision log, replayed through the rules that made it ----
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
EP="tcp://127.0.0.1:$PORT"
ADMIN="ipc://$T/admin.sock"
# One worker: requests are decided in the order they are sent (event-time
# order), so the live counters saw what the replay sees.
"$RISKD" --rules rules/default.yaml --endpoint "$EP" --admin-endpoint "$ADMIN" \
    --data-dir "$T/data" --workers 1 2>"$T/riskd.log" &
RISKD_PID=$!
# send.py LOG FIRST COUNT OUT: sends records [FIRST, FIRST+COUNT) in lockstep,
# appends (request bytes, reply bytes) to OUT for the fallback decision log.
cat >"$T/send.py" <<'EOF'
import struct, sys, time
import msgpack, zmq
log, first, count, out, ep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = zmq.Context()
s = ctx.socket(zmq.REQ)
s.setsockopt(zmq.LINGER, 0)
s.setsockopt(zmq.RCVTIMEO, 5000)
s.connect(ep)
deadline = time.time() + 20
while True:                               # riskd is starting: wait for a ping
    try:
        s.send(msgpack.packb({"op": "ping"}))
        s.recv()
        break
    except zmq.Again:
        s.close()
        if time.time() > deadline:
            sys.exit("riskd did not answer")
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, 5000)
        s.connect(ep)
data = open(log, "rb").read()
up = msgpack.Unpacker(raw=False)
up.feed(data)
start = 0
with open(out, "ab") as f:
    for i in range(first + count):
        up.skip()
        end = up.tell()
        if i >= first:
            req = data[start:end]
            s.send(req)
            rep = s.recv()
            f.write(struct.pack("<II", len(req), len(rep)) + req + rep)
        start = end
EOF
HALF=$((N / 2))
"$PY" "$T/send.py" "$T/t.rlog" 0 $HALF "$T/pairs" "$EP" || bad "sending the first half"
expect_status 0 "$RISKCTL" backup --admin "$ADMIN" "$T/backup" && ok || bad "line $LINENO"
"$PY" "$T/send.py" "$T/t.rlog" $HALF $((N - HALF)) "$T/pairs" "$EP" || bad "sending the second half"
kill -TERM "$RISKD_PID" 2>/dev/null || bad "riskd was not running: $(tail -3 "$T/riskd.log")"
wait "$RISKD_PID" || bad "riskd exited with $?"
RISKD_PID=

# The decision log riskd wrote; without one (a riskd built before the
# decision log), the same records made from the replies collected above.
DECLOG="$T/data/decisions"
if ! ls "$DECLOG"/*.rlog >/dev/null 2>&1; then
    echo "test_backtest: riskd wrote no decision log; replaying one made from its replies" >&2
    DECLOG="$T/made.rlog"
    "$PY" - "$T/pairs" "$DECLOG" <<'EOF'
import struct, sys
import msgpack
def crc32c(data, crc=0):
    table = crc32c.table
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
crc32c.table = [0] * 256
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    crc32c.table[i] = c
p = open(sys.argv[1], "rb").read()
out = open(sys.argv[2], "wb")
pos = 0
while pos < len(p):
    nq, nr = struct.unpack_from("<II", p, pos)
    req, rep = p[pos + 8:pos + 8 + nq], p[pos + 8 + nq:pos + 8 + nq + nr]
    pos += 8 + nq + nr
    out.write(msgpack.packb({"req": req, "resp": rep, "ruleset": msgpack.unpackb(rep)["ruleset"],
                             "at": 0, "crc": crc32c(rep, crc32c(req))}, use_bin_type=True))
EOF
fi
expect_status 0 "$RISKCTL" backtest --rules rules/default.yaml --log "$DECLOG" --json || bad "line $LINENO"
check declog_all "r['transactions'] == $N and r['logged_compared'] == $N"
check declog_same "r['differs_from_logged'] == 0"
check declog_labels "r['labels']['fraud'] == 200"
# The second half alone, from the backup taken half way: the same decisions;
# from empty counters instead, some differ (the state mattered).
"$PY" - "$DECLOG" "$HALF" "$T/second.rlog" <<'EOF'
import glob, os, sys
import msgpack
path, half, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
files = sorted(glob.glob(os.path.join(path, "*.rlog"))) if os.path.isdir(path) else [path]
data = b"".join(open(f, "rb").read() for f in files)
up = msgpack.Unpacker(raw=False)
up.feed(data)
for _ in range(half):
    up.skip()
open(out, "wb").write(data[up.tell():])
EOF
expect_status 0 "$RISKCTL" backtest --rules rules/default.yaml --log "$T/second.rlog" \
    --state "$T/backup" --json || bad "line $LINENO"
check state_all "r['transactions'] == $N - $HALF and r['logged_compared'] == $N - $HALF"
check state_same "r['differs_from_logged'] == 0"
expect_status 0 "$RISKCTL" backtest --rules rules/default.yaml --log "$T/second.rlog" --json || bad "line $LINENO"
check nostate_differs "r['differs_from_logged'] > 0 and len(r['differs_examples']) == min(5, r['differs_from_logged'])"
expect_status 0 "$RISKCTL" backtest --rules rules/default.yaml --log "$T/second.rlog" &&
    grep -q "^Decision log" "$T/out" && grep -q "logged .*, now " "$T/out" && ok || bad "line $LINENO"
[ -z "$(ls -A "$TMPDIR")" ] && ok || bad "private stores left in \$TMPDIR: $(ls "$TMPDIR")"

echo "test_backtest: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
