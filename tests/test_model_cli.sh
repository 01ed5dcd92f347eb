#!/usr/bin/env bash
# `riskctl model` from the outside: import of the fixtures (XGBoost JSON and
# logistic regression), the exact `info` output, import and load errors as
# one line with the file name, usage errors with exit status 2, --help. When
# python3-xgboost is installed, a model trained here goes through import and
# info too (prediction parity is test_model_parity.c's job).
#
# Usage: bash tests/test_model_cli.sh BUILD_DIR   (from the source directory; ctest does this)
set -euo pipefail

BUILD_DIR=${1:?usage: bash tests/test_model_cli.sh BUILD_DIR}
RISKCTL=$BUILD_DIR/riskctl
F=tests/model

. tests/support/lib.sh

# ---------------------------------------------------------------- import, info

t "import an XGBoost model"
run "$RISKCTL" model import $F/tiny_xgb.json -o "$TMP/t.rmdl"
rc_is 0
out_is "ok: $F/tiny_xgb.json (xgboost 1.7.4, binary:logistic): 3 trees, max depth 2, 2 features -> $TMP/t.rmdl (491 bytes)"
err_is ""

t "info on a tree model"
run "$RISKCTL" model info "$TMP/t.rmdl"
rc_is 0
out_is "model:      $TMP/t.rmdl (491 bytes)
objective:  binary:logistic (gradient-boosted trees)
base:       margin 0 (probability 0.5)
trees:      3, max depth 2, 9 nodes (6 leaves)
features:   2
     #  name    splits
     0  amount  1
     1  count   2
meta:
  source: xgboost 1.7.4"

t "import a logistic regression (--output=)"
run "$RISKCTL" model import $F/linear.json --output="$TMP/l.rmdl"
rc_is 0
out_is "ok: $F/linear.json (riskd json, logistic_regression): 3 features -> $TMP/l.rmdl (182 bytes)"

t "info on a logistic regression"
run "$RISKCTL" model info "$TMP/l.rmdl"
rc_is 0
out_is "model:      $TMP/l.rmdl (182 bytes)
objective:  logistic_regression (logistic regression)
base:       margin 0 (probability 0.5)
bias:       -3
features:   3
     #  name           weight
     0  amount         0.00200000009
     1  acct_txn_1h    0.5
     2  is_new_device  1.25
meta:
  source: riskd json"

# ---------------------------------------------------------------- failures

t "import of a broken model names the file and the place"
sed 's/"split_type": \[0, 0, 0, 0, 0\],/"split_type": [0, 1, 0, 0, 0],/' $F/tiny_xgb.json >"$TMP/cat.json"
run "$RISKCTL" model import "$TMP/cat.json" -o "$TMP/cat.rmdl"
rc_is 1
out_is ""
err_is "$TMP/cat.json: learner.gradient_booster.model.trees[0] node 1: a categorical split (on feature 'count'); only numeric splits are supported"
[[ ! -e $TMP/cat.rmdl ]] || fail "a broken import left $TMP/cat.rmdl behind"

t "import of invalid JSON"
printf '{"learner": [1,}\n' >"$TMP/bad.json"
run "$RISKCTL" model import "$TMP/bad.json" -o "$TMP/bad.rmdl"
rc_is 1
err_is "$TMP/bad.json: line 1, column 16: expected a value, got '}'"

t "import into a directory that does not exist"
run "$RISKCTL" model import $F/linear.json -o "$TMP/no/such/dir/l.rmdl"
rc_is 1
err_is "$TMP/no/such/dir/l.rmdl: cannot create a temporary file next to it: No such file or directory"

t "info on a corrupt file"
cp "$TMP/t.rmdl" "$TMP/c.rmdl"
printf '\x00' | dd of="$TMP/c.rmdl" bs=1 seek=200 conv=notrunc status=none
run "$RISKCTL" model info "$TMP/c.rmdl"
rc_is 1
out_is ""
[[ $ERR == "$TMP/c.rmdl: checksum mismatch (stored "*"): the file is corrupt" ]] || fail "corrupt file message"

t "info on a truncated file"
head -c 300 "$TMP/t.rmdl" >"$TMP/short.rmdl"
run "$RISKCTL" model info "$TMP/short.rmdl"
rc_is 1
err_is "$TMP/short.rmdl: truncated or corrupt: the file does not end with its crc32c checksum"

t "info on a JSON model"
run "$RISKCTL" model info $F/linear.json
rc_is 1
err_is "$F/linear.json: not an rmdl model file (it does not start with format \"rmdl\")"

t "info on a missing file"
run "$RISKCTL" model info "$TMP/nope.rmdl"
rc_is 1
err_is "$TMP/nope.rmdl: cannot open: No such file or directory"

# ---------------------------------------------------------------- usage

t "model without a subcommand"
run "$RISKCTL" model
rc_is 2
err_is "riskctl: model needs a subcommand: import or info
Try 'riskctl model --help'."

t "unknown subcommand"
run "$RISKCTL" model inf x.rmdl
rc_is 2
err_is "riskctl: unknown model subcommand 'inf' (did you mean 'info'?)
Try 'riskctl model --help'."

t "import without -o"
run "$RISKCTL" model import $F/linear.json
rc_is 2
err_is "riskctl: model import needs -o OUT.rmdl
Try 'riskctl model import --help'."

t "import with a typo in an option"
run "$RISKCTL" model import $F/linear.json --outptu x.rmdl
rc_is 2
err_is "riskctl: unknown option '--outptu' for 'model import' (did you mean '--output'?)
Try 'riskctl model import --help'."

t "info with two files"
run "$RISKCTL" model info a.rmdl b.rmdl
rc_is 2
err_is "riskctl: model info needs one .rmdl file
Try 'riskctl model info --help'."

for sub in "" import info; do
    t "model $sub --help"
    run "$RISKCTL" model $sub --help
    rc_is 0
    out_matches "^Usage: riskctl model ${sub:+$sub }"
    err_is ""
done

t "top-level --help lists model"
run "$RISKCTL" --help
[[ $OUT == *"  model "* ]] || fail "--help does not list 'model'"

# ---------------------------------------------------------------- a trained model

if /usr/bin/python3 -c 'import xgboost' 2>/dev/null; then
    t "import and info on a model trained here"
    /usr/bin/python3 $F/train_xgb.py "$TMP" --trees 12 --depth 3 >/dev/null
    run "$RISKCTL" model import "$TMP/m.json" -o "$TMP/m.rmdl"
    rc_is 0
    out_matches "^ok: $TMP/m.json \(xgboost 1\.7\.[0-9]+, binary:logistic\): 12 trees, max depth 3, 8 features -> "
    run "$RISKCTL" model info "$TMP/m.rmdl"
    rc_is 0
    out_matches "trees:      12, max depth 3, "
    out_matches "     0  amount  "
else
    echo "python3-xgboost not installed: skipping the trained-model check"
fi

finish test_model_cli
