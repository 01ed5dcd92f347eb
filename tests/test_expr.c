/* Tests for the expression compiler: precedence and associativity (by the
 * parser's tree dump), constant folding and the flat code (by disassembly),
 * static types, every diagnostic by its exact `file:line:col: message` text
 * and error code, the nesting and complexity limits, and the position
 * mapping over multi-line (YAML block scalar) text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/err.h"
#include "proto/txn.h"
#include "rules/expr.h"
#include "rules/expr_int.h"
#include "rules/parse.h"

/* The environment: every standard field at its own slot, a few schema extras,
 * counters and model.score after them, and three named lists. */
enum { S_AGE_DAYS = RK_F__STD, S_RATIO, S_VIP, S_TXN_1H, S_DEV_CARDS, S_MODEL, S__COUNT };
static rk_sym syms[S__COUNT];
static rk_list *l_countries, *l_mccs, *l_mixed;
static rk_named_list lists[4];
static rk_expr_env env;

static int setup(void **state)
{
    for (int f = 0; f < RK_F__STD; f++)
        syms[f] = (rk_sym){rk_field_name(f), rk_field_type(f), f};
    syms[S_AGE_DAYS] = (rk_sym){"account_age_days", RK_T_INT, S_AGE_DAYS};
    syms[S_RATIO] = (rk_sym){"ratio", RK_T_FLOAT, S_RATIO};
    syms[S_VIP] = (rk_sym){"vip", RK_T_BOOL, S_VIP};
    syms[S_TXN_1H] = (rk_sym){"acct_txn_1h", RK_T_INT, S_TXN_1H};
    syms[S_DEV_CARDS] = (rk_sym){"dev_cards_24h", RK_T_INT, S_DEV_CARDS};
    syms[S_MODEL] = (rk_sym){"model.score", RK_T_FLOAT, S_MODEL};
    l_countries = rk_list_new();
    l_mccs = rk_list_new();
    l_mixed = rk_list_new();
    rk_list_add(l_countries, "KP", 2);
    rk_list_add(l_countries, "IR", 2);
    rk_list_add_int(l_mccs, 5967);
    rk_list_add(l_mccs, "0742", 4);
    rk_list_add(l_mixed, "1", 1);
    rk_list_add(l_mixed, "x", 1);
    lists[0] = (rk_named_list){.name = "high_risk_countries", .list = l_countries};
    lists[1] = (rk_named_list){.name = "risky_mccs", .list = l_mccs};
    lists[2] = (rk_named_list){.name = "mixed", .list = l_mixed};
    lists[3] = (rk_named_list){.name = "blocked_cards", .dynamic = true, .dyn_index = 2};
    env = (rk_expr_env){.syms = syms, .nsyms = S__COUNT, .lists = lists, .nlists = 4,
                        .file = "r.yaml", .line = 1, .col = 1, .cont_col = 1};
    return 0;
}

static int teardown(void **state)
{
    rk_list_free(l_countries);
    rk_list_free(l_mccs);
    rk_list_free(l_mixed);
    return 0;
}

static void check_str(const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        fail_msg("%s\n  got:  %s\n  want: %s", what, got, want);
}

/* ---- precedence ---- */

static void check_tree(const char *text, const char *want)
{
    rk_src src = {.text = text, .len = strlen(text), .env = &env};
    rk_pool pool = {0};
    rk_node *root;
    char buf[512];
    if (rk_parse(&src, &pool, &root) != 0)
        fail_msg("%s: does not parse", text);
    check_str(text, rk_node_dump(root, buf, sizeof buf), want);
    rk_pool_free(&pool);
}

