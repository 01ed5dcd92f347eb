/* Tests for expression evaluation: the three-valued truth tables of and, or,
 * not, comparisons and `in` with missing operands; int and float arithmetic,
 * overflow, division and modulo by zero and how arith_errors counts them;
 * every built-in function, including missing arguments; static and dynamic
 * lists (asked of ctx->dyn_has); loads of
 * slots holding unexpected types; and that folded constants equal what the
 * VM computes at run time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/err.h"
#include "proto/txn.h"
#include "rules/expr.h"
#include "rules/funcs.h"

/* Standard fields at their slots, then two of each type for the tables. */
enum { S_P = RK_F__STD, S_Q, S_I, S_J, S_X, S_Y, S_S, S_T, S_MODEL, S__COUNT };
static rk_sym syms[S__COUNT];
static rk_list *l_countries, *l_mccs;
static rk_named_list lists[3];
static rk_expr_env env;
static rk_value slots[RK_MAX_SLOTS];
static rk_arena arena;
static uint64_t arith; /* arith_errors of the last eval() */
static char context[64]; /* what a table-driven test is at, for failure messages */

static int setup(void **state)
{
    for (int f = 0; f < RK_F__STD; f++)
        syms[f] = (rk_sym){rk_field_name(f), rk_field_type(f), f};
    static const struct {
        const char *name;
        rk_type type;
    } extra[] = {{"p", RK_T_BOOL},  {"q", RK_T_BOOL}, {"i", RK_T_INT}, {"j", RK_T_INT},
                 {"x", RK_T_FLOAT}, {"y", RK_T_FLOAT}, {"s", RK_T_STR}, {"t", RK_T_STR},
                 {"model.score", RK_T_FLOAT}};
    for (int k = 0; k < S__COUNT - RK_F__STD; k++)
        syms[RK_F__STD + k] = (rk_sym){extra[k].name, extra[k].type, RK_F__STD + k};
    l_countries = rk_list_new();
    rk_list_add(l_countries, "KP", 2);
    rk_list_add(l_countries, "IR", 2);
    rk_list_add(l_countries, "SY", 2);
    l_mccs = rk_list_new();
    rk_list_add(l_mccs, "0742", 4);
    rk_list_add(l_mccs, "5967", 4);
    rk_list_add(l_mccs, "-1", 2);
    lists[0] = (rk_named_list){.name = "high_risk_countries", .list = l_countries};
    lists[1] = (rk_named_list){.name = "mccs", .list = l_mccs};
    lists[2] = (rk_named_list){.name = "dyn", .dynamic = true, .dyn_index = 5};
    env = (rk_expr_env){.syms = syms, .nsyms = S__COUNT, .lists = lists, .nlists = 3,
                        .file = "t.yaml", .line = 1, .col = 1, .cont_col = 1};
    return rk_arena_init(&arena, 256);
}

static int teardown(void **state)
{
    rk_list_free(l_countries);
    rk_list_free(l_mccs);
    rk_arena_free(&arena);
    return 0;
}

static int reset(void **state)
{
    memset(slots, 0, sizeof slots);
    context[0] = '\0';
    rk_arena_reset(&arena);
    return 0;
}

/* "true", "false", "missing", "int 5", "float 0.5", "str 'abc'" */
static const char *render(rk_value v)
{
    static char buf[300];
    switch (v.type) {
    case RK_T_BOOL: snprintf(buf, sizeof buf, "%s", v.b ? "true" : "false"); break;
    case RK_T_INT: snprintf(buf, sizeof buf, "int %lld", (long long)v.i); break;
    case RK_T_FLOAT: snprintf(buf, sizeof buf, "float %.17g", v.f); break;
    case RK_T_STR: snprintf(buf, sizeof buf, "str '%.*s'", (int)v.len, v.s); break;
    default: snprintf(buf, sizeof buf, "missing"); break;
    }
    return buf;
}

static rk_value eval_with(const char *text, const rk_value *sl, rk_eval_ctx *ctx)
{
    rk_expr *e = NULL;
    rk_diag d;
    char buf[700];
    if (rk_expr_compile(text, strlen(text), &env, RK_T_MISSING, &e, &d) != 0)
        fail_msg("%s: %s", text, rk_diag_format(&d, buf, sizeof buf));
    rk_value v = rk_expr_eval(e, sl, ctx);
    rk_expr_free(e); /* strings in the result live in the slots or the arena, not in e */
    return v;
}

