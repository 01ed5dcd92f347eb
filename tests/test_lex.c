/* Tests for the rule-language lexer: every token kind, numbers, durations,
 * strings and their escapes, and every lexical error with its exact
 * `file:line:col: message`, including positions on continuation lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/err.h"
#include "rules/lex.h"

static const rk_expr_env env = {.file = "r.yaml", .line = 1, .col = 1, .cont_col = 1};

/* Lexes text into toks (at most max, EOF included); returns the count or the error code. */
static int lex_all(const char *text, const rk_expr_env *e, rk_token *toks, int max, rk_diag *d)
{
    rk_src src = {.text = text, .len = strlen(text), .env = e, .diag = d};
    rk_lexer lx;
    rk_lex_init(&lx, &src);
    for (int n = 0; n < max; n++) {
        int rc = rk_lex_next(&lx, &toks[n]);
        if (rc)
            return rc;
        if (toks[n].kind == RK_TOK_EOF)
            return n + 1;
    }
    return max;
}

/* The diagnostic text for the first error in text. */
static const char *lex_error(const char *text, const rk_expr_env *e)
{
    static char buf[600];
    rk_token toks[64];
    rk_diag d = {0};
    int rc = lex_all(text, e, toks, 64, &d);
    assert_int_equal(rc, RK_EPARSE);
    return rk_diag_format(&d, buf, sizeof buf);
}

static void test_every_kind(void **state)
{
    const char *text = "( ) [ ] , + - * / % == != < <= > >= and or not in true false "
                       "amount model.score @high_risk 42 1.5 30s 'x'";
    static const int want[] = {
        RK_TOK_LPAREN, RK_TOK_RPAREN, RK_TOK_LBRACKET, RK_TOK_RBRACKET, RK_TOK_COMMA,
        RK_TOK_PLUS,   RK_TOK_MINUS,  RK_TOK_STAR,     RK_TOK_SLASH,    RK_TOK_PERCENT,
        RK_TOK_EQ,     RK_TOK_NE,     RK_TOK_LT,       RK_TOK_LE,       RK_TOK_GT,
        RK_TOK_GE,     RK_TOK_AND,    RK_TOK_OR,       RK_TOK_NOT,      RK_TOK_IN,
        RK_TOK_TRUE,   RK_TOK_FALSE,  RK_TOK_NAME,     RK_TOK_NAME,     RK_TOK_LIST,
        RK_TOK_INT,    RK_TOK_FLOAT,  RK_TOK_DURATION, RK_TOK_STRING,   RK_TOK_EOF,
    };
    rk_token t[64];
    int n = lex_all(text, &env, t, 64, NULL);
    assert_int_equal(n, sizeof want / sizeof want[0]);
    for (int i = 0; i < n; i++)
        assert_string_equal(rk_tok_name(t[i].kind), rk_tok_name(want[i]));
    /* every kind of the table appears (NAME twice) */
    assert_int_equal(n, RK_TOK__COUNT + 1);
    /* offsets and lengths */
    assert_int_equal(t[10].pos, 20); /* == */
    assert_int_equal(t[10].len, 2);
    assert_int_equal(t[23].len, strlen("model.score"));
    assert_int_equal(t[24].len, strlen("@high_risk"));
    assert_int_equal(t[28].len, 3);               /* quotes included */
    assert_int_equal(t[29].pos, strlen(text));    /* EOF just after the last token */
}

static void test_operators_without_spaces(void **state)
{
    rk_token t[16];
    int n = lex_all("a<=b>=c!=d==e<f>g", &env, t, 16, NULL);
    assert_int_equal(n, 14);
    int ops[] = {RK_TOK_LE, RK_TOK_GE, RK_TOK_NE, RK_TOK_EQ, RK_TOK_LT, RK_TOK_GT};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(t[2 * i].kind, RK_TOK_NAME);
        assert_int_equal(t[2 * i + 1].kind, ops[i]);
    }
}

