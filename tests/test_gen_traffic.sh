#!/usr/bin/env bash
# tools/gen-traffic from the outside: the same seed gives the same bytes (also
# under different Python hash seeds) and another seed other bytes; on 200,000
# transactions the realised fraud rate and scenario mix match the settings and
# every record is a well-typed score request (docs/traffic.md, DESIGN.md
# sections 2 and 6) with unique ids and non-decreasing ts; each scenario has
# the shape docs/traffic.md describes; bad options exit 2 with one line and
# leave no file behind; --help exits 0. Takes about 15 s.
#
# Usage: bash tests/test_gen_traffic.sh BUILD_DIR   (from the source directory; ctest does this)
set -euo pipefail

: "${1:?usage: bash tests/test_gen_traffic.sh BUILD_DIR}"   # not needed: nothing here is built
PY=/usr/bin/python3
GEN=tools/gen-traffic

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

[[ -x $GEN ]] || { echo "FAIL: $GEN is missing or not executable" >&2; exit 1; }

# ---- --help ---------------------------------------------------------------
if out=$("$GEN" --help 2>&1) && [[ $out == usage:* ]]; then
    ok "--help exits 0 with a usage"
else
    fail "--help: want exit 0 and a usage, got: $out"
fi

# ---- determinism ------------------------------------------------------------
PYTHONHASHSEED=1 "$GEN" --seed 7 --transactions 20000 --fraud-rate 0.02 -o "$TMP/a.rlog"
PYTHONHASHSEED=2 "$GEN" --seed 7 --transactions 20000 --fraud-rate 0.02 -o "$TMP/b.rlog"
"$GEN" --seed 8 --transactions 20000 --fraud-rate 0.02 -o "$TMP/c.rlog"
sa=$(sha256sum <"$TMP/a.rlog")
sb=$(sha256sum <"$TMP/b.rlog")
sc=$(sha256sum <"$TMP/c.rlog")
if [[ $sa == "$sb" ]]; then ok "same seed, same bytes (sha256)"
else fail "seed 7 twice gave different bytes"; fi
if [[ $sa != "$sc" ]]; then ok "other seed, other bytes"
else fail "seeds 7 and 8 gave the same bytes"; fi
"$GEN" --seed 7 --transactions 20000 --fraud-rate 0.02 -o - >"$TMP/d.rlog"
if cmp -s "$TMP/a.rlog" "$TMP/d.rlog"; then ok "-o - writes the same bytes to stdout"
else fail "-o - differs from -o FILE"; fi

# ---- 200k: rate, mix, record shape, scenario shapes -------------------------
N=200000
"$GEN" --seed 11 --transactions $N --fraud-rate 0.01 -o "$TMP/big.rlog" --stats 2>"$TMP/stats"
if grep -q "fraud: 2000 = 1.0000%" "$TMP/stats"; then ok "--stats reports the realised rate"
else fail "--stats: $(cat "$TMP/stats")"; fi
leftover() { compgen -G "$TMP/*.tmp*" >/dev/null; }   # a half-written log left behind?
if leftover; then fail "a temporary file was left behind"; fi

# check.py LOG N RATE MIX: prints one line per problem, exits 1 if any.
cat >"$TMP/check.py" <<'EOF'
import collections, sys
import msgpack

path, n_want, rate, mix = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
mix = {k: float(v) for k, v in (p.split("=") for p in mix.split(","))}
total = sum(mix.values())
mix = {k: v / total for k, v in mix.items()}
STR = ("currency", "type", "channel", "method", "card", "device", "ip", "email",
       "merchant", "country", "ip_country", "card_country", "email_domain",
       "shipping_country", "scenario")
TIERS = (50000, 100000, 200000, 250000, 300000, 500000, 1000000)
bad = []
def problem(msg):
    if len(bad) < 20:
        bad.append(msg)

ids = set()
last_ts = None
n = fraud = 0
scen = collections.Counter()
by = collections.defaultdict(list)          # scenario -> records (fraud only)
legit_dev = collections.defaultdict(set)    # account -> devices in legitimate records
with open(path, "rb") as f:
    for r in msgpack.Unpacker(f, raw=False, strict_map_key=True):
        n += 1
        if not isinstance(r, dict):
            problem("record %d is not a map" % n); continue
        rid = r.get("id")
        if not (isinstance(rid, str) and 0 < len(rid.encode()) <= 128):
            problem("record %d: id %r is not a str of 1-128 bytes" % (n, rid))
        elif rid in ids:
            problem("record %d: id %s repeats" % (n, rid))
        ids.add(rid)
        if not (isinstance(r.get("account"), str) and 0 < len(r["account"].encode()) <= 128):
            problem("%s: account %r" % (rid, r.get("account")))
        a = r.get("amount")
        if not (type(a) is int and a >= 0):
            problem("%s: amount %r is not an int >= 0" % (rid, a))
        ts = r.get("ts")
        if type(ts) is not int:
            problem("%s: ts %r is not an int" % (rid, ts))
        else:
            if last_ts is not None and ts < last_ts:
                problem("%s: ts %d goes back from %d" % (rid, ts, last_ts))
            last_ts = ts
        for k in STR:
            if k in r and not isinstance(r[k], str):
                problem("%s: %s %r is not a str" % (rid, k, r[k]))
        for k in ("mcc", "account_age_days"):
            if type(r.get(k)) is not int or r[k] < 0:
                problem("%s: %s %r is not an int >= 0" % (rid, k, r.get(k)))
        if "is_3ds" in r and type(r["is_3ds"]) is not bool:
            problem("%s: is_3ds %r is not a bool" % (rid, r["is_3ds"]))
        lab = r.get("label")
        if lab not in (0, 1) or type(lab) is not int:
            problem("%s: label %r" % (rid, lab)); continue
        s = r.get("scenario")
        if (lab == 0) != (s == "legit"):
            problem("%s: label %d with scenario %r" % (rid, lab, s))
        if lab:
            fraud += 1
            scen[s] += 1
            by[s].append(r)
        elif "device" in r:
            legit_dev[r["account"]].add(r["device"])