static rk_value eval(const char *text)
{
    rk_eval_ctx ctx = {.arena = &arena};
    rk_value v = eval_with(text, slots, &ctx);
    arith = ctx.arith_errors;
    return v;
}

/* Evaluates text and compares the rendered result, and arith_errors. */
static void check_n(const char *text, const char *want, uint64_t errors)
{
    const char *got = render(eval(text));
    if (strcmp(got, want) != 0)
        fail_msg("%s%s\n  got:  %s\n  want: %s", context, text, got, want);
    if (arith != errors)
        fail_msg("%s: arith_errors %llu, want %llu", text, (unsigned long long)arith,
                 (unsigned long long)errors);
}

static void check(const char *text, const char *want) { check_n(text, want, 0); }

static rk_value tri(int t) { return t == 2 ? rk_value_missing() : rk_value_bool(t); }

/* ---- three-valued logic ---- */

static void test_truth_tables(void **state)
{
    static const char *const name[] = {"false", "true", "missing"};
    /* [p][q] for p, q in false, true, missing */
    static const int and_tab[3][3] = {{0, 0, 0}, {0, 1, 2}, {0, 2, 2}};
    static const int or_tab[3][3] = {{0, 1, 2}, {1, 1, 1}, {2, 1, 2}};
    for (int p = 0; p < 3; p++) {
        for (int q = 0; q < 3; q++) {
            slots[S_P] = tri(p);
            slots[S_Q] = tri(q);
            snprintf(context, sizeof context, "p=%s q=%s: ", name[p], name[q]);
            check("p and q", name[and_tab[p][q]]);
            check("p or q", name[or_tab[p][q]]);
            check("not (p and q)", name[and_tab[p][q] == 2 ? 2 : !and_tab[p][q]]);
            /* the same through comparisons whose operands may be missing */
            slots[S_I] = p == 2 ? rk_value_missing() : rk_value_int(p ? 10 : 0);
            slots[S_S] = q == 2 ? rk_value_missing() : rk_value_str(q ? "KP" : "US", 2);
            check("i > 5 and s in @high_risk_countries", name[and_tab[p][q]]);
            check("i > 5 or s in ['KP']", name[or_tab[p][q]]);
        }
        slots[S_P] = tri(p);
        snprintf(context, sizeof context, "p=%s: ", name[p]);
        check("not p", name[p == 2 ? 2 : !p]);
        check("not not p", name[p]);
    }
}

static void test_comparisons_with_missing(void **state)
{
    slots[S_I] = rk_value_int(5);
    slots[S_X] = rk_value_float(5.0);
    slots[S_S] = rk_value_str("US", 2);
    slots[S_P] = rk_value_bool(true);
    static const char *const exprs[] = {
        "i == j", "i != j", "i < j", "i <= j", "i > j", "i >= j", "x == y", "x != y", "x < y",
        "j == 5", "5 != j",  "s == t", "s != t", "p == q", "p != q", "t in ['US']",
        "t not in ['US']", "j in [1]", "j not in @mccs", "t in @high_risk_countries",
        "not (j > 1)", "j + 1 > 0", "-j < 0", "y * 2 > 1", "j == i / 0",
    };
    for (size_t k = 0; k < sizeof exprs / sizeof exprs[0]; k++)
        check_n(exprs[k], "missing", strstr(exprs[k], "/ 0") ? 1 : 0);
    /* a deciding side makes the unknown irrelevant */
    check("j > 5 and false == p", "false");
    check("j > 5 or i == 5", "true");
    check("exists(j) or exists(i)", "true");
}

/* ---- arithmetic ---- */

static void test_int_arithmetic(void **state)
{
    slots[S_I] = rk_value_int(7);
    slots[S_J] = rk_value_int(-3);
    check("i + j", "int 4");
    check("i - j", "int 10");
    check("i * j", "int -21");
    check("i / j", "float -2.3333333333333335");
    check("i % j", "int 1");  /* sign of the dividend, as in C */
    check("j % i", "int -3");
    check("-i % 3", "int -1");
    check("-j", "int 3");
    check("i / 7", "float 1");
    check("i + 1h", "int 3600007");

    slots[S_I] = rk_value_int(INT64_MAX);
    check_n("i + 1", "missing", 1);
    check_n("i * 2", "missing", 1);
    check_n("-i - 2", "missing", 1);
    check("-i - 1", "int -9223372036854775808");
    check_n("i + 1 > 0 or i * 2 > 0", "missing", 2);
    slots[S_I] = rk_value_int(INT64_MIN);
    check_n("-i", "missing", 1);
    check_n("i - 1", "missing", 1);
    check_n("i % -1", "missing", 1);
    check_n("i * -1", "missing", 1);
    check("i % 1", "int 0");
    check("i / -1", "float 9.2233720368547758e+18"); /* true division is float: no overflow */
}

