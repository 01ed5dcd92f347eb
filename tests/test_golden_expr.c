/* Runs tests/golden/expr.test, the golden cases of the expression language
 * (the format is described at the top of that file): each case compiles an
 * expression against a fixed environment, evaluates it over the given
 * fields and compares the result and the arithmetic-error count; each
 * %%FAIL case checks the exact diagnostic. Every failing case is reported
 * with its line number before the test fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "lib/err.h"
#include "proto/txn.h"
#include "rules/expr.h"

#define GOLDEN RK_SOURCE_DIR "/tests/golden/expr.test"

/* The environment the golden file is written against (see its header). */
static const struct {
    const char *name;
    rk_type type;
} extras[] = {
    {"account_age_days", RK_T_INT}, {"ratio", RK_T_FLOAT},       {"vip", RK_T_BOOL},
    {"acct_txn_1h", RK_T_INT},      {"acct_amt_24h", RK_T_INT}, {"dev_cards_24h", RK_T_INT},
    {"model.score", RK_T_FLOAT},
};
enum { NEXTRA = sizeof extras / sizeof extras[0], NSYMS = RK_F__STD + NEXTRA };

static const struct {
    const char *name;
    const char *members[4];
} list_defs[] = {
    {"high_risk_countries", {"KP", "IR", "SY"}},
    {"trusted_merchants", {"m_1", "m_2"}},
    {"risky_mccs", {"0742", "7995", "5967"}},
    {"blocked_cards", {"card_bad"}},
    {"mixed", {"1", "x"}},
    {"empty", {NULL}},
};
/* Dynamic lists, answered by golden_dyn_has as a store would: members by
 * text (an int by its decimal text); "dyn_down" is a store that fails. */
static const struct {
    const char *name;
    const char *members[4];
} dyn_defs[] = {
    {"dyn_cards", {"card_dyn", "7995"}},
    {"dyn_down", {NULL}},
};
enum {
    NSTATIC = sizeof list_defs / sizeof list_defs[0],
    NLISTS = NSTATIC + sizeof dyn_defs / sizeof dyn_defs[0],
};

static int golden_dyn_has(void *ud, int list, const rk_value *v)
{
    char num[24];
    const char *s = v->s;
    size_t len = v->len;
    if (strcmp(dyn_defs[list].name, "dyn_down") == 0)
        return -1;
    if (v->type == RK_T_INT) {
        len = (size_t)snprintf(num, sizeof num, "%lld", (long long)v->i);
        s = num;
    }
    for (int m = 0; m < 4 && dyn_defs[list].members[m]; m++)
        if (strlen(dyn_defs[list].members[m]) == len &&
            memcmp(dyn_defs[list].members[m], s, len) == 0)
            return 1;
    return 0;
}

typedef struct golden {
    rk_sym syms[NSYMS];           /* fields and extras, slot = index */
    rk_named_list lists[NLISTS];  /* the named lists */
    rk_expr_env env;              /* file "expr", line 1, column 1 */
    rk_value slots[RK_MAX_SLOTS]; /* the current case's input */
    char strings[4096];           /* decoded string inputs of the current case */
    size_t nstrings;              /* bytes of strings used */
    rk_arena arena;               /* for lower()/upper() */
    int cases;                    /* cases run */
    int failures;                 /* cases failed */
} golden;

static void setup_env(golden *g)
{
    for (int f = 0; f < RK_F__STD; f++)
        g->syms[f] = (rk_sym){rk_field_name(f), rk_field_type(f), f};
    for (int i = 0; i < NEXTRA; i++)
        g->syms[RK_F__STD + i] = (rk_sym){extras[i].name, extras[i].type, RK_F__STD + i};
    for (int i = 0; i < NLISTS - NSTATIC; i++)
        g->lists[NSTATIC + i] =
            (rk_named_list){.name = dyn_defs[i].name, .dynamic = true, .dyn_index = i};
    for (int i = 0; i < NSTATIC; i++) {
        rk_list *l = rk_list_new();
        for (int m = 0; m < 4 && list_defs[i].members[m]; m++)
            rk_list_add(l, list_defs[i].members[m], strlen(list_defs[i].members[m]));
        g->lists[i] = (rk_named_list){.name = list_defs[i].name, .list = l};
    }
    g->env = (rk_expr_env){.syms = g->syms, .nsyms = NSYMS, .lists = g->lists, .nlists = NLISTS,
                           .file = "expr", .line = 1, .col = 1, .cont_col = 1};
    rk_arena_init(&g->arena, 4096);
}

