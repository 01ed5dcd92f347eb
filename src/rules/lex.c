/* The lexer turns expression text into tokens, one call at a time, and owns the
 * mapping from byte offsets to the `file:line:col` an analyst sees.
 *
 * It reads the text in place (no copies, no allocation): a token is a kind, an
 * offset and a length, plus the value of a number or duration. String tokens
 * are validated here (escapes, termination) and decoded later by rk_lex_string
 * into memory the parser owns. Names may be dotted (`model.score`) and are one
 * token; keywords are recognised only undotted. A number directly followed by
 * letters is a duration (`30s`) or an error, never two tokens, so `5and x`
 * cannot silently mean `5 and x`. */
#include "rules/lex.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

static const char *const tok_names[RK_TOK__COUNT] = {
#define XX(name, text) text,
    RK_TOKEN_MAP(XX)
#undef XX
};

const char *rk_tok_name(int kind)
{
    return kind >= 0 && kind < RK_TOK__COUNT ? tok_names[kind] : "?";
}

void rk_src_position(const rk_src *src, size_t pos, int *line, int *col)
{
    const rk_expr_env *env = src->env;
    int nl = 0;
    size_t line_start = 0;
    if (pos > src->len)
        pos = src->len;
    for (size_t i = 0; i < pos; i++)
        if (src->text[i] == '\n') {
            nl++;
            line_start = i + 1;
        }
    *line = env->line + nl;
    *col = nl == 0 ? env->col + (int)pos : env->cont_col + (int)(pos - line_start);
}

int rk_src_error(const rk_src *src, int code, size_t pos, const char *fmt, ...)
{
    if (!src->diag)
        return code;
    int line, col;
    rk_src_position(src, pos, &line, &col);
    char msg[sizeof src->diag->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rk_diag_set(src->diag, src->env->file, line, col, "%s", msg);
    return code;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_ident_char(char c) { return is_ident_start(c) || is_digit(c); }

void rk_lex_init(rk_lexer *lx, const rk_src *src)
{
    lx->src = src;
    lx->p = 0;
    lx->last_end = 0;
}

static const struct {
    const char *word;
    uint8_t kind;
} keywords[] = {
    {"and", RK_TOK_AND}, {"or", RK_TOK_OR},     {"not", RK_TOK_NOT},
    {"in", RK_TOK_IN},   {"true", RK_TOK_TRUE}, {"false", RK_TOK_FALSE},
};

static const struct {
    const char *unit;
    int64_t ms;
} units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 86400 * 1000},
};

/* A number, a float, or a duration: digits ["." digits] [("e"|"E") ["+"|"-"] digits] [unit]. */
static int lex_number(rk_lexer *lx, rk_token *t)
{
    const rk_src *src = lx->src;
    const char *s = src->text;
    size_t n = src->len, start = lx->p, p = start;
    uint64_t u = 0;
    bool too_big = false, is_float = false;

    for (; p < n && is_digit(s[p]); p++) {
        unsigned d = (unsigned)(s[p] - '0');
        if (u > (UINT64_MAX - d) / 10)
            too_big = true;
        else
            u = u * 10 + d;
    }
    if (p + 1 < n && s[p] == '.' && is_digit(s[p + 1])) {
        is_float = true;
        for (p++; p < n && is_digit(s[p]); p++)
            ;
    }
    if (p < n && (s[p] == 'e' || s[p] == 'E')) {
        size_t q = p + 1;
        if (q < n && (s[q] == '+' || s[q] == '-'))
            q++;
        if (q < n && is_digit(s[q])) {
            is_float = true;
            for (p = q; p < n && is_digit(s[p]); p++)
                ;
        }
    }
    size_t num_end = p;
    while (p < n && is_ident_char(s[p]))
        p++;
    t->pos = (uint32_t)start;
    t->len = (uint32_t)(p - start);
    lx->p = p;

    if (p > num_end) {
        const char *unit = s + num_end;
        size_t ulen = p - num_end;
        int64_t mult = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strlen(units[i].unit) == ulen && memcmp(units[i].unit, unit, ulen) == 0)
                mult = units[i].ms;
        if (mult && is_float)
            return rk_src_error(src, RK_EPARSE, start,
                                "invalid duration '%.*s' (durations are whole numbers)",
                                (int)t->len, s + start);
        if (!mult)
            return rk_src_error(src, RK_EPARSE, start,
                                "invalid duration '%.*s' (units are ms, s, m, h, d)",
                                (int)t->len, s + start);
        if (too_big || u > (uint64_t)(INT64_MAX / mult))
            return rk_src_error(src, RK_EPARSE, start, "duration literal out of range");
        t->kind = RK_TOK_DURATION;
        t->u = u * (uint64_t)mult;
        return 0;
    }
    if (is_float) {
        char buf[128];
        size_t len = num_end - start;
        if (len >= sizeof buf)
            return rk_src_error(src, RK_EPARSE, start, "number literal too long");
        memcpy(buf, s + start, len);
        buf[len] = '\0';
        /* strtod reads '.' as the decimal point: riskd never calls setlocale. */
        double f = strtod(buf, NULL);
        if (!isfinite(f))
            return rk_src_error(src, RK_EPARSE, start, "float literal out of range");
        t->kind = RK_TOK_FLOAT;
        t->f = f;
        return 0;
    }
    if (too_big || u > RK_INT_MAG_MIN)
        return rk_src_error(src, RK_EPARSE, start, "integer literal out of range");
    t->kind = RK_TOK_INT;
    t->u = u;
    return 0;
}