static void test_division_by_zero(void **state)
{
    slots[S_I] = rk_value_int(7);
    slots[S_J] = rk_value_int(0);
    slots[S_X] = rk_value_float(1.5);
    slots[S_Y] = rk_value_float(0.0);
    check_n("i / j", "missing", 1);
    check_n("i % j", "missing", 1);
    check_n("x / y", "missing", 1);
    check_n("x / -y", "missing", 1);
    check_n("i / y", "missing", 1);
    check_n("j / j", "missing", 1);
    check_n("i / j > 1 or i % j > 1 or x / y > 1", "missing", 3);
    check_n("i % j == 0 or true == true", "true", 0); /* folded: true decides */
    check_n("i % j == 0 or i == 7", "true", 1);       /* evaluated, then decided */
    check_n("not (i / j > 0)", "missing", 1);
    check_n("exists(i / j)", "false", 1);
    /* and short-circuit skips the division entirely */
    slots[S_P] = rk_value_bool(false);
    check_n("p and i / j > 0", "false", 0);
    slots[S_P] = rk_value_bool(true);
    check_n("p or i / j > 0", "true", 0);
    slots[S_P] = rk_value_missing();
    check_n("p and i / j > 0", "missing", 1);
}

static void test_float_arithmetic(void **state)
{
    slots[S_I] = rk_value_int(2);
    slots[S_X] = rk_value_float(0.5);
    slots[S_Y] = rk_value_float(1e308);
    check("x + i", "float 2.5");
    check("i - x", "float 1.5");
    check("x * i", "float 1");
    check("i / x", "float 4");
    check("-x", "float -0.5");
    check("x + 1e-3", "float 0.501");
    check_n("y * 10", "missing", 1);
    check_n("-y - y", "missing", 1);
    check("y / 0.5 > 0 or true", "true");
    check("i == 2.0", "true");
    check("i < x", "false");
    check("x < i", "true");
    check("i >= 2.0 and i <= 2.0", "true");
    check("x != 0.5", "false");
    check("0.1 + 0.2 == 0.3", "false"); /* doubles, honestly */
    check("i + 0.0", "float 2");
}

static void test_strings_and_bools(void **state)
{
    slots[S_S] = rk_value_str("a\0b", 3);
    slots[S_T] = rk_value_str("a\0c", 3);
    check("s == t", "false");
    check("s != t", "true");
    check("s == s", "true");
    slots[S_T] = rk_value_str("", 0);
    check("t == ''", "true");
    check("s == ''", "false");
    check("len(t)", "int 0");
    slots[S_P] = rk_value_bool(true);
    slots[S_Q] = rk_value_bool(false);
    check("p == q", "false");
    check("p != q", "true");
    check("p == true", "true");
    check("q == false", "true");
}

/* ---- built-in functions ---- */

