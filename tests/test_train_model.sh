#!/usr/bin/env bash
# tools/train-model from the outside: on a synthetic feature CSV with a
# learnable signal and missing values it trains, writes the XGBoost JSON and
# an .rmdl that `riskctl model info` reads, prints sane validation metrics
# (ROC-AUC above 0.8, recall that grows with the false-positive rate, and
# thresholds that give exactly the reported counts), and gives the same bytes
# twice; bad input and bad options are one line on stderr with exit status 1
# and 2. When `riskctl backtest` exists, the commands of docs/model.md's
# analyst walkthrough run on a small log, as written there. About 20 s.
#
# Usage: bash tests/test_train_model.sh BUILD_DIR   (from the source directory; ctest does this)
set -euo pipefail

BUILD_DIR=$(cd "${1:?usage: bash tests/test_train_model.sh BUILD_DIR}" && pwd)
PY=/usr/bin/python3
TRAIN=tools/train-model
RISKCTL=$BUILD_DIR/riskctl
SRC=$(pwd)

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

[[ -x $TRAIN ]] || { echo "FAIL: $TRAIN is missing or not executable" >&2; exit 1; }
if ! "$PY" -c 'import numpy, xgboost' 2>/dev/null; then
    echo "SKIP: python3-numpy or python3-xgboost is not installed (tools/install-deps)"
    exit 0
fi

# ---- --help ---------------------------------------------------------------
if out=$("$TRAIN" --help 2>&1) && [[ $out == usage:* ]]; then
    ok "--help exits 0 with a usage"
else
    fail "--help: want exit 0 and a usage, got: $out"
fi

# ---- a synthetic CSV ---------------------------------------------------------
# syn.py OUT N SEED: fraud depends on velocity, account age, channel and the
# amount; `noise` is noise; about 10% of two columns are empty (missing);
# booleans are written as true/false and rows are not in ts order.
cat >"$TMP/syn.py" <<'EOF'
import sys
import numpy as np
out, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
amount = np.round(rng.lognormal(8, 1.2, n)).astype(int)
cnt = rng.poisson(1.5, n)
age = rng.integers(0, 2000, n)
web = rng.integers(0, 2, n)
noise = rng.random(n)
logit = -7 + 3.5 * (cnt >= 3) + 3.5 * (age < 60) + 1.5 * web + 2.5 * (amount > 20000)
y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
ts = 1793577600000 + rng.integers(0, 7 * 86400000, n)
with open(out, "w") as f:
    f.write("id,ts,label,amount,acct_txn_1h,account_age_days,is_web,noise\n")
    for i in range(n):
        c = [str(amount[i]), str(cnt[i]), str(age[i]), "true" if web[i] else "false",
             "%.4f" % noise[i]]
        if rng.random() < 0.1:
            c[1] = ""
        if rng.random() < 0.1:
            c[2] = ""
        f.write("tx_%d,%d,%d,%s\n" % (i, ts[i], y[i], ",".join(c)))
EOF
"$PY" "$TMP/syn.py" "$TMP/syn.csv" 30000 5

# ---- train, info, metrics ---------------------------------------------------------
T_OPTS=(--trees 40 --depth 4 --riskctl "$RISKCTL")
rc=0
"$TRAIN" --features "$TMP/syn.csv" -o "$TMP/a.rmdl" --json-out "$TMP/a.json" "${T_OPTS[@]}" \
    >"$TMP/a.out" 2>"$TMP/a.err" || rc=$?
if [[ $rc -eq 0 && -s $TMP/a.rmdl && -s $TMP/a.json && ! -s $TMP/a.err ]]; then
    ok "trains and writes the .rmdl and the JSON"
else
    fail "train: exit $rc: $(cat "$TMP/a.err")"
fi
for want in "ROC-AUC" "PR-AUC" "0.1%" "1%" "threshold" "recall" "wrote $TMP/a.rmdl"; do
    grep -qF -- "$want" "$TMP/a.out" || fail "the report lacks '$want': $(cat "$TMP/a.out")"
done
if out=$("$RISKCTL" model info "$TMP/a.rmdl" 2>&1) \
    && [[ $out == *"trees:      40, max depth 4"* && $out == *"account_age_days"* ]]; then
    ok "riskctl model info reads the .rmdl: 40 trees, the CSV's feature names"
else
    fail "riskctl model info: $out"