static void test_precedence(void **state)
{
    check_tree("a or b and c", "(or a (and b c))");
    check_tree("a and b or c", "(or (and a b) c)");
    check_tree("a or b or c", "(or (or a b) c)");
    check_tree("not a and b", "(and (not a) b)");
    check_tree("not a == b", "(not (== a b))");
    check_tree("not not a", "(not (not a))");
    check_tree("a == b and c != d", "(and (== a b) (!= c d))");
    check_tree("a + b < c * d", "(< (+ a b) (* c d))");
    check_tree("a + b * c", "(+ a (* b c))");
    check_tree("a - b - c", "(- (- a b) c)");
    check_tree("a / b * c % d", "(% (* (/ a b) c) d)");
    check_tree("-a * b", "(* (- a) b)");
    check_tree("- -a", "(- (- a))");
    check_tree("a - -1", "(- a (- 1))");
    check_tree("(a or b) and c", "(and (or a b) c)");
    check_tree("(a + b) * c", "(* (+ a b) c)");
    check_tree("a + 1 in [1, 2] or b not in @l", "(or (in (+ a 1) [1 2]) (not-in b @l))");
    check_tree("not a in @l", "(not (in a @l))");
    check_tree("f(a, b + 1, g())", "(f a (+ b 1) (g))");
    check_tree("model.score >= 0.9", "(>= model.score 0.9)");
    check_tree("x in [-1, 'a', true, 1.5, 2h, -3.0]", "(in x [-1 'a' true 1.5 7200000 -3.0])");
    check_tree("x in []", "(in x [])");
    check_tree("-9223372036854775808", "-9223372036854775808");
    check_tree("9223372036854775807", "9223372036854775807");
    check_tree("'it\\'s' == \"a\\tb\"", "(== 'it's' 'a\tb')");
    check_tree("  a\n  and\n  b  ", "(and a b)");
}

/* ---- compiled code and folding ---- */

static rk_expr *compile_ok(const char *text, rk_type want)
{
    rk_expr *e = NULL;
    rk_diag d = {0};
    char buf[700];
    if (rk_expr_compile(text, strlen(text), &env, want, &e, &d) != 0)
        fail_msg("%s: %s", text, rk_diag_format(&d, buf, sizeof buf));
    return e;
}

static void check_code(const char *text, const char *want)
{
    rk_expr *e = compile_ok(text, RK_T_MISSING);
    char buf[1024];
    rk_expr_disasm(e, buf, sizeof buf);
    rk_expr_free(e);
    check_str(text, buf, want);
}

static void test_folding(void **state)
{
    check_code("1 + 2 * 3", "CONST 7\n");
    check_code("(1 + 2) * 3 - 4 % 3", "CONST 8\n");
    check_code("1 / 2", "CONST 0.5\n");
    check_code("2.5 * 2", "CONST 5\n");
    check_code("-(3)", "CONST -3\n");
    check_code("1h + 30m", "CONST 5400000\n");
    check_code("amount > 10 * 1000", "GT_I_SK 2 10000\n");
    check_code("amount > 1.5", "LOAD_I 2\nI2F\nCONST 1.5\nGT_F\n");
    check_code("ratio + 1", "LOAD_F 18\nCONST 1\nADD_F\n");
    check_code("amount / 2", "LOAD_I 2\nI2F\nCONST 2\nDIV_F\n");
    check_code("not true", "CONST false\n");
    check_code("1 < 2 and 'a' != 'b'", "CONST true\n");
    check_code("false and amount > 5", "CONST false\n");
    check_code("amount > 5 and false", "CONST false\n");
    check_code("true or vip", "CONST true\n");
    check_code("vip or true", "CONST true\n");
    check_code("true and vip", "LOAD_B 19\n");
    check_code("vip or false", "LOAD_B 19\n");
    check_code("vip and not false", "LOAD_B 19\n");
    check_code("lower('ABC') == 'abc'", "CONST true\n");
    check_code("upper('abc')", "CONST 'ABC'\n");
    check_code("len('h\xc3\xa9llo')", "CONST 5\n");
    check_code("exists(1)", "CONST true\n");
    check_code("log(0)", "CONST missing\n");
    check_code("log(0) > 1", "CONST missing\n");
    check_code("min(1, 2.5)", "CONST 1\n");
    check_code("max(amount, 2.5)", "LOAD_I 2\nI2F\nCONST 2.5\nCALL max\n");
    check_code("hour(0) + weekday(0)", "CONST 3\n");
    check_code("age(5)", "CONST 5\nCALL age\n"); /* reads the transaction: never folded */
    check_code("'KP' in ['KP', 'IR']", "CONST true\n");
    check_code("3 not in [1, 2]", "CONST true\n");
    check_code("'KP' in @high_risk_countries", "CONST 'KP'\nIN_S 0\n");
    check_code("country not in ['US']", "LOAD_S 13\nIN_S 0 not\n");
    check_code("mcc in @risky_mccs", "LOAD_I 16\nIN_I 0\n");
    /* dynamic lists are asked at run time, whatever the operand */
    check_code("card in @blocked_cards", "LOAD_S 8\nIN_DYN 2\n");
    check_code("mcc not in @blocked_cards", "LOAD_I 16\nIN_DYN 2 not\n");
    check_code("'tok_1' in @blocked_cards", "CONST 'tok_1'\nIN_DYN 2\n");
    check_code("false and card in @blocked_cards", "CONST false\n");
    check_code("amount >= 100000 and country != card_country",
               "GE_I_SK 2 100000\nJF 6\nLOAD_S 13\nLOAD_S 15\nNE_S\nAND\n");
    /* `name OP constant` is one instruction, when the types line up */
    check_code("country == 'US'", "EQ_S_SK 13 'US'\n");
    check_code("country != 'US'", "NE_S_SK 13 'US'\n");
    check_code("model.score >= 0.9", "GE_F_SK 22 0.9\n");
    check_code("ratio < 1", "LT_F_SK 18 1\n");
    check_code("ratio > log(0)", "LOAD_F 18\nCONST missing\nGT_F\n");
    check_code("vip == true", "LOAD_B 19\nCONST true\nEQ_B\n");
    check_code("5 < amount", "CONST 5\nLOAD_I 2\nLT_I\n");
    check_code("amount == mcc", "LOAD_I 2\nLOAD_I 16\nEQ_I\n");
    check_code("vip or not vip", "LOAD_B 19\nJT 5\nLOAD_B 19\nNOT\nOR\n");
    check_code("-amount", "LOAD_I 2\nNEG_I\n");
    check_code("-ratio", "LOAD_F 18\nNEG_F\n");
    check_code("-9223372036854775807 - 1", "CONST -9223372036854775808\n");
}

