#!/usr/bin/env bash
# riskctl log from the outside: dump of plain and decision logs (exact JSON
# lines), a torn tail (reported, exit 0) and a corrupt record in the middle
# (the records before it, then the byte offset, exit 1); to-csv -> from-csv
# giving back the very bytes of a log written in canonical key order, with
# every value type, quoting, absent keys and a string column that looks
# numeric; from-csv's typing rules and its FILE:LINE:COL errors; usage errors
# and --help. Logs are written with Debian's python3-msgpack, decision
# records with a CRC-32C computed here independently of riskd's.
#
# Usage: bash tests/test_cli_log.sh BUILD_DIR   (from the source directory; ctest does this)
set -euo pipefail

BUILD_DIR=${1:?usage: bash tests/test_cli_log.sh BUILD_DIR}
RISKCTL=$BUILD_DIR/riskctl

. tests/support/lib.sh

# ---------------------------------------------------------------- fixtures

# plain.rlog: canonical key order (standard fields, label, extras in one
# order), every value type, absent keys, strings CSV must quote.
# dec.rlog: two decision records around a plain one; bad.rlog: the same with
# a flipped byte in the second decision record's reply.
$PY - "$TMP" <<'EOF'
import sys, msgpack
d = sys.argv[1]

def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82f63b78 if crc & 1 else crc >> 1
    return crc ^ 0xffffffff

recs = [
    {"id": "t1", "account": "a1", "amount": 1999, "ts": 1795000000000, "currency": "USD",
     "card": "4111", "mcc": 5411, "label": 0,
     "age_days": 12, "ratio": 0.1, "vip": True, "note": 'says "hi", twice', "zip": "02139"},
    {"id": "t2", "account": "a2", "amount": 0, "label": 1,
     "age_days": -3, "ratio": 1e-07, "vip": False, "note": "line1\nline2", "zip": "true"},
    {"id": "t3", "account": "a3", "amount": 18446744073709551, "ts": 0,
     "ratio": 1e+20, "note": "", "zip": "x9"},
]
with open(d + "/plain.rlog", "wb") as f:
    for r in recs:
        f.write(msgpack.packb(r))

def decision(req, resp, ruleset, at):
    return msgpack.packb({"req": req, "resp": resp, "ruleset": ruleset, "at": at,
                          "crc": crc32c(resp, crc32c(req))}, use_bin_type=True)

req1 = msgpack.packb({"id": "d1", "account": "a", "amount": 5, "label": 1})
resp1 = msgpack.packb({"id": "d1", "decision": "block", "score": 60.0, "model_score": None,
                       "reasons": ["card_testing", "model_high"], "ruleset": "default@1",
                       "took_us": 12})
req2 = b"\xc1garbage"
resp2 = msgpack.packb({"error": {"code": "bad_request", "message": "not msgpack"}})
plain = msgpack.packb({"id": "p", "account": "b", "amount": 7})
r1 = decision(req1, resp1, "default@1", 1795000000123)
r2 = decision(req2, resp2, "default@1", 1795000000456)
with open(d + "/dec.rlog", "wb") as f:
    f.write(r1 + plain + r2)
bad = bytearray(r2)
bad[r2.index(b"not msgpack")] ^= 0x01  # inside resp: still msgpack, wrong crc
with open(d + "/bad.rlog", "wb") as f:
    f.write(r1 + plain + bytes(bad) + plain)
with open(d + "/offsets", "w") as f:
    f.write("%d %d\n" % (len(r1) + len(plain), len(r1) + len(plain) + len(r2)))
EOF
read -r BAD_AT DEC_END <"$TMP/offsets"

# ---------------------------------------------------------------- --help, usage

t "riskctl --help lists log"
run "$RISKCTL" --help
rc_is 0
[[ $OUT == *"  log "* ]] || fail "--help does not list 'log'"

t "log --help"
run "$RISKCTL" log --help
rc_is 0
out_matches '^Usage: riskctl log dump\|to-csv\|from-csv'

for sub in dump to-csv from-csv; do
    t "log $sub --help"
    run "$RISKCTL" log "$sub" --help
    rc_is 0
    out_matches "^Usage: riskctl log $sub "
    err_is ""
done

t "log without a subcommand"
run "$RISKCTL" log
rc_is 2
err_is "riskctl: log needs a subcommand: dump, to-csv or from-csv
Try 'riskctl log --help'."

t "log with a misspelt subcommand"
run "$RISKCTL" log dum x.rlog
rc_is 2
err_is "riskctl: unknown log subcommand 'dum' (did you mean 'dump'?)
Try 'riskctl log --help'."

t "dump without a file"
run "$RISKCTL" log dump
rc_is 2
err_is "riskctl: dump needs a FILE (or - for stdin)
Try 'riskctl log dump --help'."

t "from-csv without -o"
run "$RISKCTL" log from-csv x.csv
rc_is 2
err_is "riskctl: from-csv needs -o OUT.rlog (use -o - for stdout)
Try 'riskctl log from-csv --help'."

