#!/usr/bin/env bash
# riskctl from the outside: exact output and exit status of check, test, the
# usage errors and --help of every command, and the client side of score,
# ping, reload and stats (timeouts, invalid JSON). When riskd is built, a last
# section starts it on a free port with a private admin socket and data
# directory and talks to it as an operator would.
#
# Usage: bash tests/test_cli.sh BUILD_DIR   (from the source directory; ctest does this)
set -euo pipefail

BUILD_DIR=${1:?usage: bash tests/test_cli.sh BUILD_DIR}
RISKCTL=$BUILD_DIR/riskctl
RISKD=$BUILD_DIR/riskd
F=tests/cli

. tests/support/lib.sh

# The client tests must not find a developer's riskd through the environment.
unset RISKD_ENDPOINT RISKD_ADMIN

# ---------------------------------------------------------------- usage, --help

t "top-level --help"
run "$RISKCTL" --help
rc_is 0
for cmd in check test score ping reload stats; do
    [[ $OUT == *"  $cmd "* ]] || fail "--help does not list '$cmd'"
done

t "no command"
run "$RISKCTL"
rc_is 2
err_matches '^Usage: riskctl COMMAND'

for cmd in check test score ping reload stats; do
    t "$cmd --help"
    run "$RISKCTL" "$cmd" --help
    rc_is 0
    out_matches "^Usage: riskctl $cmd "
    err_is ""
    t "help $cmd"
    run "$RISKCTL" help "$cmd"
    rc_is 0
    out_matches "^Usage: riskctl $cmd "
done

t "unknown command with a suggestion"
run "$RISKCTL" chek tests/cli/good.yaml
rc_is 2
out_is ""
err_is "riskctl: unknown command 'chek' (did you mean 'check'?)
Try 'riskctl --help'."

t "unknown command without a suggestion"
run "$RISKCTL" frobnicate
rc_is 2
err_is "riskctl: unknown command 'frobnicate'
Try 'riskctl --help'."

t "unknown option"
run "$RISKCTL" score --endpont tcp://127.0.0.1:1 '{}'
rc_is 2
err_is "riskctl: unknown option '--endpont' for 'score' (did you mean '--endpoint'?)
Try 'riskctl score --help'."

t "option missing its value"
run "$RISKCTL" score '{}' --timeout
rc_is 2
err_is "riskctl: option '--timeout' needs a value (MS)
Try 'riskctl score --help'."

t "bad timeout"
run "$RISKCTL" ping --timeout soon
rc_is 2
err_is "riskctl: option '--timeout' takes milliseconds (a positive integer), not 'soon'
Try 'riskctl ping --help'."

t "check without files"
run "$RISKCTL" check
rc_is 2
err_is "riskctl: check needs at least one rule file
Try 'riskctl check --help'."

t "test without files"
run "$RISKCTL" test
rc_is 2
err_is "riskctl: test needs at least one case file
Try 'riskctl test --help'."

t "score without a request"
run "$RISKCTL" score
rc_is 2
err_is "riskctl: score needs a request as JSON (or - to read it from stdin)
Try 'riskctl score --help'."

t "stats with a stray argument"
run "$RISKCTL" stats now
rc_is 2
err_is "riskctl: unexpected argument 'now'
Try 'riskctl stats --help'."

# ---------------------------------------------------------------- check

t "check a good rule file"
run "$RISKCTL" check $F/good.yaml
rc_is 0
out_is "ok: $F/good.yaml (cli_fixture@1.0, 6 rules)"
err_is ""

t "check an unknown field"
run "$RISKCTL" check $F/bad_field.yaml
rc_is 1
out_is ""
err_is "$F/bad_field.yaml:5:11: unknown field 'amout' (did you mean 'amount'?)"

t "check a YAML syntax error"
run "$RISKCTL" check $F/bad_yaml.yaml
rc_is 1
err_matches "^$F/bad_yaml.yaml:6:[0-9]+: "