static void test_functions(void **state)
{
    slots[RK_F_TS] = rk_value_int(INT64_C(1700000000000)); /* 2023-11-14T22:13:20Z, a Tuesday */
    slots[S_I] = rk_value_int(-5);
    slots[S_X] = rk_value_float(-2.5);
    slots[S_S] = rk_value_str("H\xc3\xa9llo-World", 12);
    check("exists(i)", "true");
    check("exists(j)", "false");
    check("exists(s)", "true");
    check("exists(t)", "false");
    check("exists(model.score)", "false");
    check("abs(i)", "int 5");
    check("abs(x)", "float 2.5");
    check("abs(-i)", "int 5");
    check("min(i, 3)", "int -5");
    check("max(i, 3)", "int 3");
    check("min(i, x)", "float -5");
    check("max(x, i)", "float -2.5");
    check("max(3, 3.5)", "float 3.5");
    check("log(1)", "float 0");
    check("log(abs(i)) > 1.6 and log(abs(i)) < 1.61", "true");
    check("log(0)", "missing");
    check("log(i)", "missing");
    check("log(x)", "missing");
    check("len(s)", "int 11");
    check("len('')", "int 0");
    check("lower(s)", "str 'h\xc3\xa9llo-world'");
    check("upper(s)", "str 'H\xc3\xa9LLO-WORLD'");
    check("upper('')", "str ''");
    check("starts_with(s, 'H\xc3\xa9')", "true");
    check("starts_with(s, 'h')", "false");
    check("starts_with(s, '')", "true");
    check("starts_with('ab', 'abc')", "false");
    check("ends_with(s, 'World')", "true");
    check("ends_with(s, 'world')", "false");
    check("ends_with(s, '')", "true");
    check("ends_with('ab', 'xab')", "false");
    check("hour(ts)", "int 22");
    check("weekday(ts)", "int 1");
    check("hour(0)", "int 0");
    check("weekday(0)", "int 3"); /* 1970-01-01, a Thursday */
    check("hour(-1)", "int 23");  /* 1969-12-31T23:59:59.999Z, a Wednesday */
    check("weekday(-1)", "int 2");
    check("weekday(-86400000 * 3)", "int 0");
    check("weekday(-86400000 * 3 - 1)", "int 6");
    check("hour(-9223372036854775808) >= 0", "true");
    check("weekday(9223372036854775807) >= 0", "true");
    check("age(ts - 1h)", "int 3600000");
    check("age(ts) == 0", "true");
    check("age(ts + 7d) == -7d", "true");
    check("age(i)", "int 1700000000005");
    check("age(j)", "missing");

    slots[RK_F_TS] = rk_value_missing();
    check("age(1)", "missing");
    slots[RK_F_TS] = rk_value_int(INT64_MIN);
    check_n("age(1)", "missing", 1);
    slots[S_I] = rk_value_int(INT64_MIN);
    check_n("abs(i)", "missing", 1);
}

/* Every function given a missing argument gives missing; exists gives false. */
static void test_functions_missing_args(void **state)
{
    for (int f = 0; f < RK_FN__COUNT; f++) {
        const rk_func *fn = &rk_funcs[f];
        char text[128];
        int n = snprintf(text, sizeof text, "%s(", fn->name);
        for (int a = 0; a < fn->arity; a++) {
            /* a missing value of the right type for argument a, the other one present */
            /* t, y and j are missing str, float and int names */
            const char *arg = fn->args[a] == RK_ARG_STR ? "t" : fn->args[a] == RK_ARG_NUM ? "y" : "j";
            n += snprintf(text + n, sizeof text - (size_t)n, "%s%s", a ? ", " : "", arg);
        }
        snprintf(text + n, sizeof text - (size_t)n, ")");
        check(text, f == RK_FN_EXISTS ? "false" : "missing");
        if (fn->arity == 2) {
            /* one known, one missing */
            snprintf(text, sizeof text, "%s(%s, %s)", fn->name,
                     fn->args[0] == RK_ARG_STR ? "'a'" : "1", fn->args[1] == RK_ARG_STR ? "t" : "j");
            check(text, "missing");
            snprintf(text, sizeof text, "%s(%s, %s)", fn->name,
                     fn->args[0] == RK_ARG_STR ? "t" : "j", fn->args[1] == RK_ARG_STR ? "'a'" : "1");
            check(text, "missing");
        }
    }
}

static void test_case_mapping_memory(void **state)
{
    rk_arena tiny;
    assert_int_equal(rk_arena_init(&tiny, 8), 0);
    slots[S_S] = rk_value_str("abcdefgh", 8);
    rk_eval_ctx ctx = {.arena = &tiny};
    assert_string_equal(render(eval_with("upper(s)", slots, &ctx)), "str 'ABCDEFGH'");
    /* exhausted: missing, never a crash; and the comparison on it is unknown */
    assert_string_equal(render(eval_with("upper(s)", slots, &ctx)), "missing");
    assert_string_equal(render(eval_with("upper(s) == 'X'", slots, &ctx)), "missing");
    rk_arena_reset(&tiny);
    assert_string_equal(render(eval_with("lower(upper(s))", slots, &ctx)), "missing");
    rk_arena_free(&tiny);
    /* no arena at all */
    rk_eval_ctx bare = {0};
    assert_string_equal(render(eval_with("lower(s)", slots, &bare)), "missing");
    assert_string_equal(render(eval_with("lower('')", slots, &bare)), "str ''");
}

