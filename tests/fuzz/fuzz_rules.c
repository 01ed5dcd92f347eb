/* libFuzzer target for the rule loader: arbitrary bytes are a rule file, fed
 * to rk_ruleset_load_mem (includes and list files then resolve from the
 * current directory, so run it from the source tree). Beyond "no crash, no
 * sanitizer report, no leak", it checks the loader's contract: a failure
 * leaves *out alone and gives a known code with a one-line message; a rule set
 * that loads evaluates, on a filled and on an empty transaction, to decisions
 * whose reasons and shadow lists name real rules in file order, and twice to
 * the same decision (evaluation has no hidden state). Counters get values in
 * their slots and their filters run; dynamic lists are answered by a
 * stand-in store, and their descriptions must hold together (names found by
 * rk_ruleset_dynlist_find, fraud fields among the request fields).
 *
 *   build-fuzz/fuzz_rules -max_len=4096 tests/fuzz/corpus/rules */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/arena.h"
#include "lib/err.h"
#include "rules/ruleset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static rk_value str(const char *s)
{
    return rk_value_str(s, (uint32_t)strlen(s));
}

/* The store's stand-in: a member when the value's text is short. */
static int dyn_has(void *ud, int list, const rk_value *v)
{
    const rk_ruleset *rs = ud;
    check(list >= 0 && list < rk_ruleset_ndynlists(rs));
    check(v->type == RK_T_STR || v->type == RK_T_INT);
    return v->type == RK_T_STR ? v->len < 3 : v->i % 2 == 0;
}

/* Counters and dynamic lists: consistent descriptions, filters that run. */
static void check_state(const rk_ruleset *rs, const rk_txn *txn, rk_eval_ctx *ctx)
{
    const rk_counters *cs = rk_ruleset_counters(rs);
    int n = cs ? rk_counters_count(cs) : 0, base = rk_ruleset_counter_base(rs);
    check(base == RK_F__STD + rk_ruleset_schema(rs)->n && base + n <= RK_MAX_SLOTS);
    for (int i = 0; i < n; i++) {
        rk_type t;
        check(rk_ruleset_slot(rs, rk_counters_def(cs, i)->name, &t) == base + i && t == RK_T_INT);
    }
    bool when[RK_COUNTERS_MAX];
    rk_arena_reset(ctx->arena);
    rk_ruleset_counter_when(rs, txn, ctx, when);
    for (int i = 0; i < rk_ruleset_ndynlists(rs); i++) {
        const rk_dynlist_info *d = rk_ruleset_dynlist(rs, i);
        check(rk_ruleset_dynlist_find(rs, d->name) == i && rk_ruleset_has_list(rs, d->name));
        check(d->fraud_slot >= -1 && d->fraud_slot < base && d->fraud_ttl_ms >= 0);
    }
}

/* A transaction with every standard field, schema extra and counter set. */
static void fill(const rk_ruleset *rs, rk_txn *txn)
{
    memset(txn, 0, sizeof *txn);
    for (int f = 0; f < RK_F__STD; f++)
        txn->v[f] = rk_field_type(f) == RK_T_INT ? rk_value_int(7995) : str("KP");
    txn->v[RK_F_AMOUNT] = rk_value_int(250000);
    txn->v[RK_F_TS] = rk_value_int(INT64_C(1795010400000));
    const rk_schema *sc = rk_ruleset_schema(rs);
    for (int i = 0; i < sc->n; i++) {
        rk_value v = sc->f[i].type == RK_T_INT     ? rk_value_int(-3)
                     : sc->f[i].type == RK_T_FLOAT ? rk_value_float(0.5)
                     : sc->f[i].type == RK_T_BOOL  ? rk_value_bool(true)
                                                   : str("x");
        txn->v[RK_F__STD + i] = v;
    }
    const rk_counters *cs = rk_ruleset_counters(rs);
    for (int i = 0; cs && i < rk_counters_count(cs); i++)
        txn->v[rk_ruleset_counter_base(rs) + i] = rk_value_int(i * 7 - 3);
}

static void check_ids(const rk_ruleset *rs, const uint16_t *idx, int n, bool shadow)
{
    check(n >= 0 && n <= rk_ruleset_nrules(rs));
    for (int i = 0; i < n; i++) {
        check(idx[i] < rk_ruleset_nrules(rs));
        check(i == 0 || idx[i] > idx[i - 1]);
        check(rk_ruleset_rule_shadow(rs, idx[i]) == shadow);
    }
}

static void evaluate(const rk_ruleset *rs, const rk_txn *txn, rk_eval_ctx *ctx)
{
    static rk_decision a, b;
    rk_arena_reset(ctx->arena);
    rk_ruleset_eval(rs, txn, ctx, &a);
    check((unsigned)a.verdict < RK_VERDICT__COUNT);
    check((unsigned)a.shadow_verdict < RK_VERDICT__COUNT);
    check_ids(rs, a.reasons, a.nreasons, false);
    check_ids(rs, a.shadow, a.nshadow, true);
    check(a.nshadow == 0 || a.has_shadow_rules);
    rk_arena_reset(ctx->arena);
    rk_ruleset_eval(rs, txn, ctx, &b);
    check(a.verdict == b.verdict && a.nreasons == b.nreasons && a.nshadow == b.nshadow);
    check(a.shadow_verdict == b.shadow_verdict);
    check(memcmp(a.reasons, b.reasons, (size_t)a.nreasons * sizeof *a.reasons) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rk_arena arena;
    static rk_eval_ctx ctx;
    static rk_txn txn;
    if (!arena.base) {
        rk_arena_init(&arena, 1 << 16);
        ctx.arena = &arena;
    }
    rk_ruleset *rs = (rk_ruleset *)&arena; /* a sentinel: must stay untouched on failure */
    rk_diag diag;
    int rc = rk_ruleset_load_mem("fuzz.yaml", (const char *)data, size, &rs, &diag);
    if (rc) {
        check(rs == (rk_ruleset *)&arena);
        check(strcmp(rk_strerror(rc), "unknown error") != 0);
        check(diag.msg[0] != '\0' && !strchr(diag.msg, '\n'));
        check(diag.line >= 0 && diag.col >= 0);
        char buf[1200];
        rk_diag_format(&diag, buf, sizeof buf);
        return 0;
    }
    check(rk_ruleset_nrules(rs) <= RK_MAX_RULES);
    const char *label = rk_ruleset_label(rs);
    size_t nl = strlen(rk_ruleset_name(rs));
    check(strncmp(label, rk_ruleset_name(rs), nl) == 0 && label[nl] == '@' &&
          strcmp(label + nl + 1, rk_ruleset_version(rs)) == 0);
    rk_type type;
    check(rk_ruleset_slot(rs, "amount", &type) == RK_F_AMOUNT && type == RK_T_INT);
    fill(rs, &txn);
    ctx.dyn_has = NULL;
    evaluate(rs, &txn, &ctx);
    ctx.dyn_has = dyn_has;
    ctx.dyn_ud = rs;
    check_state(rs, &txn, &ctx);
    evaluate(rs, &txn, &ctx);
    memset(&txn, 0, sizeof txn);
    check_state(rs, &txn, &ctx);
    evaluate(rs, &txn, &ctx);
    rk_ruleset_free(rs);
    return 0;
}
