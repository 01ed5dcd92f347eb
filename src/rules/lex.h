/* The rule language's tokens and its hand-written lexer (internal to src/rules).
 *
 * Everything here works in byte offsets into the expression text; only when a
 * diagnostic is written does an offset become a line and column, by the
 * mapping that rk_expr_env describes (continuation lines of a YAML block
 * scalar start at cont_col). The lexer, parser and compiler share one rk_src
 * so that every error in the pipeline is positioned the same way. */
#ifndef RK_LEX_H
#define RK_LEX_H

#include <stddef.h>
#include <stdint.h>

#include "lib/diag.h"
#include "rules/expr.h"

/* Token kinds: enum suffix and how a dump names the kind. */
#define RK_TOKEN_MAP(XX)            \
    XX(EOF, "end of expression")    \
    XX(INT, "integer")              \
    XX(FLOAT, "float")              \
    XX(DURATION, "duration")        \
    XX(STRING, "string")            \
    XX(NAME, "name")                \
    XX(LIST, "list")                \
    XX(LPAREN, "(")                 \
    XX(RPAREN, ")")                 \
    XX(LBRACKET, "[")               \
    XX(RBRACKET, "]")               \
    XX(COMMA, ",")                  \
    XX(PLUS, "+")                   \
    XX(MINUS, "-")                  \
    XX(STAR, "*")                   \
    XX(SLASH, "/")                  \
    XX(PERCENT, "%")                \
    XX(EQ, "==")                    \
    XX(NE, "!=")                    \
    XX(LT, "<")                     \
    XX(LE, "<=")                    \
    XX(GT, ">")                     \
    XX(GE, ">=")                    \
    XX(AND, "and")                  \
    XX(OR, "or")                    \
    XX(NOT, "not")                  \
    XX(IN, "in")                    \
    XX(TRUE, "true")                \
    XX(FALSE, "false")

typedef enum rk_tok {
#define XX(name, text) RK_TOK_##name,
    RK_TOKEN_MAP(XX)
#undef XX
    RK_TOK__COUNT,
} rk_tok;

/* Longest expression text the compiler accepts; keeps every offset in 32 bits
 * and bounds the work a single rule can ask of the loader. */
#define RK_EXPR_MAX_LEN (64 * 1024)

/* The magnitude of INT64_MIN: lexed as an integer so that `-9223372036854775808`
 * can be written; the parser rejects it anywhere but after a unary minus. */
#define RK_INT_MAG_MIN ((uint64_t)INT64_MAX + 1)

typedef struct rk_token {
    uint8_t kind; /* an rk_tok */
    uint32_t pos; /* offset of the token's first byte (EOF: just after the last token) */
    uint32_t len; /* bytes of source text, quotes and '@' included */
    union {
        uint64_t u; /* RK_TOK_INT: magnitude, at most RK_INT_MAG_MIN; RK_TOK_DURATION: ms */
        double f;   /* RK_TOK_FLOAT: value, finite */
    };
} rk_token;

/* One expression's text and where it sits, for every stage's diagnostics. */
typedef struct rk_src {
    const char *text;       /* the expression; not NUL-terminated */
    size_t len;             /* its length in bytes, at most RK_EXPR_MAX_LEN */
    const rk_expr_env *env; /* file, line and columns of the text; never NULL */
    rk_diag *diag;          /* receives the first error; may be NULL */
} rk_src;

/* Line and column of byte offset pos, per the env's mapping. */
void rk_src_position(const rk_src *src, size_t pos, int *line, int *col);
/* Fills src->diag with the message positioned at byte offset pos; returns code. */
int rk_src_error(const rk_src *src, int code, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

typedef struct rk_lexer {
    const rk_src *src; /* the text being read */
    size_t p;          /* offset of the next unread byte */
    size_t last_end;   /* offset just after the last token read: where EOF is reported */
} rk_lexer;

void rk_lex_init(rk_lexer *lx, const rk_src *src);
/* Reads the next token into *t; at the end, RK_TOK_EOF (again on every call).
 * Returns 0, or RK_EPARSE with src->diag set (bad character, unterminated
 * string, bad escape, malformed number or duration, literal out of range). */
int rk_lex_next(rk_lexer *lx, rk_token *t);
/* Decodes the escapes of string token t into out, which has room for t->len
 * bytes; returns the decoded length. t was validated by rk_lex_next. */
size_t rk_lex_string(const rk_src *src, const rk_token *t, char *out);

/* How a dump names a kind: "integer", "(", "and", ... */
const char *rk_tok_name(int kind);
/* Describes t for "but found ..." messages: "end of expression", or the token's
 * source text in single quotes, shortened when long. Returns buf. */
const char *rk_tok_describe(const rk_src *src, const rk_token *t, char *buf, size_t size);

#endif