t "to-csv with an unknown option"
run "$RISKCTL" log to-csv --ouput x.csv "$TMP/plain.rlog"
rc_is 2
err_is "riskctl: unknown option '--ouput' for 'log to-csv' (did you mean '--output'?)
Try 'riskctl log to-csv --help'."

t "dump of a missing file"
run "$RISKCTL" log dump "$TMP/none.rlog"
rc_is 1
err_is "riskctl: $TMP/none.rlog: no such file"

# ---------------------------------------------------------------- dump

t "dump of a plain log"
run "$RISKCTL" log dump "$TMP/plain.rlog"
rc_is 0
err_is ""
out_is '{"id":"t1","account":"a1","amount":1999,"ts":1795000000000,"currency":"USD","card":"4111","mcc":5411,"label":0,"age_days":12,"ratio":0.1,"vip":true,"note":"says \"hi\", twice","zip":"02139"}
{"id":"t2","account":"a2","amount":0,"label":1,"age_days":-3,"ratio":1e-07,"vip":false,"note":"line1\nline2","zip":"true"}
{"id":"t3","account":"a3","amount":18446744073709551,"ts":0,"ratio":1e+20,"note":"","zip":"x9"}'

t "dump from stdin"
run bash -c "\"$RISKCTL\" log dump - <\"$TMP/plain.rlog\" | wc -l"
rc_is 0
out_is 3

t "dump of a decision log"
run "$RISKCTL" log dump "$TMP/dec.rlog"
rc_is 0
err_is ""
out_is '{"req":{"id":"d1","account":"a","amount":5,"label":1},"resp":{"id":"d1","decision":"block","score":60.0,"model_score":null,"reasons":["card_testing","model_high"],"ruleset":"default@1","took_us":12},"ruleset":"default@1","at":1795000000123}
{"id":"p","account":"b","amount":7}
{"req":"wWdhcmJhZ2U=","resp":{"error":{"code":"bad_request","message":"not msgpack"}},"ruleset":"default@1","at":1795000000456}'

t "dump of a torn tail"
head -c $((DEC_END - 5)) "$TMP/dec.rlog" >"$TMP/torn.rlog"
run "$RISKCTL" log dump "$TMP/torn.rlog"
rc_is 0
[[ $(wc -l <"$TMP/out") == 2 ]] || fail "expected the 2 whole records"
err_is "riskctl: $TMP/torn.rlog: torn record at byte $BAD_AT (ignored)"

t "dump of a corrupt record in the middle"
run "$RISKCTL" log dump "$TMP/bad.rlog"
rc_is 1
[[ $(wc -l <"$TMP/out") == 2 ]] || fail "expected the 2 records before the corrupt one"
[[ $ERR == "riskctl: $TMP/bad.rlog: record at byte $BAD_AT: decision record fails its crc (stored 0x"*", computed 0x"*")" ]] ||
    fail "stderr does not name the corrupt record's offset"

t "dump of a file that is not msgpack"
printf 'id,account\nx,y\n' >"$TMP/text.rlog"
run "$RISKCTL" log dump "$TMP/text.rlog"
rc_is 1
out_is ""
err_is "riskctl: $TMP/text.rlog: record at byte 0: expected a msgpack map (a request or a decision record), found int"

# ---------------------------------------------------------------- to-csv, round trip

t "to-csv of a plain log"
run "$RISKCTL" log to-csv "$TMP/plain.rlog"
rc_is 0
err_is ""
out_is 'id,account,amount,ts,currency,card,mcc,label,age_days,ratio,vip,note,zip:str
t1,a1,1999,1795000000000,USD,4111,5411,0,12,0.1,true,"says ""hi"", twice",02139
t2,a2,0,,,,,1,-3,1e-07,false,"line1
line2",true
t3,a3,18446744073709551,0,,,,,,1e+20,,"",x9'

t "rlog -> csv -> rlog gives the same bytes"
run "$RISKCTL" log to-csv "$TMP/plain.rlog" -o "$TMP/plain.csv"
rc_is 0
out_is ""
run "$RISKCTL" log from-csv "$TMP/plain.csv" -o "$TMP/back.rlog"
rc_is 0
err_is ""
cmp -s "$TMP/plain.rlog" "$TMP/back.rlog" || fail "the round trip changed the bytes"

t "a generated log round-trips"
$PY - "$TMP/many.rlog" <<'EOF'
import random, sys, msgpack
rnd = random.Random(5)
with open(sys.argv[1], "wb") as f:
    for i in range(2000):
        r = {"id": "g%05d" % i, "account": "acct-%d" % rnd.randrange(300),
             "amount": rnd.randrange(1, 10**7), "ts": 1795000000000 + i * 977,
             "currency": rnd.choice(["USD", "EUR", "GBP"]), "channel": rnd.choice(["web", "app"]),
             "ip": "10.%d.%d.%d" % (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)),
             "country": "US", "ip_country": rnd.choice(["US", "NG", "GB"]), "mcc": 5411,
             "label": int(rnd.random() < 0.02)}
        if i % 3:
            r["score_hint"] = rnd.random() * 100
        r["tier"] = rnd.choice(["gold", "std", "001"])
        f.write(msgpack.packb(r))