t "check a rule file with counters and dynamic lists"
run "$RISKCTL" check $F/velocity.yaml
rc_is 0
out_is "ok: $F/velocity.yaml (cli_velocity@1.0, 5 rules)"
err_is ""

t "check a missing file"
run "$RISKCTL" check $F/no_such_rules.yaml
rc_is 1
err_is "$F/no_such_rules.yaml: cannot read rule file: No such file or directory"

t "check several files: each reported, any failure fails"
run "$RISKCTL" check $F/good.yaml $F/bad_field.yaml $F/good.yaml
rc_is 1
out_is "ok: $F/good.yaml (cli_fixture@1.0, 6 rules)
ok: $F/good.yaml (cli_fixture@1.0, 6 rules)"
err_is "$F/bad_field.yaml:5:11: unknown field 'amout' (did you mean 'amount'?)"

# ---------------------------------------------------------------- test

t "test a passing case file"
run "$RISKCTL" test $F/pass.test.yaml
rc_is 0
out_is "6 passed, 0 failed"
err_is ""

t "test counters and dynamic lists given by the cases"
run "$RISKCTL" test $F/velocity.test.yaml
rc_is 0
out_is "8 passed, 0 failed"
err_is ""

t "test a rule set with a model: scores from the cases' features"
run "$RISKCTL" test $F/model.test.yaml
rc_is 0
out_is "4 passed, 0 failed"
err_is ""

t "test a failing case scored by the model"
run "$RISKCTL" test $F/model_fail.test.yaml
rc_is 1
out_is "$F/model_fail.test.yaml:4: case 'expects the wrong decision': decision: expected allow, got review (model_score 0.700567, computed from the case's features)
0 passed, 1 failed"
err_is ""

t "test a failing case file"
run "$RISKCTL" test $F/fail.test.yaml
rc_is 1
out_is "$F/fail.test.yaml:4: case 'expects too little': decision: expected allow, got review; reasons: expected [large_amount], got [large_amount, new_account]
$F/fail.test.yaml:14: case 'wrong score and shadow': shadow: expected [], got [foreign_card]; score: expected 45.5, got 40
1 passed, 2 failed"
err_is ""

t "test several files: one total"
run "$RISKCTL" test $F/pass.test.yaml $F/fail.test.yaml
rc_is 1
[[ $OUT == *$'\n'"7 passed, 2 failed" ]] || fail "expected the total '7 passed, 2 failed' last"

# broken_case FILE STDERR: a broken case file is reported, positioned, exit 2.
broken_case() {
    t "broken case file $1"
    run "$RISKCTL" test "$F/$1"
    rc_is 2
    err_is "$2"
    out_is "0 passed, 0 failed"
}
broken_case broken_key.test.yaml \
    "$F/broken_key.test.yaml:8:5: case 'typo': unknown key 'expct' (did you mean 'expect'?)"
broken_case broken_nodecision.test.yaml \
    "$F/broken_nodecision.test.yaml:6:7: case 'no decision': expect needs a 'decision' (allow, review or block)"
broken_case broken_verdict.test.yaml \
    "$F/broken_verdict.test.yaml:5:24: case 'misspelt decision': unknown decision 'revew' (did you mean 'review'?)"
broken_case broken_decode.test.yaml \
    "$F/broken_decode.test.yaml:6:7: case 'amount as text': field 'amount': expected a non-negative integer, got str"
broken_case broken_required.test.yaml \
    "$F/broken_required.test.yaml:4:10: case 'no account': field 'account' is required"
broken_case broken_counter.test.yaml \
    "$F/broken_counter.test.yaml:5:16: case 'counter the rule set does not have': unknown counter 'acct_txn_1h'"
broken_case broken_counter_typo.test.yaml \
    "$F/broken_counter_typo.test.yaml:5:16: case 'misspelt counter': unknown counter 'acct_txn_h1' (did you mean 'acct_txn_1h'?)"
