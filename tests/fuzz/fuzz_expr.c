/* libFuzzer target for the rule expression compiler and VM: compiles the
 * input as an expression against a fixed environment (every standard field,
 * schema extras of each type, counters, model.score, named lists, a dynamic
 * list), and when it compiles, evaluates it over three fixed transactions:
 * ordinary values, extreme values (INT64_MIN/MAX, huge floats, empty strings)
 * and all missing. The dynamic list's stand-in store answers yes, no or
 * "look-up failed" depending on the value, and checks what it is asked.
 *
 * Besides the sanitizers' checks it aborts on broken contracts: a failed
 * compile without a positioned message or with an undocumented code, a
 * result whose type is neither the static type nor missing. Seeds live in
 * tests/fuzz/corpus/expr/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/txn.h"
#include "rules/expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { S_AGE = RK_F__STD, S_RATIO, S_VIP, S_TXN_1H, S_DEV_CARDS, S_MODEL, S__COUNT };

static rk_sym syms[S__COUNT];
static rk_named_list lists[4];
static rk_expr_env env;
static rk_value txns[3][RK_MAX_SLOTS];
static rk_arena arena;

static void init(void)
{
    for (int f = 0; f < RK_F__STD; f++)
        syms[f] = (rk_sym){rk_field_name(f), rk_field_type(f), f};
    syms[S_AGE] = (rk_sym){"account_age_days", RK_T_INT, S_AGE};
    syms[S_RATIO] = (rk_sym){"ratio", RK_T_FLOAT, S_RATIO};
    syms[S_VIP] = (rk_sym){"vip", RK_T_BOOL, S_VIP};
    syms[S_TXN_1H] = (rk_sym){"acct_txn_1h", RK_T_INT, S_TXN_1H};
    syms[S_DEV_CARDS] = (rk_sym){"dev_cards_24h", RK_T_INT, S_DEV_CARDS};
    syms[S_MODEL] = (rk_sym){"model.score", RK_T_FLOAT, S_MODEL};

    rk_list *countries = rk_list_new(), *mccs = rk_list_new(), *mixed = rk_list_new();
    rk_list_add(countries, "KP", 2);
    rk_list_add(countries, "IR", 2);
    rk_list_add(mccs, "0742", 4);
    rk_list_add_int(mccs, 5967);
    rk_list_add(mixed, "1", 1);
    rk_list_add(mixed, "x", 1);
    lists[0] = (rk_named_list){.name = "high_risk_countries", .list = countries};
    lists[1] = (rk_named_list){.name = "risky_mccs", .list = mccs};
    lists[2] = (rk_named_list){.name = "mixed", .list = mixed};
    lists[3] = (rk_named_list){.name = "blocked_cards", .dynamic = true, .dyn_index = 1};
    env = (rk_expr_env){.syms = syms, .nsyms = S__COUNT, .lists = lists, .nlists = 4,
                        .file = "fuzz.yaml", .line = 3, .col = 11, .cont_col = 7};

    /* ordinary values */
    for (int f = 0; f < RK_F__STD; f++)
        if (rk_field_type(f) == RK_T_STR)
            txns[0][f] = rk_value_str("KP", 2);
    txns[0][RK_F_AMOUNT] = rk_value_int(150000);
    txns[0][RK_F_TS] = rk_value_int(INT64_C(1700000000000));
    txns[0][RK_F_MCC] = rk_value_int(742);
    txns[0][S_AGE] = rk_value_int(3);
    txns[0][S_RATIO] = rk_value_float(0.5);
    txns[0][S_VIP] = rk_value_bool(true);
    txns[0][S_TXN_1H] = rk_value_int(0);
    txns[0][S_DEV_CARDS] = rk_value_int(-1);
    txns[0][S_MODEL] = rk_value_float(0.95);
    /* extreme values */
    for (int f = 0; f < RK_F__STD; f++)
        if (rk_field_type(f) == RK_T_STR)
            txns[1][f] = rk_value_str("", 0);
    txns[1][RK_F_AMOUNT] = rk_value_int(INT64_MAX);
    txns[1][RK_F_TS] = rk_value_int(INT64_MIN);
    txns[1][RK_F_MCC] = rk_value_int(-1);
    txns[1][S_AGE] = rk_value_int(INT64_MIN);
    txns[1][S_RATIO] = rk_value_float(1.7976931348623157e308);
    txns[1][S_VIP] = rk_value_bool(false);
    txns[1][S_TXN_1H] = rk_value_int(-1);
    txns[1][S_DEV_CARDS] = rk_value_int(INT64_MIN);
    txns[1][S_MODEL] = rk_value_float(-0.0);
    /* txns[2]: everything missing */
    if (rk_arena_init(&arena, 64) != 0)
        abort();
}

/* The store's stand-in: only list 1 exists; it is asked a str or an int. */
static int dyn_has(void *ud, int list, const rk_value *v)
{
    if (ud != &arena || list != 1 || (v->type != RK_T_STR && v->type != RK_T_INT))
        abort();
    if (v->type == RK_T_STR && v->len && !v->s)
        abort();
    uint64_t h = v->type == RK_T_INT ? (uint64_t)v->i : v->len;
    return (int)(h % 3) - 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        init();
        ready = 1;
    }
    for (int want = RK_T_MISSING; want <= RK_T_BOOL; want += RK_T_BOOL) {
        rk_expr *e = NULL;
        rk_diag d = {0};
        int rc = rk_expr_compile((const char *)data, size, &env, (rk_type)want, &e, &d);
        if (rc) {
            if (e || !d.msg[0] || d.line < 1 || d.col < 1 || strcmp(d.file, "fuzz.yaml") != 0)
                abort();
            if (rc != RK_EPARSE && rc != RK_ETYPE && rc != RK_ENOTFOUND && rc != RK_ERANGE &&
                rc != RK_ENOMEM)
                abort();
            continue;
        }
        rk_type type = rk_expr_type(e);
        if (want != RK_T_MISSING && type != (rk_type)want)
            abort();
        for (int t = 0; t < 3; t++) {
            rk_arena_reset(&arena); /* small: lower()/upper() may exhaust it */
            rk_eval_ctx ctx = {.arena = &arena, .dyn_has = t == 1 ? NULL : dyn_has,
                               .dyn_ud = &arena};
            rk_value v = rk_expr_eval(e, txns[t], &ctx);
            if (v.type != RK_T_MISSING && v.type != type)
                abort();
            if (v.type == RK_T_STR && v.len && !v.s)
                abort();
        }
        rk_expr_free(e);
    }
    return 0;
}