fi
# A JSON report; the metrics are checked against a direct computation from
# the model's own predictions on the later 20% of the rows.
"$TRAIN" --features "$TMP/syn.csv" -o "$TMP/b.rmdl" --json "${T_OPTS[@]}" >"$TMP/b.report"
cat >"$TMP/check.py" <<'EOF'
import json, sys
import numpy as np
import xgboost as xgb
rep = json.load(open(sys.argv[1]))
model, csv = sys.argv[2], sys.argv[3]
bad = []
v = rep["validation"]
if not (v["roc_auc"] > 0.8):
    bad.append("ROC-AUC %s, want > 0.8 on a learnable signal" % v["roc_auc"])
if not (0 < v["pr_auc"] <= 1):
    bad.append("PR-AUC %s out of (0, 1]" % v["pr_auc"])
if [x["target_fpr"] for x in v["at_fpr"]] != [0.001, 0.01]:
    bad.append("at_fpr targets %s, want 0.001 and 0.01" % [x["target_fpr"] for x in v["at_fpr"]])
# Rows by ts, the later 20% validate (the split of train-model).
rows = [l.rstrip("\n").split(",") for l in open(csv).readlines()[1:]]
ts = np.array([int(r[1]) for r in rows])
order = np.argsort(ts, kind="mergesort")
va = order[len(rows) - round(len(rows) * 0.2):]
conv = lambda c: np.nan if c == "" else (1.0 if c == "true" else 0.0 if c == "false" else float(c))
X = np.array([[conv(c) for c in rows[i][3:]] for i in va], dtype=np.float32)
y = np.array([int(rows[i][2]) for i in va])
if rep["valid"]["rows"] != len(va) or rep["valid"]["fraud"] != int(y.sum()):
    bad.append("valid part: %s, want %d rows, %d fraud" % (rep["valid"], len(va), y.sum()))
if min(ts[va]) < max(ts[order[:len(order) - len(va)]]):
    bad.append("validation rows are not the later ones")
b = xgb.Booster(model_file=model)
names = rep["data"]["names"]
m = b.predict(xgb.DMatrix(X, feature_names=names, missing=np.nan), output_margin=True)
s = 1 / (1 + np.exp(-m.astype(np.float64)))
pos, neg = s[y == 1], s[y == 0]
auc = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) \
    / (len(pos) * len(neg))
if abs(auc - v["roc_auc"]) > 1e-9:
    bad.append("ROC-AUC %s, a direct count gives %s" % (v["roc_auc"], auc))
prev = None
for x in v["at_fpr"]:
    flag = s >= x["threshold"]
    tp, fp = int((flag & (y == 1)).sum()), int((flag & (y == 0)).sum())
    if (tp, fp) != (x["fraud_caught"], x["false_positives"]):
        bad.append("score >= %s flags %d fraud, %d legit; the report says %d, %d"
                   % (x["threshold"], tp, fp, x["fraud_caught"], x["false_positives"]))
    if fp > x["target_fpr"] * len(neg):
        bad.append("FPR %g over the target %g" % (fp / len(neg), x["target_fpr"]))
    lower = s[s < x["threshold"]]
    if len(lower) and ((s >= lower.max()) & (y == 0)).sum() <= x["target_fpr"] * len(neg):
        bad.append("threshold %s is not the lowest within FPR %g" % (x["threshold"], x["target_fpr"]))
    if prev is not None and x["recall"] < prev:
        bad.append("recall falls as the FPR grows")
    prev = x["recall"]
print("\n".join(bad) or "ROC-AUC %.4f, PR-AUC %.4f, recall %.3f at 0.1%%, %.3f at 1%%"
      % (v["roc_auc"], v["pr_auc"], v["at_fpr"][0]["recall"], v["at_fpr"][1]["recall"]))
sys.exit(1 if bad else 0)
EOF
"$TRAIN" --features "$TMP/syn.csv" -o "$TMP/c.rmdl" --json-out "$TMP/c.json" "${T_OPTS[@]}" >/dev/null
if out=$("$PY" "$TMP/check.py" "$TMP/b.report" "$TMP/c.json" "$TMP/syn.csv" 2>&1); then
    ok "metrics agree with a direct computation: $out"
else
    fail "$out"
fi

# ---- determinism, --meta ---------------------------------------------------------
if cmp -s "$TMP/a.rmdl" "$TMP/b.rmdl" && cmp -s "$TMP/a.rmdl" "$TMP/c.rmdl" \
    && cmp -s "$TMP/a.json" "$TMP/c.json"; then
    ok "same CSV and options, same bytes (.rmdl and JSON)"
else
    fail "two runs gave different bytes"