static void check_type(const char *text, rk_type want)
{
    rk_expr *e = compile_ok(text, RK_T_MISSING);
    if (rk_expr_type(e) != want)
        fail_msg("%s: type %s, want %s", text, rk_type_name(rk_expr_type(e)), rk_type_name(want));
    rk_expr_free(e);
}

static void test_types(void **state)
{
    check_type("amount + 1", RK_T_INT);
    check_type("amount * 1.0", RK_T_FLOAT);
    check_type("amount / 1", RK_T_FLOAT);
    check_type("amount % 7", RK_T_INT);
    check_type("-amount", RK_T_INT);
    check_type("-ratio", RK_T_FLOAT);
    check_type("country", RK_T_STR);
    check_type("lower(country)", RK_T_STR);
    check_type("abs(amount)", RK_T_INT);
    check_type("abs(ratio)", RK_T_FLOAT);
    check_type("min(amount, mcc)", RK_T_INT);
    check_type("min(amount, ratio)", RK_T_FLOAT);
    check_type("log(amount)", RK_T_FLOAT);
    check_type("len(country)", RK_T_INT);
    check_type("hour(ts)", RK_T_INT);
    check_type("age(ts)", RK_T_INT);
    check_type("exists(vip)", RK_T_BOOL);
    check_type("30s", RK_T_INT);
    check_type("model.score", RK_T_FLOAT);
    check_type("amount == ratio", RK_T_BOOL);
    check_type("country in @high_risk_countries", RK_T_BOOL);
    check_type("vip", RK_T_BOOL);
    assert_int_equal(rk_expr_type(NULL), RK_T_MISSING);
}

/* ---- diagnostics ---- */

typedef struct diag_case {
    const char *text; /* the expression */
    int want;         /* the type required: RK_T_MISSING or RK_T_BOOL */
    int code;         /* the error code */
    const char *diag; /* the formatted diagnostic */
} diag_case;

static void check_diags(const diag_case *cases, size_t n, const rk_expr_env *e)
{
    for (size_t i = 0; i < n; i++) {
        rk_expr *out = (rk_expr *)&out; /* must stay untouched on error */
        rk_expr *const sentinel = out;
        rk_diag d = {0};
        char buf[700];
        int rc = rk_expr_compile(cases[i].text, strlen(cases[i].text), e, cases[i].want, &out, &d);
        if (rc == 0) {
            rk_expr_free(out);
            fail_msg("%s: compiled, want %s", cases[i].text, cases[i].diag);
        }
        check_str(cases[i].text, rk_diag_format(&d, buf, sizeof buf), cases[i].diag);
        if (rc != cases[i].code)
            fail_msg("%s: code %d (%s), want %d", cases[i].text, rc, rk_strerror(rc), cases[i].code);
        assert_ptr_equal(out, sentinel);
    }
}