/* A string in single or double quotes; escapes \\ \' \" \n \t. */
static int lex_string(rk_lexer *lx, rk_token *t)
{
    const rk_src *src = lx->src;
    const char *s = src->text;
    size_t n = src->len, start = lx->p, p = start + 1;
    char quote = s[start];
    for (; p < n && s[p] != quote; p++) {
        if (s[p] != '\\')
            continue;
        if (p + 1 >= n) {
            p = n; /* a backslash as the last byte escapes nothing: unterminated */
            break;
        }
        char e = s[p + 1];
        if (e != '\\' && e != '\'' && e != '"' && e != 'n' && e != 't') {
            if (e > ' ' && e < 0x7f)
                return rk_src_error(src, RK_EPARSE, p, "invalid escape '\\%c' in string", e);
            return rk_src_error(src, RK_EPARSE, p, "invalid escape in string");
        }
        p++;
    }
    if (p >= n)
        return rk_src_error(src, RK_EPARSE, start, "unterminated string");
    t->kind = RK_TOK_STRING;
    t->pos = (uint32_t)start;
    t->len = (uint32_t)(p + 1 - start);
    lx->p = p + 1;
    return 0;
}

size_t rk_lex_string(const rk_src *src, const rk_token *t, char *out)
{
    const char *s = src->text + t->pos + 1;
    size_t n = t->len - 2, o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') {
            c = s[++i];
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
        }
        out[o++] = c;
    }
    return o;
}

/* Length of the well-formed UTF-8 sequence at s (n bytes available), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (s[0] >= 0xf5 || len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* A character no token starts with; analysts' habits from other languages get a hint. */
static int bad_char(rk_lexer *lx)
{
    const rk_src *src = lx->src;
    size_t p = lx->p;
    unsigned char c = (unsigned char)src->text[p];
    const char *hint = c == '=' ? " (did you mean '=='?)"
                     : c == '!' ? " (did you mean '!=' or 'not'?)"
                     : c == '&' ? " (use 'and')"
                     : c == '|' ? " (use 'or')"
                                : "";
    if (c > ' ' && c < 0x7f)
        return rk_src_error(src, RK_EPARSE, p, "unexpected character '%c'%s", c, hint);
    size_t len = c >= 0x80 ? utf8_seq((const unsigned char *)src->text + p, src->len - p) : 0;
    if (len)
        return rk_src_error(src, RK_EPARSE, p, "unexpected character '%.*s'", (int)len,
                            src->text + p);
    return rk_src_error(src, RK_EPARSE, p, "unexpected byte 0x%02x", c);
}