static void test_names_and_keywords(void **state)
{
    rk_token t[16];
    const char *text = "android in_x notx not.x model.score a.b.c _x1 AND";
    int n = lex_all(text, &env, t, 16, NULL);
    assert_int_equal(n, 9);
    for (int i = 0; i < 8; i++)
        assert_int_equal(t[i].kind, RK_TOK_NAME);
    assert_int_equal(t[5].len, 5); /* a.b.c */
    /* a trailing dot is not part of the name */
    n = lex_all("a. b", &env, t, 16, &(rk_diag){0});
    assert_int_equal(n, RK_EPARSE);
}

static void test_numbers(void **state)
{
    rk_token t[16];
    int n = lex_all("0 42 9223372036854775807 9223372036854775808 1.5 0.25 1e3 2.5e-3 1E+2 007",
                    &env, t, 16, NULL);
    assert_int_equal(n, 11);
    assert_int_equal(t[0].kind, RK_TOK_INT);
    assert_true(t[0].u == 0);
    assert_true(t[1].u == 42);
    assert_true(t[2].u == INT64_MAX);
    assert_int_equal(t[3].kind, RK_TOK_INT); /* INT64_MIN's magnitude: the parser decides */
    assert_true(t[3].u == RK_INT_MAG_MIN);
    assert_int_equal(t[4].kind, RK_TOK_FLOAT);
    assert_true(t[4].f == 1.5);
    assert_true(t[5].f == 0.25);
    assert_int_equal(t[6].kind, RK_TOK_FLOAT);
    assert_true(t[6].f == 1000.0);
    assert_true(t[7].f == 2.5e-3);
    assert_true(t[8].f == 100.0);
    assert_true(t[9].u == 7);
}

static void test_durations(void **state)
{
    rk_token t[16];
    int n = lex_all("500ms 30s 10m 1h 7d 0s 106751991167d", &env, t, 16, NULL);
    assert_int_equal(n, 8);
    uint64_t want[] = {500, 30000, 600000, 3600000, 604800000, 0, UINT64_C(9223372036828800000)};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(t[i].kind, RK_TOK_DURATION);
        assert_true(t[i].u == want[i]);
    }
    assert_int_equal(t[0].len, 5);
}