fi
"$TRAIN" --features "$TMP/syn.csv" -o "$TMP/m1.rmdl" --meta "${T_OPTS[@]}" >/dev/null
"$TRAIN" --features "$TMP/syn.csv" -o "$TMP/m2.rmdl" --meta "${T_OPTS[@]}" >/dev/null
if out=$("$RISKCTL" model info "$TMP/m1.rmdl" 2>&1) && cmp -s "$TMP/m1.rmdl" "$TMP/m2.rmdl" \
    && [[ $out == *"trained_by: tools/train-model"* && $out == *"valid_auc: ROC-AUC 0."* \
          && $out == *"train_options: trees=40 depth=4"* ]]; then
    ok "--meta: riskctl model info shows the training record; same bytes twice"
else
    fail "--meta: $out"
fi
"$TRAIN" --features "$TMP/syn.csv" -o "$TMP/s.rmdl" --seed 2 --valid-fraction 0.3 \
    "${T_OPTS[@]}" >/dev/null
if ! cmp -s "$TMP/a.rmdl" "$TMP/s.rmdl"; then ok "another split gives another model"
else fail "--valid-fraction 0.3 gave the same model"; fi

# ---- bad input (exit 1) and bad options (exit 2): one line, no output written ----
# bad STATUS EXPECTED_MESSAGE_PART ARGS...
bad() {
    local want_rc=$1 want=$2; shift 2
    local rc=0
    rm -f "$TMP/bad.rmdl"
    "$TRAIN" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
    local lines
    lines=$(wc -l <"$TMP/err")
    if [[ $rc -eq $want_rc && $lines -eq 1 && $(cat "$TMP/err") == "train-model: "*"$want"* \
          && ! -e $TMP/bad.rmdl ]]; then
        ok "exit $rc: $(cat "$TMP/err")"
    else
        fail "$*: want exit $want_rc and one line with '$want', got exit $rc: $(cat "$TMP/err")"
    fi
}
csv() { printf '%s\n' "$@" >"$TMP/bad.csv"; }
B=(--features "$TMP/bad.csv" -o "$TMP/bad.rmdl" --riskctl "$RISKCTL")
bad 2 "the following arguments are required" --features "$TMP/syn.csv"
bad 2 "--valid-fraction must be more than 0 and less than 1" "${B[@]}" --valid-fraction 1
bad 2 "--depth must be between 1 and 16" "${B[@]}" --depth 0
bad 2 "--fpr: 5 must be more than 0 and less than 1" "${B[@]}" --fpr 0.01,5
bad 2 "unrecognized arguments: --bogus" "${B[@]}" --bogus
bad 2 "--riskctl: $TMP/none is not an executable file" "${B[@]}" --riskctl "$TMP/none"
bad 1 "cannot read $TMP/nothere.csv: No such file or directory" \
    --features "$TMP/nothere.csv" -o "$TMP/bad.rmdl" --riskctl "$RISKCTL"
csv ""
bad 1 "line 1: the header must start with id,ts,label" "${B[@]}"
csv "ts,id,label,amount" "1,a,0,5"
bad 1 "line 1: the header must start with id,ts,label" "${B[@]}"
csv "id,ts,label"
bad 1 "line 1: no feature columns after id,ts,label" "${B[@]}"
csv "id,ts,label,amount,amount" "a,1,0,5,5"
bad 1 "line 1: feature 'amount' appears twice" "${B[@]}"
csv "id,ts,label,amount" "a,1,0,5" "b,2,1,x7" "c,3,0,1"
bad 1 "line 3, feature 'amount': 'x7' is not a number" "${B[@]}"
csv "id,ts,label,amount" "a,1,0,5" "b,2,1,inf"
bad 1 "line 3, feature 'amount': 'inf' is not a finite number" "${B[@]}"
csv "id,ts,label,amount" "a,1,0,5" "b,2,1"
bad 1 "line 3: 3 cells, the header has 4" "${B[@]}"
csv "id,ts,label,amount" "a,1,0,5" "b,2,yes,5"
bad 1 "line 3: label 'yes' is not 0 or 1 (or empty)" "${B[@]}"
csv "id,ts,label,amount" "a,1,0,5" "b,noon,1,5"
bad 1 "line 3: ts 'noon' is not an integer" "${B[@]}"
csv "id,ts,label,amount"
bad 1 "has no rows" "${B[@]}"
printf 'id,ts,label,amount\n' >"$TMP/bad.csv"
for i in $(seq 1 50); do printf 'r%d,%d,%d,%d\n' "$i" "$i" $((i > 45)) "$i" >>"$TMP/bad.csv"; done
bad 1 "the training part (the earliest 40 rows) has no fraud" "${B[@]}"
bad 1 "-o: directory $TMP/nodir does not exist" --features "$TMP/syn.csv" -o "$TMP/nodir/m.rmdl" \
    --riskctl "$RISKCTL"