/* ---- lists ---- */

static void test_lists(void **state)
{
    slots[RK_F_COUNTRY] = rk_value_str("KP", 2);
    slots[RK_F_IP_COUNTRY] = rk_value_str("US", 2);
    slots[RK_F_MCC] = rk_value_int(742);
    check("country in @high_risk_countries", "true");
    check("ip_country in @high_risk_countries", "false");
    check("country not in @high_risk_countries", "false");
    check("ip_country not in @high_risk_countries", "true");
    check("mcc in @mccs", "true"); /* "0742" in the list */
    check("mcc + 1 in @mccs", "false");
    check("mcc - 743 in @mccs", "true");
    check("mcc in [5967, 742]", "true");
    check("mcc in [-742]", "false");
    check("-mcc in [-742, 1]", "true");
    check("mcc in [1s]", "false");
    check("mcc + 258 in [1s]", "true");
    check("mcc in []", "false");
    check("mcc not in []", "true");
    check("country in []", "false");
    check("country in ['kp']", "false");
    check("upper(lower(country)) in ['KP']", "true");
    check("country in ['KP', 'KP', 'IR']", "true");
    check("card in @high_risk_countries", "missing");
    check("card not in []", "missing");
}

/* A stand-in for the store: "bad" and 7995 are members, "down" fails. */
static int dyn_calls, dyn_last_list;
static int fake_dyn_has(void *ud, int list, const rk_value *v)
{
    dyn_calls++;
    dyn_last_list = list;
    assert_ptr_equal(ud, &dyn_calls);
    if (v->type == RK_T_INT)
        return v->i == 7995;
    assert_int_equal(v->type, RK_T_STR);
    if (v->len == 4 && memcmp(v->s, "down", 4) == 0)
        return -1;
    return v->len == 3 && memcmp(v->s, "bad", 3) == 0;
}

/* `in` a dynamic list asks ctx->dyn_has: yes, no, or unknown when the
 * look-up fails; a missing operand is unknown without asking; without a
 * store (dyn_has NULL) every dynamic list is empty. */
static void test_dynamic_lists(void **state)
{
    static const struct {
        const char *card; /* NULL: missing */
        const char *in, *not_in;
    } rows[] = {
        {"bad", "true", "false"},
        {"good", "false", "true"},
        {"down", "missing", "missing"},
        {NULL, "missing", "missing"},
    };
    rk_eval_ctx ctx = {.arena = &arena, .dyn_has = fake_dyn_has, .dyn_ud = &dyn_calls};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        slots[RK_F_CARD] = rows[i].card ? rk_value_str(rows[i].card, (uint32_t)strlen(rows[i].card))
                                        : rk_value_missing();
        dyn_calls = 0;
        snprintf(context, sizeof context, "card %s: ", rows[i].card ? rows[i].card : "missing");
        const char *got = render(eval_with("card in @dyn", slots, &ctx));
        if (strcmp(got, rows[i].in) != 0)
            fail_msg("%sin: got %s, want %s", context, got, rows[i].in);
        got = render(eval_with("card not in @dyn", slots, &ctx));
        if (strcmp(got, rows[i].not_in) != 0)
            fail_msg("%snot in: got %s, want %s", context, got, rows[i].not_in);
        assert_int_equal(dyn_calls, rows[i].card ? 2 : 0);
    }
    assert_int_equal(dyn_last_list, 5);
    /* ints are handed over as ints (the store looks them up by decimal text) */
    slots[RK_F_MCC] = rk_value_int(7995);
    assert_string_equal(render(eval_with("mcc in @dyn", slots, &ctx)), "true");
    assert_string_equal(render(eval_with("mcc + 1 in @dyn", slots, &ctx)), "false");
    /* a literal is asked too: never folded, the store decides at run time */
    assert_string_equal(render(eval_with("'bad' in @dyn and true", slots, &ctx)), "true");
    /* three-valued logic around an unknown look-up */
    slots[RK_F_CARD] = rk_value_str("down", 4);
    assert_string_equal(render(eval_with("card in @dyn or mcc == 7995", slots, &ctx)), "true");
    assert_string_equal(render(eval_with("card in @dyn and mcc == 1", slots, &ctx)), "false");
    /* no store: empty */
    context[0] = '\0';
    check("card in @dyn", "false");
    check("card not in @dyn", "true");
    check("mcc in @dyn", "false");
    slots[RK_F_CARD] = rk_value_missing();
    check("card in @dyn", "missing");
}