#define ANY RK_T_MISSING
#define BOOL RK_T_BOOL

static void test_name_errors(void **state)
{
    static const diag_case cases[] = {
        {"amout > 5", ANY, RK_ENOTFOUND, "r.yaml:1:1: unknown field 'amout' (did you mean 'amount'?)"},
        {"amount > 5 and contry == 'US'", ANY, RK_ENOTFOUND,
         "r.yaml:1:16: unknown field 'contry' (did you mean 'country'?)"},
        {"model.scor > 0.5", ANY, RK_ENOTFOUND,
         "r.yaml:1:1: unknown field 'model.scor' (did you mean 'model.score'?)"},
        {"velocity > 5", ANY, RK_ENOTFOUND, "r.yaml:1:1: unknown field 'velocity'"},
        {"len", ANY, RK_ENOTFOUND, "r.yaml:1:1: unknown field 'len'"},
        {"lenght(country) > 2", ANY, RK_ENOTFOUND,
         "r.yaml:1:1: unknown function 'lenght' (did you mean 'len'?)"},
        {"1 + frobnicate(1)", ANY, RK_ENOTFOUND, "r.yaml:1:5: unknown function 'frobnicate'"},
        {"amount(1)", ANY, RK_ENOTFOUND, "r.yaml:1:1: unknown function 'amount'"},
        {"country in @high_risk_country", ANY, RK_ENOTFOUND,
         "r.yaml:1:12: unknown list 'high_risk_country' (did you mean 'high_risk_countries'?)"},
        {"country not in @nope", ANY, RK_ENOTFOUND, "r.yaml:1:16: unknown list 'nope'"},
    };
    check_diags(cases, sizeof cases / sizeof cases[0], &env);
}

/* An environment may show every name but let only the first nvisible be
 * read (a counter's filter may not read counters): the others are refused by
 * name, and never suggested for a typo. */
static void test_hidden_names(void **state)
{
    rk_expr_env e = env;
    e.nvisible = S_TXN_1H;
    e.hidden_why = "a counter's 'when' reads request fields, not counters";
    static const diag_case cases[] = {
        {"acct_txn_1h > 5", BOOL, RK_EINVAL,
         "r.yaml:1:1: 'acct_txn_1h' cannot be used here (a counter's 'when' reads request "
         "fields, not counters)"},
        {"amount > 1 and model.score > 0.5", BOOL, RK_EINVAL,
         "r.yaml:1:16: 'model.score' cannot be used here (a counter's 'when' reads request "
         "fields, not counters)"},
        {"acct_txn_1 > 5", BOOL, RK_ENOTFOUND, "r.yaml:1:1: unknown field 'acct_txn_1'"},
        {"ratio_ > 1", BOOL, RK_ENOTFOUND, "r.yaml:1:1: unknown field 'ratio_' (did you mean 'ratio'?)"},
    };
    check_diags(cases, sizeof cases / sizeof cases[0], &e);
    rk_expr *x = NULL;
    assert_int_equal(rk_expr_compile("vip and account_age_days < 3", 28, &e, BOOL, &x, NULL), 0);
    rk_expr_free(x);
    e.hidden_why = NULL;
    rk_diag d;
    char buf[700];
    assert_int_equal(rk_expr_compile("vip or acct_txn_1h > 1", 22, &e, BOOL, &x, &d), RK_EINVAL);
    check_str("no reason", rk_diag_format(&d, buf, sizeof buf),
              "r.yaml:1:8: 'acct_txn_1h' cannot be used here (not allowed)");
}