# A failing import (here: a riskctl that refuses everything) leaves no model behind.
printf '#!/bin/sh\necho "m.json: broken" >&2\nexit 1\n' >"$TMP/badctl"
chmod +x "$TMP/badctl"
bad 1 "riskctl model import failed: m.json: broken" --features "$TMP/syn.csv" -o "$TMP/bad.rmdl" \
    --riskctl "$TMP/badctl" --trees 2
if compgen -G "$TMP/.bad.rmdl*" >/dev/null; then fail "a temporary .rmdl was left behind"; fi

# ---- docs/model.md: the analyst walkthrough -------------------------------------
# Every ```sh block of the "Analyst walkthrough" section runs, in order, with
# bash -euo pipefail, in a scratch directory holding the repository's tools/
# and copies of rules/ and models/, with BUILD_DIR's riskctl first on PATH and
# a riskd serving that copy of rules/default.yaml for the final reload.
RISKD=$BUILD_DIR/riskd
if "$RISKCTL" backtest --help >/dev/null 2>&1 && [[ -x $RISKD ]]; then
    W=$TMP/walk
    mkdir -p "$W"
    ln -s "$SRC/tools" "$W/tools"
    cp -r "$SRC/rules" "$SRC/models" "$W/"
    PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    export RISKD_ADMIN="ipc://$TMP/admin.sock"
    (cd "$W" && exec "$RISKD" --rules rules/default.yaml --data-dir var --workers 1 \
        --endpoint "tcp://127.0.0.1:$PORT" --admin-endpoint "$RISKD_ADMIN" 2>"$TMP/riskd.log") &
    RISKD_PID=$!
    trap 'kill "$RISKD_PID" 2>/dev/null || true; wait "$RISKD_PID" 2>/dev/null || true; rm -rf "$TMP"' EXIT
    up=
    for _ in $(seq 100); do   # each ping waits up to 200 ms: ~20 s at most
        if "$RISKCTL" ping --endpoint "tcp://127.0.0.1:$PORT" --timeout 200 >/dev/null 2>&1; then
            up=1
            break
        fi
        kill -0 "$RISKD_PID" 2>/dev/null || break
    done
    cat >"$TMP/walk.py" <<'EOF'
import re, subprocess, sys
doc, cwd = sys.argv[1], sys.argv[2]
text = open(doc, encoding="utf-8").read()
m = re.search(r"^## Analyst walkthrough\n(.*?)^## ", text, re.S | re.M)
blocks = re.findall(r"```sh\n(.*?)```", m.group(1) if m else "", re.S)
if len(blocks) < 6:
    print("docs/model.md: the walkthrough has %d sh blocks, want 6 (generate, emit, "
          "train, import, backtest, reload)" % len(blocks))
    sys.exit(1)
for i, b in enumerate(blocks):
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", b], cwd=cwd, capture_output=True,
                       text=True)
    if p.returncode != 0:
        print("docs/model.md walkthrough block %d failed (exit %d):\n%s\nstdout: %s\nstderr: %s"
              % (i + 1, p.returncode, b, p.stdout[-2000:], p.stderr[-2000:]))
        sys.exit(1)
print("%d blocks ran" % len(blocks))
EOF
    if [[ -z $up ]]; then
        fail "walkthrough: riskd did not come up: $(cat "$TMP/riskd.log")"
    elif out=$(PATH="$BUILD_DIR:$PATH" "$PY" "$TMP/walk.py" docs/model.md "$W" 2>&1); then
        ok "docs/model.md analyst walkthrough: $out"
        for f in train.rlog train.csv candidate.json candidate.rmdl fresh.rlog compare.txt; do
            [[ -s $W/work/$f ]] || fail "walkthrough: work/$f was not written"
        done
        if cmp -s "$W/work/candidate.rmdl" "$W/models/default.rmdl" \
            && grep -q "reload ok" "$TMP/riskd.log"; then
            ok "walkthrough: the candidate was shipped and riskd reloaded it"
        else
            fail "walkthrough: models/default.rmdl is not the candidate, or riskd logged no reload: $(tail -3 "$TMP/riskd.log")"
        fi
    else
        fail "$out"
    fi
    kill "$RISKD_PID" 2>/dev/null || true
    wait "$RISKD_PID" 2>/dev/null || true
else
    echo "SKIP: docs/model.md walkthrough ($RISKCTL has no backtest, or $RISKD is not built)"
fi

if [[ $failures -ne 0 ]]; then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "all passed"