static void free_env(golden *g)
{
    for (int i = 0; i < NSTATIC; i++)
        rk_list_free((rk_list *)g->lists[i].list);
    rk_arena_free(&g->arena);
}

__attribute__((format(printf, 3, 4))) static void failed(golden *g, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: ", GOLDEN, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    g->failures++;
}

/* A double-quoted string at *p with \" \\ \n \t escapes, decoded into g->strings. */
static bool parse_string(golden *g, const char **p, rk_value *out)
{
    const char *s = *p + 1;
    char *dst = g->strings + g->nstrings;
    size_t n = 0, room = sizeof g->strings - g->nstrings;
    for (; *s && *s != '"'; s++) {
        char c = *s;
        if (c == '\\' && s[1]) {
            c = *++s;
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
        }
        if (n == room)
            return false;
        dst[n++] = c;
    }
    if (*s != '"')
        return false;
    *out = rk_value_str(dst, (uint32_t)n);
    g->nstrings += n;
    *p = s + 1;
    return true;
}

/* A value: true, false, missing, "string", an int, or a float (has '.', 'e', "inf" or "nan"). */
static bool parse_value(golden *g, const char **p, rk_value *out)
{
    const char *s = *p;
    size_t len = strcspn(s, " \t");
    if (*s == '"')
        return parse_string(g, p, out);
    char word[64];
    if (len == 0 || len >= sizeof word)
        return false;
    memcpy(word, s, len);
    word[len] = '\0';
    *p = s + len;
    char *end;
    if (strcmp(word, "true") == 0 || strcmp(word, "false") == 0)
        *out = rk_value_bool(word[0] == 't');
    else if (strcmp(word, "missing") == 0)
        *out = rk_value_missing();
    else if (strpbrk(word, ".eEn")) {
        *out = rk_value_float(strtod(word, &end));
        return *end == '\0';
    } else {
        *out = rk_value_int(strtoll(word, &end, 10));
        return *end == '\0';
    }
    return true;
}

/* The input line: "-" or name=value pairs. */
static bool parse_input(golden *g, int line, const char *s)
{
    memset(g->slots, 0, sizeof g->slots);
    g->nstrings = 0;
    if (strcmp(s, "-") == 0)
        return true;
    while (*s) {
        s += strspn(s, " \t");
        if (!*s)
            break;
        const char *eq = strchr(s, '=');
        if (!eq) {
            failed(g, line, "input: expected name=value at '%s'", s);
            return false;
        }
        int slot = -1;
        for (int i = 0; i < NSYMS; i++)
            if (strlen(g->syms[i].name) == (size_t)(eq - s) && memcmp(g->syms[i].name, s, (size_t)(eq - s)) == 0)
                slot = i;
        if (slot < 0) {
            failed(g, line, "input: unknown name '%.*s'", (int)(eq - s), s);
            return false;
        }
        s = eq + 1;
        if (!parse_value(g, &s, &g->slots[slot])) {
            failed(g, line, "input: bad value for '%s'", g->syms[slot].name);
            return false;
        }
    }
    return true;
}

static void render(rk_value v, char *buf, size_t size)
{
    switch (v.type) {
    case RK_T_BOOL: snprintf(buf, size, "%s", v.b ? "true" : "false"); break;
    case RK_T_INT: snprintf(buf, size, "%lld", (long long)v.i); break;
    case RK_T_FLOAT: snprintf(buf, size, "%.17g (float)", v.f); break;
    case RK_T_STR: snprintf(buf, size, "\"%.*s\"", (int)v.len, v.s); break;
    default: snprintf(buf, size, "missing"); break;
    }
}