static void test_type_errors(void **state)
{
    static const diag_case cases[] = {
        {"min(amount)", ANY, RK_ETYPE, "r.yaml:1:1: function 'min' takes 2 arguments, got 1"},
        {"len()", ANY, RK_ETYPE, "r.yaml:1:1: function 'len' takes 1 argument, got 0"},
        {"len('a', 'b')", ANY, RK_ETYPE, "r.yaml:1:1: function 'len' takes 1 argument, got 2"},
        {"len(amount) > 2", ANY, RK_ETYPE, "r.yaml:1:5: function 'len' expects str for argument 1, got int"},
        {"abs(country)", ANY, RK_ETYPE,
         "r.yaml:1:5: function 'abs' expects int or float for argument 1, got str"},
        {"starts_with(country,  (5 + 1))", ANY, RK_ETYPE,
         "r.yaml:1:23: function 'starts_with' expects str for argument 2, got int"},
        {"hour(1.5)", ANY, RK_ETYPE, "r.yaml:1:6: function 'hour' expects int for argument 1, got float"},
        {"age(ratio)", ANY, RK_ETYPE, "r.yaml:1:5: function 'age' expects int for argument 1, got float"},
        {"country < 'US'", ANY, RK_ETYPE, "r.yaml:1:9: cannot order str values with '<'"},
        {"vip >= true", ANY, RK_ETYPE, "r.yaml:1:5: cannot order bool values with '>='"},
        {"country == 5", ANY, RK_ETYPE, "r.yaml:1:9: cannot compare str with int"},
        {"amount > \"x\"", ANY, RK_ETYPE, "r.yaml:1:8: cannot compare int with str"},
        {"vip != 1.5", ANY, RK_ETYPE, "r.yaml:1:5: cannot compare bool with float"},
        {"country == vip", ANY, RK_ETYPE, "r.yaml:1:9: cannot compare str with bool"},
        {"amount and vip", ANY, RK_ETYPE, "r.yaml:1:8: 'and' expects bool operands, got int"},
        {"vip or country", ANY, RK_ETYPE, "r.yaml:1:5: 'or' expects bool operands, got str"},
        {"not amount", ANY, RK_ETYPE, "r.yaml:1:1: 'not' expects a bool operand, got int"},
        {"-country", ANY, RK_ETYPE, "r.yaml:1:1: '-' expects a numeric operand, got str"},
        {"amount + country", ANY, RK_ETYPE, "r.yaml:1:8: '+' expects numeric operands, got str"},
        {"vip * 2", ANY, RK_ETYPE, "r.yaml:1:5: '*' expects numeric operands, got bool"},
        {"amount % 1.5", ANY, RK_ETYPE, "r.yaml:1:8: '%' expects int operands, got float"},
        {"ratio % 2", ANY, RK_ETYPE, "r.yaml:1:7: '%' expects int operands, got float"},
        {"ratio in [1]", ANY, RK_ETYPE, "r.yaml:1:7: 'in' expects a str or int on the left, got float"},
        {"vip in @blocked_cards", ANY, RK_ETYPE,
         "r.yaml:1:5: 'in' expects a str or int on the left, got bool"},
        {"vip not in [true]", ANY, RK_ETYPE,
         "r.yaml:1:5: 'not in' expects a str or int on the left, got bool"},
        {"mcc in ['5967']", ANY, RK_ETYPE, "r.yaml:1:9: set members must be int like the left side, got str"},
        {"country in ['US', 5]", ANY, RK_ETYPE,
         "r.yaml:1:19: set members must be str like the left side, got int"},
        {"mcc in [1, -2.5]", ANY, RK_ETYPE,
         "r.yaml:1:12: set members must be int like the left side, got float"},
        {"country in [true]", ANY, RK_ETYPE,
         "r.yaml:1:13: set members must be str like the left side, got bool"},
        {"mcc in @mixed", ANY, RK_ETYPE,
         "r.yaml:1:8: list 'mixed' has non-integer members; cannot test int 'mcc'"},
        {"mcc + 1 not in @high_risk_countries", ANY, RK_ETYPE,
         "r.yaml:1:16: list 'high_risk_countries' has non-integer members; cannot test an int expression"},
        {"amount + 1", BOOL, RK_ETYPE, "r.yaml:1:1: expected a bool expression, got int"},
        {"   (amount)", BOOL, RK_ETYPE, "r.yaml:1:4: expected a bool expression, got int"},
        {"country", BOOL, RK_ETYPE, "r.yaml:1:1: expected a bool expression, got str"},
        {"1 / 0", ANY, RK_ERANGE, "r.yaml:1:3: division by zero"},
        {"amount > 5 % 0", ANY, RK_ERANGE, "r.yaml:1:12: division by zero"},
        {"1.5 / 0.0", ANY, RK_ERANGE, "r.yaml:1:5: division by zero"},
        {"2.5 / (2 - 2)", ANY, RK_ERANGE, "r.yaml:1:5: division by zero"},
        {"9223372036854775807 + 1", ANY, RK_ERANGE,
         "r.yaml:1:21: arithmetic overflow in constant expression"},
        {"-(-9223372036854775808)", ANY, RK_ERANGE,
         "r.yaml:1:1: arithmetic overflow in constant expression"},
        {"-9223372036854775808 % -1", ANY, RK_ERANGE,
         "r.yaml:1:22: arithmetic overflow in constant expression"},
        {"abs(-9223372036854775808)", ANY, RK_ERANGE,
         "r.yaml:1:1: arithmetic overflow in constant expression"},
        {"1e308 * 10", ANY, RK_ERANGE, "r.yaml:1:7: arithmetic overflow in constant expression"},
    };
    check_diags(cases, sizeof cases / sizeof cases[0], &env);
}