EOF
run "$RISKCTL" log to-csv "$TMP/many.rlog" -o "$TMP/many.csv"
rc_is 0
run "$RISKCTL" log from-csv "$TMP/many.csv" -o "$TMP/many2.rlog"
rc_is 0
cmp -s "$TMP/many.rlog" "$TMP/many2.rlog" || fail "the round trip changed the bytes"

t "to-csv of a decision log"
run "$RISKCTL" log to-csv "$TMP/dec.rlog"
rc_is 0
out_is 'id,account,amount,label,decision,score,reasons,ruleset,error
d1,a,5,1,block,60.0,card_testing|model_high,default@1,
p,b,7,,,,,,
,,,,,,,default@1,bad_request'

t "to-csv of a corrupt log writes nothing"
run "$RISKCTL" log to-csv "$TMP/bad.rlog" -o "$TMP/bad.csv"
rc_is 1
[[ ! -e $TMP/bad.csv ]] || fail "a partial CSV was left behind"

# ---------------------------------------------------------------- from-csv

t "from-csv types cells by header and by look"
cat >"$TMP/typed.csv" <<'EOF'
note,amount,id,account,label,n:float,flag:bool,code:str,guess,empty
"a, b",100,x1,acct,1,3,true,007,2.5,
"",0,x2,acct,0,-1.5,false,,yes,""
EOF
run "$RISKCTL" log from-csv "$TMP/typed.csv" -o "$TMP/typed.rlog"
rc_is 0
run "$RISKCTL" log dump "$TMP/typed.rlog"
rc_is 0
out_is '{"id":"x1","account":"acct","amount":100,"label":1,"note":"a, b","n":3.0,"flag":true,"code":"007","guess":2.5}
{"id":"x2","account":"acct","amount":0,"label":0,"note":"","n":-1.5,"flag":false,"guess":"yes","empty":""}'

t "from-csv: CRLF line ends, a BOM and a trailing blank line"
printf '\xef\xbb\xbfid,account,amount\r\nc1,a,1\r\n\r\n' >"$TMP/crlf.csv"
run "$RISKCTL" log from-csv "$TMP/crlf.csv" -o -
rc_is 0
[[ $(printf '%s' "$OUT" | od -An -tx1 | tr -d ' \n') == "83a26964a26331a76163636f756e74a161a6616d6f756e7401" ]] ||
    fail "unexpected bytes"

csv_error() { # NAME CSV-TEXT EXPECTED-STDERR
    t "from-csv error: $1"
    printf '%s' "$2" >"$TMP/e.csv"
    rm -f "$TMP/e.rlog"
    run "$RISKCTL" log from-csv "$TMP/e.csv" -o "$TMP/e.rlog"
    rc_is 2
    err_is "riskctl: $TMP/e.csv:$3"
    [[ ! -e $TMP/e.rlog ]] || fail "output left behind"
}
csv_error "an amount that is not an integer" $'id,account,amount\nt1,a,5\nt2,b,abc\n' \
    "3:6: column 'amount': expected an integer, got 'abc'"
csv_error "a label that is not an integer" $'id,label\nt1,yes\n' \
    "2:4: column 'label': expected an integer, got 'yes'"
csv_error "a float column" $'id,r:float\nt1,1.2.3\n' \
    "2:4: column 'r': expected a number, got '1.2.3'"
csv_error "a bool column" $'id,b:bool\nt1,1\n' \
    "2:4: column 'b': expected true or false, got '1'"
csv_error "too few cells" $'id,account,amount\nt1,a\n' \
    "2:1: 2 cells, the header has 3"
csv_error "too many cells" $'id,account\nt1,a,9\n' \
    "2:6: more cells than the header's 2"
csv_error "an unclosed quote" $'id,account\nt1,"a\n' \
    "2:4: quoted cell never closed"
csv_error "text after a closing quote" $'id,account\nt1,"a"b\n' \
    "2:7: unexpected 'b' after a quoted cell (expected a comma or the end of the row)"
csv_error "a duplicate column" $'id,account,id\n' \
    "1:12: duplicate column 'id'"
csv_error "a standard field typed otherwise" $'id,amount:str\n' \
    "1:4: column 'amount' is a standard field of type int, not str"
csv_error "an empty column name" $'id,,amount\n' \
    "1:4: empty column name"
csv_error "an empty file" '' \
    "1:1: empty file: a header row naming the columns is required"

t "from-csv of a missing file"
run "$RISKCTL" log from-csv "$TMP/none.csv" -o "$TMP/x.rlog"
rc_is 1
err_is "riskctl: $TMP/none.csv: no such file"

finish test_cli_log