/* ---- slots of unexpected types ---- */

static void test_loads(void **state)
{
    slots[S_I] = rk_value_str("5", 1);    /* a str where an int is declared */
    slots[S_S] = rk_value_int(5);         /* an int where a str is declared */
    slots[S_P] = rk_value_float(1.0);     /* a float where a bool is declared */
    slots[S_X] = rk_value_int(3);         /* an int where a float is declared: converted */
    slots[S_Y] = rk_value_float(0.0 / 0.0);
    check("i > 1", "missing");
    check("s == 'x'", "missing");
    check("len(s)", "missing");
    check("p or false", "missing");
    check("x == 3.0", "true");
    check("x + 0.5", "float 3.5");
    check("y == y", "missing"); /* NaN is missing */
    check("exists(y)", "false");

    /* no slots at all: every name is missing */
    rk_eval_ctx ctx = {.arena = &arena};
    assert_string_equal(render(eval_with("amount > 5 or 1 == 1", NULL, &ctx)), "true");
    assert_string_equal(render(eval_with("amount > 5", NULL, &ctx)), "missing");
    assert_string_equal(render(rk_expr_eval(NULL, slots, &ctx)), "missing");
}

/* ---- folding agrees with run time ---- */

static void test_folding_matches_runtime(void **state)
{
    static const char *const ops[] = {"+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">="};
    static const int64_t vals[] = {7, -7, 3, -3, 1, 0, INT64_C(4611686018427387904)};
    for (size_t a = 0; a < sizeof vals / sizeof vals[0]; a++)
        for (size_t b = 0; b < sizeof vals / sizeof vals[0]; b++)
            for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
                char folded[128], runtime[128];
                snprintf(folded, sizeof folded, "(%lld) %s (%lld)", (long long)vals[a], ops[o],
                         (long long)vals[b]);
                snprintf(runtime, sizeof runtime, "i %s j", ops[o]);
                slots[S_I] = rk_value_int(vals[a]);
                slots[S_J] = rk_value_int(vals[b]);
                char rt[300];
                snprintf(rt, sizeof rt, "%s", render(eval(runtime)));
                uint64_t rt_errors = arith;
                rk_expr *e = NULL;
                rk_diag d;
                int rc = rk_expr_compile(folded, strlen(folded), &env, RK_T_MISSING, &e, &d);
                if (rc == RK_ERANGE) { /* the compiler refuses what run time counts */
                    assert_true(rt_errors == 1);
                    assert_string_equal(rt, "missing");
                    continue;
                }
                assert_int_equal(rc, 0);
                rk_eval_ctx ctx = {.arena = &arena};
                const char *got = render(rk_expr_eval(e, slots, &ctx));
                rk_expr_free(e);
                if (strcmp(got, rt) != 0)
                    fail_msg("%s folds to %s, run time %s gives %s", folded, got, runtime, rt);
            }
}

/* The deepest expression the compiler accepts evaluates within the stack. */
static void test_deep_stack(void **state)
{
    char text[2048] = "";
    for (int k = 0; k < 62; k++)
        strcat(text, "i + (");
    strcat(text, "i + i");
    for (int k = 0; k < 62; k++)
        strcat(text, ")");
    slots[S_I] = rk_value_int(1);
    check(text, "int 64");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_truth_tables, reset),
        cmocka_unit_test_setup(test_comparisons_with_missing, reset),
        cmocka_unit_test_setup(test_int_arithmetic, reset),
        cmocka_unit_test_setup(test_division_by_zero, reset),
        cmocka_unit_test_setup(test_float_arithmetic, reset),
        cmocka_unit_test_setup(test_strings_and_bools, reset),
        cmocka_unit_test_setup(test_functions, reset),
        cmocka_unit_test_setup(test_functions_missing_args, reset),
        cmocka_unit_test_setup(test_case_mapping_memory, reset),
        cmocka_unit_test_setup(test_lists, reset),
        cmocka_unit_test_setup(test_dynamic_lists, reset),
        cmocka_unit_test_setup(test_loads, reset),
        cmocka_unit_test_setup(test_folding_matches_runtime, reset),
        cmocka_unit_test_setup(test_deep_stack, reset),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