static void test_syntax_errors(void **state)
{
    static const diag_case cases[] = {
        {"", ANY, RK_EPARSE, "r.yaml:1:1: unexpected end of expression"},
        {"   ", ANY, RK_EPARSE, "r.yaml:1:1: unexpected end of expression"},
        {"amount > 5 and", ANY, RK_EPARSE, "r.yaml:1:15: unexpected end of expression"},
        {"amount >  ", ANY, RK_EPARSE, "r.yaml:1:9: unexpected end of expression"},
        {"(amount > 5", ANY, RK_EPARSE, "r.yaml:1:12: expected ')' but found end of expression"},
        {"(amount > 5 country)", ANY, RK_EPARSE, "r.yaml:1:13: expected ')' but found 'country'"},
        {"(amount > 5 and)", ANY, RK_EPARSE, "r.yaml:1:16: expected an expression but found ')'"},
        {")", ANY, RK_EPARSE, "r.yaml:1:1: expected an expression but found ')'"},
        {"amount > and", ANY, RK_EPARSE, "r.yaml:1:10: expected an expression but found 'and'"},
        {"@high_risk_countries", ANY, RK_EPARSE,
         "r.yaml:1:1: expected an expression but found '@high_risk_countries'"},
        {"min(1 2)", ANY, RK_EPARSE, "r.yaml:1:7: expected ',' or ')' but found '2'"},
        {"min(1,)", ANY, RK_EPARSE, "r.yaml:1:7: expected an expression but found ')'"},
        {"len(country", ANY, RK_EPARSE, "r.yaml:1:12: expected ',' or ')' but found end of expression"},
        {"amount > 5 5", ANY, RK_EPARSE, "r.yaml:1:12: expected end of expression but found '5'"},
        {"amount > 5)", ANY, RK_EPARSE, "r.yaml:1:11: expected end of expression but found ')'"},
        {"1 < amount < 10", ANY, RK_EPARSE,
         "r.yaml:1:12: comparison operators cannot be chained (use 'and')"},
        {"country in ['US'] == true", ANY, RK_EPARSE,
         "r.yaml:1:19: comparison operators cannot be chained (use 'and')"},
        {"country not ['US']", ANY, RK_EPARSE, "r.yaml:1:13: expected 'in' after 'not' but found '['"},
        {"country in 'US'", ANY, RK_EPARSE,
         "r.yaml:1:12: expected '[' or '@list' after 'in' but found ''US''"},
        {"country in ['US' 'GB']", ANY, RK_EPARSE, "r.yaml:1:18: expected ',' or ']' but found ''GB''"},
        {"country in [amount]", ANY, RK_EPARSE,
         "r.yaml:1:13: expected a literal in the set but found 'amount'"},
        {"country in ['US',]", ANY, RK_EPARSE, "r.yaml:1:18: expected a literal in the set but found ']'"},
        {"country in ['US'", ANY, RK_EPARSE,
         "r.yaml:1:17: expected ',' or ']' but found end of expression"},
        {"x in [-'a']", ANY, RK_EPARSE, "r.yaml:1:8: expected a number after '-' but found ''a''"},
        {"x in [-true]", ANY, RK_EPARSE, "r.yaml:1:8: expected a number after '-' but found 'true'"},
        {"amount > 9223372036854775808", ANY, RK_EPARSE, "r.yaml:1:10: integer literal out of range"},
        {"x in [9223372036854775808]", ANY, RK_EPARSE, "r.yaml:1:7: integer literal out of range"},
        {"country == 'US", ANY, RK_EPARSE, "r.yaml:1:12: unterminated string"},
        {"amount > $5", ANY, RK_EPARSE, "r.yaml:1:10: unexpected character '$'"},
        {"country = 'US'", ANY, RK_EPARSE, "r.yaml:1:9: unexpected character '=' (did you mean '=='?)"},
    };
    check_diags(cases, sizeof cases / sizeof cases[0], &env);
}