broken_case broken_list.test.yaml \
    "$F/broken_list.test.yaml:5:13: case 'misspelt list': unknown dynamic list 'blocked_card' (did you mean 'blocked_cards'?)"
broken_case broken_static_list.test.yaml \
    "$F/broken_static_list.test.yaml:5:13: case 'a static list cannot be filled': list 'high_risk_countries' is not dynamic (its members are in the rule file)"
broken_case broken_list_members.test.yaml \
    "$F/broken_list_members.test.yaml:5:28: case 'members not in a sequence': list 'blocked_cards' must be a sequence of members, e.g. [tok_1, tok_2]"
broken_case broken_model.test.yaml \
    "$F/broken_model.test.yaml:5:5: case 'model score without a model': rule set has no model"
broken_case broken_rules.test.yaml \
    "$F/bad_field.yaml:5:11: unknown field 'amout' (did you mean 'amount'?)"

t "broken case file: YAML syntax"
run "$RISKCTL" test $F/broken_yaml.test.yaml
rc_is 2
err_matches "^$F/broken_yaml.test.yaml:[0-9]+:[0-9]+: invalid YAML: "

t "missing case file"
run "$RISKCTL" test $F/no_such.test.yaml
rc_is 2
err_is "$F/no_such.test.yaml: cannot read: No such file or directory"

t "a broken file does not stop the others"
run "$RISKCTL" test $F/broken_key.test.yaml $F/pass.test.yaml
rc_is 2
out_is "6 passed, 0 failed"

# ---------------------------------------------------------------- client side of the remote commands

PORT=$(free_port)
TXN='{"id": "t1", "account": "a1", "amount": 250000, "account_age_days": 3}'

t "score: nothing listening"
run "$RISKCTL" score --endpoint "tcp://127.0.0.1:$PORT" --timeout 300 "$TXN"
rc_is 1
out_is ""
err_is "riskctl: no reply from tcp://127.0.0.1:$PORT within 300 ms (is riskd running?)"

t "score: endpoint from RISKD_ENDPOINT"
run env RISKD_ENDPOINT="tcp://127.0.0.1:$PORT" "$RISKCTL" score --timeout 300 "$TXN"
rc_is 1
err_is "riskctl: no reply from tcp://127.0.0.1:$PORT within 300 ms (is riskd running?)"

t "ping: nothing listening"
run "$RISKCTL" ping --endpoint "tcp://127.0.0.1:$PORT" --timeout 300
rc_is 1
err_is "riskctl: no reply from tcp://127.0.0.1:$PORT within 300 ms (is riskd running?)"

t "reload: nothing listening"
run "$RISKCTL" reload --admin "ipc://$TMP/nobody.sock" --timeout 300
rc_is 1
err_is "riskctl: no reply from ipc://$TMP/nobody.sock within 300 ms (is riskd running?)"

t "stats: admin endpoint from RISKD_ADMIN"
run env RISKD_ADMIN="ipc://$TMP/nobody.sock" "$RISKCTL" stats --timeout 300
rc_is 1
err_is "riskctl: no reply from ipc://$TMP/nobody.sock within 300 ms (is riskd running?)"

t "score: invalid JSON"
run "$RISKCTL" score --endpoint "tcp://127.0.0.1:$PORT" --timeout 300 '{"id": }'
rc_is 2
out_is ""
err_matches "^riskctl: invalid JSON: line 1, column 8: "
[[ $ERR != *$'\n'* ]] || fail "more than one line on stderr"

t "score: invalid JSON on stdin"
run "$RISKCTL" score --timeout 300 - <<<'{"id": "t1",
  "amount": 12x}'
rc_is 2
err_matches "^riskctl: invalid JSON: line 2, column [0-9]+: "

t "score: malformed endpoint"
run "$RISKCTL" score --endpoint "nonsense" --timeout 300 "$TXN"
rc_is 2
err_matches "^riskctl: cannot connect to 'nonsense': "