if n != n_want:
    problem("%d records, asked for %d" % (n, n_want))
realised = fraud / n
if abs(realised - rate) > 0.1 * rate:
    problem("fraud rate %.5f, asked %.5f (tolerance 10%% relative)" % (realised, rate))
for k in set(mix) | set(scen):
    got = scen[k] / fraud if fraud else 0.0
    if abs(got - mix.get(k, 0.0)) > 0.03:
        problem("scenario %s: %.3f of fraud, asked %.3f" % (k, got, mix.get(k, 0.0)))

# The shapes docs/traffic.md promises.
if "card_testing" in by:
    ct = by["card_testing"]
    if not all(100 <= r["amount"] <= 500 for r in ct):
        problem("card_testing: an amount outside 100-500")
    dev = collections.defaultdict(set)
    for r in ct:
        dev[r["device"]].add(r["card"])
    if max(len(c) for c in dev.values()) < 10:
        problem("card_testing: no device tried 10 or more cards")
if "stolen_card" in by:
    cards = collections.defaultdict(list)
    for r in by["stolen_card"]:
        cards[r["card"]].append(r)
    multi = [v for v in cards.values() if len({r["account"] for r in v}) >= 3]
    if len(multi) < len(cards) // 2:
        problem("stolen_card: fewer than half the cards appear on 3+ accounts")
    if any(v[-1]["ts"] - v[0]["ts"] > 86400000 for v in cards.values()):
        problem("stolen_card: a card's fraud spans more than a day")
if "ato" in by:
    for r in by["ato"]:
        if r["device"] in legit_dev[r["account"]]:
            problem("ato %s: device already used by the account legitimately" % r["id"]); break
        if r["account_age_days"] < 30:
            problem("ato %s: a taken-over account younger than 30 days" % r["id"]); break
if "high_value" in by:
    for r in by["high_value"]:
        if not any(0.95 * t <= r["amount"] < t for t in TIERS):
            problem("high_value %s: amount %d not just under a threshold" % (r["id"], r["amount"]))
            break
if "friendly" in by:
    for r in by["friendly"]:
        if r["channel"] not in ("web", "app") or r["account_age_days"] < 60:
            problem("friendly %s: not an online purchase by an established customer" % r["id"])
            break
    own = sum(r["account"] in legit_dev for r in by["friendly"])
    if own < 0.9 * len(by["friendly"]):
        problem("friendly: only %d of %d on accounts with legitimate traffic"
                % (own, len(by["friendly"])))

for b in bad:
    print(b)
print("records %d, fraud %.4f, mix %s" % (n, realised,
      ", ".join("%s=%.3f" % (k, scen[k] / max(fraud, 1)) for k in sorted(scen))), file=sys.stderr)
sys.exit(1 if bad else 0)
EOF

MIX=card_testing=0.3,ato=0.25,stolen_card=0.2,high_value=0.15,friendly=0.1
if out=$("$PY" "$TMP/check.py" "$TMP/big.rlog" $N 0.01 $MIX 2>&1); then
    ok "200k records: typed, unique ids, ts ordered, rate and mix match ($out)"
else
    fail "200k records: $out"
fi

# Another rate and mix.
"$GEN" --seed 3 --transactions 50000 --fraud-rate 0.002 --scenario-mix ato=2,high_value=1 \
    -o "$TMP/m.rlog"
if out=$("$PY" "$TMP/check.py" "$TMP/m.rlog" 50000 0.002 ato=2,high_value=1 2>&1); then
    ok "--fraud-rate 0.002 --scenario-mix ato=2,high_value=1 ($out)"
else
    fail "rate 0.002, mix ato=2,high_value=1: $out"
fi

# ---- --rules: only the declared extras are written, unknown ones are noted,
# and high-value fraud stays under that file's thresholds.
cat >"$TMP/r.yaml" <<'YEOF'
ruleset: t
schema: {is_3ds: bool, loyalty_tier: str}   # flow form
rules:
  - id: big
    when: amount >= 70000 and amount > 123456
    action: review