/* text of n copies of s, then tail */
static char *repeat(const char *s, int n, const char *tail)
{
    size_t len = strlen(s), tlen = strlen(tail);
    char *buf = malloc(len * (size_t)n + tlen + 1);
    for (int i = 0; i < n; i++)
        memcpy(buf + len * (size_t)i, s, len);
    memcpy(buf + len * (size_t)n, tail, tlen + 1);
    return buf;
}

static int compile_text(char *text, rk_type want, rk_diag *d)
{
    rk_expr *e = NULL;
    int rc = rk_expr_compile(text, strlen(text), &env, want, &e, d);
    rk_expr_free(e);
    free(text);
    return rc;
}

static void test_limits(void **state)
{
    rk_diag d;
    char buf[700];
    /* 64 levels of parentheses are fine, 65 are not */
    char *t = repeat("(", 64, "amount");
    char *t2 = repeat(")", 64, "");
    char *text = malloc(strlen(t) + strlen(t2) + 1);
    strcpy(text, t);
    strcat(text, t2);
    free(t);
    free(t2);
    assert_int_equal(compile_text(text, ANY, &d), 0);
    assert_int_equal(compile_text(repeat("(", 65, "amount"), ANY, &d), RK_EPARSE);
    check_str("65 parens", rk_diag_format(&d, buf, sizeof buf),
              "r.yaml:1:65: expression nested too deeply (limit 64)");
    assert_int_equal(compile_text(repeat("not ", 64, "vip"), BOOL, &d), 0);
    assert_int_equal(compile_text(repeat("not ", 65, "vip"), BOOL, &d), RK_EPARSE);
    check_str("65 nots", rk_diag_format(&d, buf, sizeof buf),
              "r.yaml:1:257: expression nested too deeply (limit 64)");
    assert_int_equal(compile_text(repeat("-", 65, "amount"), ANY, &d), RK_EPARSE);
    assert_int_equal(compile_text(repeat("abs(", 65, "amount"), ANY, &d), RK_EPARSE);
    check_str("65 calls", rk_diag_format(&d, buf, sizeof buf),
              "r.yaml:1:260: expression nested too deeply (limit 64)");

    /* the value stack: amount + (amount + (... (amount + amount))) needs nesting + 2 */
    t = repeat("amount + (", 62, "amount + amount");
    t2 = repeat(")", 62, "");
    text = malloc(strlen(t) + strlen(t2) + 1);
    strcpy(text, t);
    strcat(text, t2);
    assert_int_equal(compile_text(text, ANY, &d), 0);
    text = malloc(strlen(t) + strlen(t2) + 20);
    sprintf(text, "amount + (%s%s)", t, t2);
    free(t);
    free(t2);
    assert_int_equal(compile_text(text, ANY, &d), RK_EPARSE);
    check_str("deep stack", rk_diag_format(&d, buf, sizeof buf), "r.yaml:1:1: expression too complex");

    /* long chains are loops in the parser, but their tree height is bounded */
    assert_int_equal(compile_text(repeat("vip or ", 998, "vip"), BOOL, &d), 0);
    assert_int_equal(compile_text(repeat("vip or ", 1000, "vip"), BOOL, &d), RK_EPARSE);
    check_str("long chain", rk_diag_format(&d, buf, sizeof buf),
              "r.yaml:1:6998: expression too complex");
    /* a long chain of constants folds to one */
    rk_expr *e = NULL;
    text = repeat("1 + ", 900, "1");
    assert_int_equal(rk_expr_compile(text, strlen(text), &env, ANY, &e, &d), 0);
    assert_string_equal(rk_expr_disasm(e, buf, sizeof buf), "CONST 901\n");
    rk_expr_free(e);
    free(text);

    /* and the text's length */
    text = repeat(" ", RK_EXPR_MAX_LEN, "vip");
    assert_int_equal(compile_text(text, BOOL, &d), RK_EPARSE);
    check_str("too long", rk_diag_format(&d, buf, sizeof buf),
              "r.yaml:1:1: expression too long (limit 65536 bytes)");
}