# ---------------------------------------------------------------- against a live riskd

if [[ ! -x $RISKD ]] || ! "$RISKD" --help >/dev/null 2>&1; then
    echo "SKIP: live riskd section ($RISKD is not built yet)"
else
    PORT=$(free_port)
    EP="tcp://127.0.0.1:$PORT"
    ADMIN="ipc://$TMP/admin.sock"
    cp $F/good.yaml "$TMP/rules.yaml" # a copy, so that a reload can find it broken
    # pinned to the first CPU this test may use: every riskd thread must stay there
    CPU=$(awk '/^Cpus_allowed_list/ {split($2, a, /[-,]/); print a[1]}' /proc/self/status)
    "$RISKD" --rules "$TMP/rules.yaml" --data-dir "$TMP/data" --endpoint "$EP" \
        --admin-endpoint "$ADMIN" --workers 1 --cpus "$CPU" 2>"$TMP/riskd.log" &
    RISKD_PID=$!
    # Wait for riskd to answer (each ping waits up to 200 ms), at most ~20 s.
    up=
    for _ in $(seq 100); do
        if "$RISKCTL" ping --endpoint "$EP" --timeout 200 >/dev/null 2>&1; then
            up=1
            break
        fi
        kill -0 "$RISKD_PID" 2>/dev/null || break
    done
    t "live: riskd comes up"
    if [[ -z $up ]]; then
        OUT=""
        ERR=$(cat "$TMP/riskd.log")
        fail "riskd did not answer a ping"
    else
        t "live: --cpus confines every thread"
        for st in /proc/"$RISKD_PID"/task/*/status; do
            got=$(awk '/^Cpus_allowed_list/ {print $2}' "$st")
            [[ $got == "$CPU" ]] || fail "$st: Cpus_allowed_list $got, not $CPU"
        done
        n=$(ls /proc/"$RISKD_PID"/task | wc -l)
        (( n >= 4 )) || fail "only $n threads: the store's and ZeroMQ's were not started yet"

        t "live: ping"
        run "$RISKCTL" ping --endpoint "$EP"
        rc_is 0
        out_matches "^ok: $EP answered in [0-9]+ us$"

        t "live: score"
        run "$RISKCTL" score --endpoint "$EP" "$TXN"
        rc_is 0
        out_matches '"decision": ?"review"'
        out_matches '"reasons": ?\["large_amount", ?"new_account"\]'
        out_matches '"ruleset": ?"cli_fixture@1.0"'
        [[ $OUT != *$'\n'* ]] || fail "the reply is not on one line"

        t "live: score --pretty from stdin"
        run "$RISKCTL" score --endpoint "$EP" --pretty - <<<"$TXN"
        rc_is 0
        out_matches $'^\\{\n  "'

        t "live: an error reply is printed and fails"
        run env RISKD_ENDPOINT="$EP" "$RISKCTL" score '{"id": "t2", "account": "a1", "amount": "lots"}'
        rc_is 1
        out_matches '"code": ?"bad_request"'
        out_matches "amount"

        t "live: stats"
        run "$RISKCTL" stats --admin "$ADMIN"
        rc_is 0
        out_matches $'^\\{\n'
        t "live: stats --json"
        run "$RISKCTL" stats --admin "$ADMIN" --json
        rc_is 0
        out_matches '^\{.*\}$'

        t "live: reload"
        run "$RISKCTL" reload --admin "$ADMIN"
        rc_is 0
        out_is "reloaded: cli_fixture@1.0"

        t "live: a failed reload says why and fails"
        cp $F/bad_field.yaml "$TMP/rules.yaml"
        run "$RISKCTL" reload --admin "$ADMIN"
        rc_is 1
        out_is ""
        err_is "riskctl: reload failed: $TMP/rules.yaml:5:11: unknown field 'amout' (did you mean 'amount'?)"

        t "live: the old rule set keeps serving"
        run "$RISKCTL" score --endpoint "$EP" "$TXN"
        rc_is 0
        out_matches '"ruleset": ?"cli_fixture@1.0"'
    fi
    kill "$RISKD_PID" 2>/dev/null || true
    wait "$RISKD_PID" 2>/dev/null || true
    RISKD_PID=
fi

# ---------------------------------------------------------------- list, feedback, backup: usage

t "top-level --help lists the state commands"
run "$RISKCTL" --help
rc_is 0
for cmd in list feedback backup; do
    [[ $OUT == *"  $cmd "* ]] || fail "--help does not list '$cmd'"
done

for cmd in list feedback backup; do
    t "$cmd --help"
    run "$RISKCTL" "$cmd" --help
    rc_is 0
    out_matches "^Usage: riskctl $cmd "
    err_is ""
done

t "list: no action"
run "$RISKCTL" list
rc_is 2
err_is $'riskctl: list needs an action: add, rm or get\nTry \'riskctl list --help\'.'

t "list: misspelt action"
run "$RISKCTL" list ad blocked_cards tok
rc_is 2
err_is $'riskctl: unknown list action \'ad\' (did you mean \'add\'?)\nTry \'riskctl list --help\'.'

t "list: missing value"
run "$RISKCTL" list add blocked_cards
rc_is 2
err_is $'riskctl: list add needs LIST and VALUE, got 1 argument\nTry \'riskctl list --help\'.'

t "list: bad --ttl"
run "$RISKCTL" list add blocked_cards tok --ttl 30days
rc_is 2
err_is $'riskctl: option \'--ttl\' takes a duration such as 30d (units ms, s, m, h, d), not \'30days\'\nTry \'riskctl list --help\'.'

t "list: --ttl with rm"
run "$RISKCTL" list rm blocked_cards tok --ttl 1d
rc_is 2
err_is $'riskctl: option \'--ttl\' applies to \'list add\' only\nTry \'riskctl list --help\'.'

t "feedback: bad label"
run "$RISKCTL" feedback t1 chargeback
rc_is 2
err_is $'riskctl: the label must be fraud or legit, not \'chargeback\'\nTry \'riskctl feedback --help\'.'

t "feedback: missing label"
run "$RISKCTL" feedback t1
rc_is 2
err_matches "^riskctl: feedback needs a transaction ID and a label"

t "backup: no directory"
run "$RISKCTL" backup
rc_is 2
err_matches "^riskctl: backup needs one directory, got 0 arguments"

t "list: nothing listening"
run "$RISKCTL" list get blocked_cards tok --admin "ipc://$TMP/nobody.sock" --timeout 300
rc_is 1
out_is ""
err_is "riskctl: no reply from ipc://$TMP/nobody.sock within 300 ms (is riskd running?)"

# ---------------------------------------------------------------- list, feedback, backup: live

if [[ -x $RISKD ]] && "$RISKD" --help >/dev/null 2>&1; then
    PORT=$(free_port)
    EP="tcp://127.0.0.1:$PORT"
    ADMIN="ipc://$TMP/state-admin.sock"
    cat >"$TMP/state.yaml" <<'EOF_RULES'
ruleset: cli_state
version: "1"
lists:
  blocked_cards: {dynamic: true, add_on_fraud: card, ttl: 30d}
counters:
  card_fraud_90d: {by: card, window: 90d, feedback: fraud}
rules:
  - id: blocked_card
    when: card in @blocked_cards
    action: block
EOF_RULES
    "$RISKD" --rules "$TMP/state.yaml" --data-dir "$TMP/state-data" --endpoint "$EP" \
        --admin-endpoint "$ADMIN" --workers 1 2>"$TMP/state-riskd.log" &
    RISKD_PID=$!
    up=
    for _ in $(seq 100); do
        if "$RISKCTL" ping --endpoint "$EP" --timeout 200 >/dev/null 2>&1; then
            up=1
            break
        fi
        kill -0 "$RISKD_PID" 2>/dev/null || break
    done
    t "live state: riskd comes up"
    if [[ -z $up ]]; then
        OUT=""
        ERR=$(cat "$TMP/state-riskd.log")
        fail "riskd did not answer a ping"
    else
        export RISKD_ADMIN="$ADMIN"
        t "live state: list add"
        run "$RISKCTL" list add blocked_cards tok_4242 --ttl 30d
        rc_is 0
        out_matches "^added 'tok_4242' to blocked_cards \(expires 20[0-9-]+T[0-9:]+Z\)$"

        t "live state: list get, present"
        run "$RISKCTL" list get blocked_cards tok_4242
        rc_is 0
        out_matches "^'tok_4242' is on blocked_cards \(added 20.*Z, expires 20.*Z\)$"

        t "live state: the list applies to the next request"
        run "$RISKCTL" score --endpoint "$EP" '{"id": "s1", "account": "a1", "amount": 5, "card": "tok_4242"}'
        rc_is 0
        out_matches '"decision": ?"block"'

        t "live state: list rm, then get says absent"
        run "$RISKCTL" list rm blocked_cards tok_4242
        rc_is 0
        out_is "removed 'tok_4242' from blocked_cards"
        run "$RISKCTL" list get blocked_cards tok_4242
        rc_is 1
        out_is "'tok_4242' is not on blocked_cards"
        err_is ""

        t "live state: list rm of an absent value fails"
        run "$RISKCTL" list rm blocked_cards tok_4242
        rc_is 1
        out_is ""
        err_is "riskctl: 'tok_4242' was not on blocked_cards"

        t "live state: list add without --ttl never expires"
        run "$RISKCTL" list add blocked_cards tok_5555
        rc_is 0
        out_is "added 'tok_5555' to blocked_cards (never expires)"

        t "live state: unknown list"
        run "$RISKCTL" list add blocked_card tok_1
        rc_is 1
        err_is "riskctl: list add: field 'list': unknown dynamic list 'blocked_card' (did you mean 'blocked_cards'?)"

        t "live state: feedback"
        run "$RISKCTL" score --endpoint "$EP" '{"id": "s2", "account": "a1", "amount": 5, "card": "tok_7777"}'
        out_matches '"decision": ?"allow"'
        run "$RISKCTL" feedback s2 fraud
        rc_is 0
        out_is "recorded fraud for s2: 1 counter update, 1 list entry added"
        run "$RISKCTL" list get blocked_cards tok_7777
        rc_is 0

        t "live state: feedback for an unknown id"
        run "$RISKCTL" feedback nope legit
        rc_is 1
        out_is ""
        err_is "riskctl: feedback failed: unknown transaction id 'nope'"

        t "live state: backup into a relative directory"
        RISKCTL_ABS=$(realpath "$RISKCTL")
        pushd "$TMP" >/dev/null
        run "$RISKCTL_ABS" backup bk1
        popd >/dev/null
        rc_is 0
        out_is "backup written to $TMP/bk1 (restore: riskd --data-dir $TMP/bk1)"
        [[ -f $TMP/bk1/data.mdb && -f $TMP/bk1/secret ]] || fail "no data.mdb and secret in the backup"

        t "live state: backup refuses a directory that holds a store"
        run "$RISKCTL" backup "$TMP/bk1"
        rc_is 1
        err_is "riskctl: backup failed: field 'dir': '$TMP/bk1' already holds a store or a secret"

        t "live state: stats show the store"
        run "$RISKCTL" stats --json
        rc_is 0
        out_matches '"store": ?\{"durability": ?"periodic"'
        out_matches '"entries_lists": ?2'
        unset RISKD_ADMIN
    fi
    kill "$RISKD_PID" 2>/dev/null || true
    wait "$RISKD_PID" 2>/dev/null || true
    RISKD_PID=
fi

finish test_cli