static bool same(rk_value a, rk_value b)
{
    if (a.type != b.type)
        return false;
    switch (a.type) {
    case RK_T_BOOL: return a.b == b.b;
    case RK_T_INT: return a.i == b.i;
    case RK_T_FLOAT: return a.f == b.f || fabs(a.f - b.f) <= 1e-12 * fmax(fabs(a.f), fabs(b.f));
    case RK_T_STR: return a.len == b.len && memcmp(a.s, b.s, a.len) == 0;
    default: return true;
    }
}

static void run_case(golden *g, int line, const char *expr, const char *input, const char *result)
{
    g->cases++;
    if (!parse_input(g, line + 1, input))
        return;
    /* the expected value, then an optional " !arith=N" */
    char want_text[512];
    snprintf(want_text, sizeof want_text, "%s", result);
    unsigned long long want_arith = 0;
    char *bang = strstr(want_text, " !arith=");
    if (bang) {
        want_arith = strtoull(bang + 8, NULL, 10);
        *bang = '\0';
    }
    rk_value want;
    const char *p = want_text;
    if (!parse_value(g, &p, &want) || *p) {
        failed(g, line + 2, "bad expected value '%s'", result);
        return;
    }

    rk_expr *e = NULL;
    rk_diag d;
    char buf[700], got[600], exp[600];
    if (rk_expr_compile(expr, strlen(expr), &g->env, RK_T_MISSING, &e, &d) != 0) {
        failed(g, line, "%s: does not compile: %s", expr, rk_diag_format(&d, buf, sizeof buf));
        return;
    }
    rk_arena_reset(&g->arena);
    rk_eval_ctx ctx = {.arena = &g->arena, .dyn_has = golden_dyn_has};
    rk_value v = rk_expr_eval(e, g->slots, &ctx);
    render(v, got, sizeof got);
    render(want, exp, sizeof exp);
    if (!same(v, want))
        failed(g, line, "%s\n  got:  %s\n  want: %s", expr, got, exp);
    else if (ctx.arith_errors != want_arith)
        failed(g, line, "%s: arith_errors %llu, want %llu", expr,
               (unsigned long long)ctx.arith_errors, want_arith);
    rk_expr_free(e);
}

static void run_fail_case(golden *g, int line, const char *expr, const char *want)
{
    g->cases++;
    rk_expr *e = NULL;
    rk_diag d;
    char buf[700];
    if (rk_expr_compile(expr, strlen(expr), &g->env, RK_T_MISSING, &e, &d) == 0) {
        rk_expr_free(e);
        failed(g, line, "%s: compiled, want %s", expr, want);
        return;
    }
    rk_diag_format(&d, buf, sizeof buf);
    if (strcmp(buf, want) != 0)
        failed(g, line, "%s\n  got:  %s\n  want: %s", expr, buf, want);
}

static void test_golden(void **state)
{
    FILE *f = fopen(GOLDEN, "r");
    assert_non_null(f);
    golden *g = calloc(1, sizeof *g);
    setup_env(g);

    char *lines[4]; /* the block being read; a case has at most 3 lines (%%FAIL + 2) */
    int first = 0, n = 0, lineno = 0;
    char text[1024];
    bool more = true;
    while (more) {
        more = fgets(text, sizeof text, f) != NULL;
        lineno += more;
        if (more) {
            text[strcspn(text, "\n")] = '\0';
            if (text[0] == '#')
                continue;
            if (text[0]) {
                if (n == 4) {
                    failed(g, lineno, "a case has at most 3 lines");
                    n = 0;
                    continue;
                }
                if (n == 0)
                    first = lineno;
                lines[n++] = strdup(text);
                continue;
            }
        }
        /* a blank line or the end of the file closes a block */
        if (n == 3 && strcmp(lines[0], "%%FAIL") == 0)
            run_fail_case(g, first + 1, lines[1], lines[2]);
        else if (n == 3)
            run_case(g, first, lines[0], lines[1], lines[2]);
        else if (n)
            failed(g, first, "a case needs 3 lines, got %d", n);
        for (int i = 0; i < n; i++)
            free(lines[i]);
        n = 0;
    }
    fclose(f);
    print_message("%d golden cases, %d failed\n", g->cases, g->failures);
    int failures = g->failures, cases = g->cases;
    free_env(g);
    free(g);
    assert_int_equal(failures, 0);
    assert_true(cases >= 80);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_golden)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