/* Positions in a YAML file: `when:` at line 42 col 11, block scalar lines at col 9. */
static void test_multiline_positions(void **state)
{
    rk_expr_env e = env;
    e.file = "rules/default.yaml";
    e.line = 42;
    e.col = 17;
    e.cont_col = 9;
    static const diag_case cases[] = {
        {"amout > 5", BOOL, RK_ENOTFOUND,
         "rules/default.yaml:42:17: unknown field 'amout' (did you mean 'amount'?)"},
        {"amount > 5 and\namout < 3", BOOL, RK_ENOTFOUND,
         "rules/default.yaml:43:9: unknown field 'amout' (did you mean 'amount'?)"},
        {"amount > 5\n  and country <\n      'US'", BOOL, RK_ETYPE,
         "rules/default.yaml:43:23: cannot order str values with '<'"},
        {"amount > 5 and\n\n(len(\n   amount))", BOOL, RK_ETYPE,
         "rules/default.yaml:45:12: function 'len' expects str for argument 1, got int"},
        {"amount > 5 and\n", BOOL, RK_EPARSE, "rules/default.yaml:42:31: unexpected end of expression"},
        {"amount +\n  1", BOOL, RK_ETYPE, "rules/default.yaml:42:17: expected a bool expression, got int"},
    };
    check_diags(cases, sizeof cases / sizeof cases[0], &e);

    rk_expr *x = NULL;
    const char *text = "amount >= 100000\n  and country != card_country\n";
    assert_int_equal(rk_expr_compile(text, strlen(text), &e, BOOL, &x, NULL), 0);
    rk_expr_free(x);
}

static void test_env_and_arguments(void **state)
{
    rk_expr *e = NULL;
    rk_diag d;
    char buf[700];
    /* no environment: literals compile, names are unknown, positions start at 1:1 */
    assert_int_equal(rk_expr_compile("1 + 1 == 2", 10, NULL, BOOL, &e, &d), 0);
    rk_expr_free(e);
    assert_int_equal(rk_expr_compile("x", 1, NULL, BOOL, &e, &d), RK_ENOTFOUND);
    check_str("no env", rk_diag_format(&d, buf, sizeof buf), "unknown field 'x'");
    /* text need not be NUL-terminated */
    assert_int_equal(rk_expr_compile("vipXXX", 3, &env, BOOL, &e, &d), 0);
    rk_expr_free(e);
    /* a NULL diag is allowed */
    assert_int_equal(rk_expr_compile("nope", 4, &env, BOOL, &e, NULL), RK_ENOTFOUND);
    assert_int_equal(rk_expr_compile("vip", 3, &env, BOOL, NULL, &d), RK_EINVAL);
    /* a symbol without a valid slot is the loader's bug, reported as such */
    rk_sym bad[] = {{"x", RK_T_INT, RK_MAX_SLOTS}};
    rk_expr_env be = {.syms = bad, .nsyms = 1, .file = "r.yaml", .line = 1, .col = 1, .cont_col = 1};
    assert_int_equal(rk_expr_compile("x > 1", 5, &be, BOOL, &e, &d), RK_EINVAL);
    check_str("bad slot", rk_diag_format(&d, buf, sizeof buf),
              "r.yaml:1:1: field 'x' has no valid slot or type");
    rk_expr_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),   cmocka_unit_test(test_folding),
        cmocka_unit_test(test_types),        cmocka_unit_test(test_name_errors),
        cmocka_unit_test(test_type_errors),  cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_limits),       cmocka_unit_test(test_multiline_positions),
        cmocka_unit_test(test_env_and_arguments), cmocka_unit_test(test_hidden_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