static void test_strings(void **state)
{
    static const struct {
        const char *text, *value;
    } cases[] = {
        {"'abc'", "abc"},         {"\"abc\"", "abc"},        {"''", ""},
        {"'it\\'s'", "it's"},     {"\"a\\\"b\"", "a\"b"},    {"'back\\\\slash'", "back\\slash"},
        {"'tab\\there'", "tab\there"}, {"'nl\\n'", "nl\n"},  {"\"it's\"", "it's"},
        {"'caf\xc3\xa9'", "caf\xc3\xa9"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rk_token t[2];
        rk_src src = {.text = cases[i].text, .len = strlen(cases[i].text), .env = &env};
        assert_int_equal(lex_all(cases[i].text, &env, t, 2, NULL), 2);
        assert_int_equal(t[0].kind, RK_TOK_STRING);
        char out[64];
        size_t len = rk_lex_string(&src, &t[0], out);
        out[len] = '\0';
        assert_string_equal(out, cases[i].value);
    }
}

static void test_errors(void **state)
{
    static const struct {
        const char *text, *diag;
    } cases[] = {
        {"country == 'US", "r.yaml:1:12: unterminated string"},
        {"'abc\\", "r.yaml:1:1: unterminated string"},
        {"x == 'a\\qb'", "r.yaml:1:8: invalid escape '\\q' in string"},
        {"amount > $5", "r.yaml:1:10: unexpected character '$'"},
        {"country = 'US'", "r.yaml:1:9: unexpected character '=' (did you mean '=='?)"},
        {"!vip", "r.yaml:1:1: unexpected character '!' (did you mean '!=' or 'not'?)"},
        {"a && b", "r.yaml:1:3: unexpected character '&' (use 'and')"},
        {"a || b", "r.yaml:1:3: unexpected character '|' (use 'or')"},
        {"amount \xe2\x89\xa5 5", "r.yaml:1:8: unexpected character '\xe2\x89\xa5'"},
        {"a \x01", "r.yaml:1:3: unexpected byte 0x01"},
        {"a \xff", "r.yaml:1:3: unexpected byte 0xff"},
        {"x > 18446744073709551616", "r.yaml:1:5: integer literal out of range"},
        {"x > 99999999999999999999", "r.yaml:1:5: integer literal out of range"},
        {"x > 9223372036854775809", "r.yaml:1:5: integer literal out of range"},
        {"ts > 1.5h", "r.yaml:1:6: invalid duration '1.5h' (durations are whole numbers)"},
        {"ts > 5x", "r.yaml:1:6: invalid duration '5x' (units are ms, s, m, h, d)"},
        {"ts > 5and x", "r.yaml:1:6: invalid duration '5and' (units are ms, s, m, h, d)"},
        {"ts > 106751991167301d", "r.yaml:1:6: duration literal out of range"},
        {"x > 1e999", "r.yaml:1:5: float literal out of range"},
        {"x in @", "r.yaml:1:6: expected a list name after '@'"},
        {"a.", "r.yaml:1:2: unexpected character '.'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = lex_error(cases[i].text, &env);
        if (strcmp(got, cases[i].diag) != 0)
            fail_msg("%s\n  got:  %s\n  want: %s", cases[i].text, got, cases[i].diag);
    }
}

/* Positions follow the env: the first line starts at col, the others at cont_col. */
static void test_positions(void **state)
{
    rk_expr_env e = {.file = "rules/default.yaml", .line = 42, .col = 11, .cont_col = 7};
    assert_string_equal(lex_error("amount > 5 and $", &e), "rules/default.yaml:42:26: unexpected character '$'");
    assert_string_equal(lex_error("amount > 5\nand $", &e), "rules/default.yaml:43:11: unexpected character '$'");
    assert_string_equal(lex_error("a\n\n  b $", &e), "rules/default.yaml:44:11: unexpected character '$'");
    assert_string_equal(lex_error("a\n'open\nstring", &e), "rules/default.yaml:43:7: unterminated string");

    rk_src src = {.text = "ab\ncd", .len = 5, .env = &e};
    int line, col;
    rk_src_position(&src, 0, &line, &col);
    assert_int_equal(line, 42);
    assert_int_equal(col, 11);
    rk_src_position(&src, 2, &line, &col); /* the newline itself ends line 42 */
    assert_int_equal(line, 42);
    assert_int_equal(col, 13);
    rk_src_position(&src, 4, &line, &col);
    assert_int_equal(line, 43);
    assert_int_equal(col, 8);

    /* EOF is reported just after the last token, not after trailing space */
    rk_token t[4];
    assert_int_equal(lex_all("a  \n  ", &e, t, 4, NULL), 2);
    assert_int_equal(t[1].kind, RK_TOK_EOF);
    assert_int_equal(t[1].pos, 1);
    assert_int_equal(lex_all("", &e, t, 4, NULL), 1);
    assert_int_equal(t[0].pos, 0);
}

static void test_describe(void **state)
{
    const char *text = "and 'a very long string literal that goes on' \x01";
    rk_src src = {.text = text, .len = strlen(text), .env = &env};
    rk_token t[4];
    assert_int_equal(lex_all(text, &env, t, 4, &(rk_diag){0}), RK_EPARSE);
    char buf[64];
    assert_string_equal(rk_tok_describe(&src, &t[0], buf, sizeof buf), "'and'");
    assert_string_equal(rk_tok_describe(&src, &t[1], buf, sizeof buf), "''a very long string lite...'");
    rk_token eof = {.kind = RK_TOK_EOF};
    assert_string_equal(rk_tok_describe(&src, &eof, buf, sizeof buf), "end of expression");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kind),     cmocka_unit_test(test_operators_without_spaces),
        cmocka_unit_test(test_names_and_keywords), cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_durations),      cmocka_unit_test(test_strings),
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_positions),
        cmocka_unit_test(test_describe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