/* Operators of one or two characters; the two-character ones are listed first. */
static const struct {
    const char *text;
    uint8_t kind;
} ops[] = {
    {"==", RK_TOK_EQ},    {"!=", RK_TOK_NE},     {"<=", RK_TOK_LE},       {">=", RK_TOK_GE},
    {"<", RK_TOK_LT},     {">", RK_TOK_GT},      {"(", RK_TOK_LPAREN},    {")", RK_TOK_RPAREN},
    {"[", RK_TOK_LBRACKET}, {"]", RK_TOK_RBRACKET}, {",", RK_TOK_COMMA},  {"+", RK_TOK_PLUS},
    {"-", RK_TOK_MINUS},  {"*", RK_TOK_STAR},    {"/", RK_TOK_SLASH},     {"%", RK_TOK_PERCENT},
};

static int lex_token(rk_lexer *lx, rk_token *t)
{
    const rk_src *src = lx->src;
    const char *s = src->text;
    size_t n = src->len, p = lx->p;
    char c = s[p];

    if (is_digit(c))
        return lex_number(lx, t);
    if (c == '"' || c == '\'')
        return lex_string(lx, t);
    if (is_ident_start(c)) {
        size_t q = p;
        for (;;) {
            while (q < n && is_ident_char(s[q]))
                q++;
            if (q + 1 >= n || s[q] != '.' || !is_ident_start(s[q + 1]))
                break;
            q++; /* a dotted name: model.score */
        }
        t->kind = RK_TOK_NAME;
        t->pos = (uint32_t)p;
        t->len = (uint32_t)(q - p);
        for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
            if (strlen(keywords[i].word) == t->len && memcmp(keywords[i].word, s + p, t->len) == 0)
                t->kind = keywords[i].kind;
        lx->p = q;
        return 0;
    }
    if (c == '@') {
        size_t q = p + 1;
        while (q < n && is_ident_char(s[q]))
            q++;
        if (q == p + 1)
            return rk_src_error(src, RK_EPARSE, p, "expected a list name after '@'");
        t->kind = RK_TOK_LIST;
        t->pos = (uint32_t)p;
        t->len = (uint32_t)(q - p);
        lx->p = q;
        return 0;
    }
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        size_t len = strlen(ops[i].text);
        if (len <= n - p && memcmp(ops[i].text, s + p, len) == 0) {
            t->kind = ops[i].kind;
            t->pos = (uint32_t)p;
            t->len = (uint32_t)len;
            lx->p = p + len;
            return 0;
        }
    }
    return bad_char(lx);
}

int rk_lex_next(rk_lexer *lx, rk_token *t)
{
    const rk_src *src = lx->src;
    while (lx->p < src->len) {
        char c = src->text[lx->p];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        lx->p++;
    }
    if (lx->p >= src->len) {
        t->kind = RK_TOK_EOF;
        t->pos = (uint32_t)lx->last_end;
        t->len = 0;
        t->u = 0;
        return 0;
    }
    t->u = 0;
    int rc = lex_token(lx, t);
    if (rc == 0)
        lx->last_end = lx->p;
    return rc;
}

const char *rk_tok_describe(const rk_src *src, const rk_token *t, char *buf, size_t size)
{
    if (t->kind == RK_TOK_EOF) {
        snprintf(buf, size, "end of expression");
        return buf;
    }
    enum { SHOW = 24 }; /* enough to recognise a token, short enough for one line */
    const char *s = src->text + t->pos;
    size_t len = t->len;
    const char *ellipsis = "";
    if (len > SHOW) {
        len = SHOW;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
            len--; /* never cut a UTF-8 sequence in half */
        ellipsis = "...";
    }
    char text[SHOW + 1];
    for (size_t i = 0; i < len; i++)
        text[i] = (unsigned char)s[i] < ' ' ? ' ' : s[i]; /* keep the message on one line */
    text[len] = '\0';
    snprintf(buf, size, "'%s%s'", text, ellipsis);
    return buf;
}