YEOF
"$GEN" --seed 5 --transactions 5000 --fraud-rate 0.1 --scenario-mix high_value=1 \
    --rules "$TMP/r.yaml" -o "$TMP/r.rlog" 2>"$TMP/r.err"
if out=$("$PY" - "$TMP/r.rlog" <<'PYEOF'
import sys, msgpack
bad = []
for r in msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False):
    for k in ("account_age_days", "email_domain", "shipping_country", "loyalty_tier"):
        if k in r:
            bad.append("%s: undeclared %s written" % (r["id"], k))
    if r["label"] and not (66500 <= r["amount"] < 70000 or 117283 <= r["amount"] < 123457):
        bad.append("%s: high_value amount %d" % (r["id"], r["amount"]))
    if r["channel"] in ("web", "app") and "is_3ds" not in r:
        bad.append("%s: no is_3ds online" % r["id"])
print("\n".join(bad[:5]))
sys.exit(1 if bad else 0)
PYEOF
) && grep -qx "gen-traffic: note: schema field 'loyalty_tier: str' is not generated" "$TMP/r.err"
then
    ok "--rules FILE: declared extras only, thresholds 70000 and 123457"
else
    fail "--rules FILE: $out $(cat "$TMP/r.err")"
fi

# ---- docs/traffic.md: the example records are what the generator makes, and
# the inspection snippets run.
"$GEN" --seed 7 --transactions 100000 --rules none -o "$TMP/traffic.rlog"
cat >"$TMP/docs.py" <<'PYEOF'
import json, re, subprocess, sys
import msgpack

doc, log, tmp = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(doc, encoding="utf-8").read()
want = {}
for block in re.findall(r"```json\n(.*?)```", text, re.S):
    r = json.loads(block)
    want[r["id"]] = r
bad = []
if len(want) < 6:
    bad.append("docs/traffic.md: %d example records, want one per scenario and a legit one"
               % len(want))
with open(log, "rb") as f:
    for r in msgpack.Unpacker(f, raw=False):
        w = want.pop(r["id"], None)
        if w is not None and (w != r or list(w) != list(r)):
            bad.append("docs/traffic.md example %s differs from the generated record:\n  %s"
                       % (r["id"], json.dumps(r)))
for rid in want:
    bad.append("docs/traffic.md example %s is not in the generated log" % rid)
snippets = [b for b in re.findall(r"```sh\n(.*?)```", text, re.S) if "msgpack.Unpacker" in b]
if len(snippets) < 2:
    bad.append("docs/traffic.md: the inspection snippets are missing")
for sn in snippets:
    p = subprocess.run(["bash", "-c", sn], cwd=tmp, capture_output=True, text=True)
    if p.returncode != 0 or not p.stdout.strip():
        bad.append("docs/traffic.md snippet failed (exit %d): %s\n%s"
                   % (p.returncode, p.stderr.strip(), sn))
print("\n".join(bad))
sys.exit(1 if bad else 0)
PYEOF
if out=$("$PY" "$TMP/docs.py" docs/traffic.md "$TMP/traffic.rlog" "$TMP" 2>&1); then
    ok "docs/traffic.md examples match the generator and its snippets run"
else
    fail "$out"
fi

# ---- bad options --------------------------------------------------------------
# bad EXPECTED_MESSAGE_PART ARGS...: exit 2, one line on stderr, nothing written.
bad() {
    local want=$1; shift
    local rc=0
    "$GEN" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
    local lines
    lines=$(wc -l <"$TMP/err")
    if [[ $rc -eq 2 && $lines -eq 1 && $(cat "$TMP/err") == "gen-traffic: "*"$want"* ]] \
        && [[ ! -e $TMP/bad.rlog ]] && ! leftover; then
        ok "$* -> exit 2: $(cat "$TMP/err")"
    else
        fail "$*: want exit 2 and one line with '$want', got exit $rc: $(cat "$TMP/err")"
    fi
}
bad "--fraud-rate must be between 0 and 0.2" --fraud-rate 5 -o "$TMP/bad.rlog"
bad "--fraud-rate must be between 0 and 0.2" --fraud-rate -0.01 -o "$TMP/bad.rlog"
bad "--fraud-rate must be between 0 and 0.2" --fraud-rate nan -o "$TMP/bad.rlog"
bad "--transactions must be at least 1" --transactions 0 -o "$TMP/bad.rlog"
bad "unknown scenario 'phishing'" --scenario-mix phishing=1 -o "$TMP/bad.rlog"
bad "needs a weight" --scenario-mix ato -o "$TMP/bad.rlog"
bad "is not an ISO date" --start tomorrow -o "$TMP/bad.rlog"
bad "required: -o/--output" --seed 1
bad "invalid int value" --seed x -o "$TMP/bad.rlog"
bad "cannot read" --rules "$TMP/missing.yaml" -o "$TMP/bad.rlog"

if [[ $failures -ne 0 ]]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all gen-traffic checks passed"
