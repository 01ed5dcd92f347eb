/* The parser builds a syntax tree from the lexer's tokens by recursive descent,
 * one function per grammar rule of DESIGN.md section 3, the rule written above
 * it. It looks one token ahead (p->tok) and stops at the first error, which it
 * positions at the token it did not expect.
 *
 * Two limits keep hostile or generated text from exhausting the C stack:
 * nesting (parentheses, call arguments, `not`, unary minus) is limited to
 * RK_PARSE_MAX_DEPTH levels, and the height of the tree, which grows with
 * long operator chains the parser handles in loops, to RK_PARSE_MAX_HEIGHT.
 * The parser resolves nothing: names, functions and lists are looked up, and
 * types checked, by the compiler. */
#include "rules/parse.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

/* ---- node pool ---- */

struct rk_pool_chunk {
    struct rk_pool_chunk *prev; /* the chunk allocated before this one */
    size_t used;                /* bytes of data handed out */
    size_t cap;                 /* bytes of data */
    uint64_t data[];            /* 8-aligned storage */
};

void *rk_pool_alloc(rk_pool *p, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    struct rk_pool_chunk *c = p->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 4096 ? n : 4096;
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->prev = p->head;
        c->used = 0;
        c->cap = cap;
        p->head = c;
    }
    void *r = (char *)c->data + c->used;
    c->used += n;
    return r;
}

void rk_pool_free(rk_pool *p)
{
    while (p->head) {
        struct rk_pool_chunk *prev = p->head->prev;
        free(p->head);
        p->head = prev;
    }
}

rk_node *rk_node_new(rk_pool *p, rk_node_kind kind, uint32_t pos, uint32_t tok)
{
    rk_node *n = rk_pool_alloc(p, sizeof *n);
    if (!n)
        return NULL;
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->pos = pos;
    n->tok = tok;
    n->height = 1;
    n->slot = -1;
    n->func = -1;
    return n;
}

/* ---- parser ---- */

typedef struct parser {
    const rk_src *src; /* text and diagnostics */
    rk_lexer lx;       /* produces the tokens after tok */
    rk_token tok;      /* the current token, not yet consumed */
    rk_pool *pool;     /* where nodes and decoded strings go */
    int depth;         /* current nesting, see RK_PARSE_MAX_DEPTH */
} parser;

static int parse_or(parser *p, rk_node **out);

static int advance(parser *p) { return rk_lex_next(&p->lx, &p->tok); }

static int no_memory(parser *p) { return rk_src_error(p->src, RK_ENOMEM, 0, "out of memory"); }

/* "expected WHAT but found TOKEN", at the current token. */
static int unexpected(parser *p, const char *what)
{
    char found[64];
    return rk_src_error(p->src, RK_EPARSE, p->tok.pos, "expected %s but found %s", what,
                        rk_tok_describe(p->src, &p->tok, found, sizeof found));
}

static int enter(parser *p)
{
    if (++p->depth > RK_PARSE_MAX_DEPTH)
        return rk_src_error(p->src, RK_EPARSE, p->tok.pos,
                            "expression nested too deeply (limit %d)", RK_PARSE_MAX_DEPTH);
    return 0;
}

/* Sets n's height from a child's; fails when the tree grows too tall. */
static int grow(parser *p, rk_node *n, const rk_node *child)
{
    if (child && child->height + 1 > n->height)
        n->height = (uint16_t)(child->height + 1);
    if (n->height > RK_PARSE_MAX_HEIGHT)
        return rk_src_error(p->src, RK_EPARSE, n->tok, "expression too complex");
    return 0;
}

/* A node with operands a (and b), spanning from a's first token. */
static int operator_node(parser *p, rk_node_kind kind, int op, uint32_t pos, uint32_t tok,
                         rk_node *a, rk_node *b, rk_node **out)
{
    rk_node *n = rk_node_new(p->pool, kind, pos, tok);
    if (!n)
        return no_memory(p);
    n->op = (uint8_t)op;
    n->a = a;
    n->b = b;
    int rc = grow(p, n, a);
    if (rc == 0)
        rc = grow(p, n, b);
    *out = n;
    return rc;
}

/* literal := ["-"] (INT | FLOAT | DURATION) | STRING | "true" | "false"
 * The current token is the literal; minus_pos is the offset of a '-' already
 * consumed before it, or UINT32_MAX. */
static int literal(parser *p, uint32_t minus_pos, rk_node **out)
{
    const rk_token *t = &p->tok;
    bool neg = minus_pos != UINT32_MAX;
    uint32_t pos = neg ? minus_pos : t->pos;
    rk_node *n = rk_node_new(p->pool, RK_N_LIT, pos, pos);
    if (!n)
        return no_memory(p);
    switch (t->kind) {
    case RK_TOK_INT:
        if (t->u == RK_INT_MAG_MIN && neg)
            n->v = rk_value_int(INT64_MIN);
        else if (t->u > INT64_MAX)
            return rk_src_error(p->src, RK_EPARSE, t->pos, "integer literal out of range");
        else
            n->v = rk_value_int(neg ? -(int64_t)t->u : (int64_t)t->u);
        break;
    case RK_TOK_DURATION:
        n->v = rk_value_int(neg ? -(int64_t)t->u : (int64_t)t->u);
        break;
    case RK_TOK_FLOAT:
        n->v = rk_value_float(neg ? -t->f : t->f);
        break;
    case RK_TOK_STRING: {
        if (neg)
            return unexpected(p, "a number after '-'");
        char *s = rk_pool_alloc(p->pool, t->len);
        if (!s)
            return no_memory(p);
        n->v = rk_value_str(s, (uint32_t)rk_lex_string(p->src, t, s));
        break;
    }
    case RK_TOK_TRUE:
    case RK_TOK_FALSE:
        if (neg)
            return unexpected(p, "a number after '-'");
        n->v = rk_value_bool(t->kind == RK_TOK_TRUE);
        break;
    default:
        return unexpected(p, neg ? "a number after '-'" : "a literal in the set");
    }
    n->type = n->v.type;
    *out = n;
    return advance(p);
}

/* The arguments of a call, the current token being its '(':
 * "(" [expr ("," expr)*] ")" */
static int call_args(parser *p, rk_node *call)
{
    int rc = enter(p);
    if (rc || (rc = advance(p)))
        return rc;
    rk_node **tail = &call->args;
    if (p->tok.kind != RK_TOK_RPAREN)
        for (;;) {
            rk_node *arg;
            if ((rc = parse_or(p, &arg)) || (rc = grow(p, call, arg)))
                return rc;
            *tail = arg;
            tail = &arg->next;
            call->nargs++;
            if (p->tok.kind == RK_TOK_RPAREN)
                break;
            if (p->tok.kind != RK_TOK_COMMA)
                return unexpected(p, "',' or ')'");
            if ((rc = advance(p)))
                return rc;
        }
    p->depth--;
    return advance(p);
}

/* atom := NUMBER | STRING | "true" | "false" | DURATION | name
 *       | name "(" [expr ("," expr)*] ")" | "(" expr ")"
 * name := IDENT ("." IDENT)*      (one NAME token) */
static int parse_atom(parser *p, rk_node **out)
{
    int rc;
    const rk_token t = p->tok;
    switch (t.kind) {
    case RK_TOK_INT:
    case RK_TOK_FLOAT:
    case RK_TOK_DURATION:
    case RK_TOK_STRING:
    case RK_TOK_TRUE:
    case RK_TOK_FALSE:
        return literal(p, UINT32_MAX, out);
    case RK_TOK_NAME: {
        if ((rc = advance(p)))
            return rc;
        bool call = p->tok.kind == RK_TOK_LPAREN;
        rk_node *n = rk_node_new(p->pool, call ? RK_N_CALL : RK_N_NAME, t.pos, t.pos);
        if (!n)
            return no_memory(p);
        n->name = p->src->text + t.pos;
        n->name_len = t.len;
        *out = n;
        return call ? call_args(p, n) : 0;
    }
    case RK_TOK_LPAREN: {
        rk_node *n;
        if ((rc = enter(p)) || (rc = advance(p)) || (rc = parse_or(p, &n)))
            return rc;
        if (p->tok.kind != RK_TOK_RPAREN)
            return unexpected(p, "')'");
        p->depth--;
        n->pos = t.pos; /* the expression, for diagnostics, starts at its '(' */
        *out = n;
        return advance(p);
    }
    case RK_TOK_EOF:
        return rk_src_error(p->src, RK_EPARSE, t.pos, "unexpected end of expression");
    default:
        return unexpected(p, "an expression");
    }
}

/* unary := "-" unary | atom */
static int parse_unary(parser *p, rk_node **out)
{
    if (p->tok.kind != RK_TOK_MINUS)
        return parse_atom(p, out);
    uint32_t pos = p->tok.pos;
    int rc;
    if ((rc = enter(p)) || (rc = advance(p)))
        return rc;
    /* -9223372036854775808 is INT64_MIN, whose magnitude is no int64 */
    if (p->tok.kind == RK_TOK_INT && p->tok.u == RK_INT_MAG_MIN)
        rc = literal(p, pos, out);
    else {
        rk_node *a;
        if (!(rc = parse_unary(p, &a)))
            rc = operator_node(p, RK_N_NEG, RK_TOK_MINUS, pos, pos, a, NULL, out);
    }
    p->depth--;
    return rc;
}

typedef int operand_fn(parser *p, rk_node **out);

/* The loop shared by the left-associative levels: operand (OP operand)*,
 * where OP is any of the n token kinds in ops. */
static int chain(parser *p, operand_fn *operand, const uint8_t *ops, int nops, rk_node **out)
{
    rk_node *left;
    int rc = operand(p, &left);
    for (;;) {
        if (rc)
            return rc;
        int op = p->tok.kind, i = 0;
        while (i < nops && ops[i] != op)
            i++;
        if (i == nops)
            break;
        uint32_t tok = p->tok.pos;
        rk_node *right;
        if ((rc = advance(p)) || (rc = operand(p, &right)))
            return rc;
        rk_node_kind kind = op == RK_TOK_OR ? RK_N_OR : op == RK_TOK_AND ? RK_N_AND : RK_N_BIN;
        rc = operator_node(p, kind, op, left->pos, tok, left, right, &left);
    }
    *out = left;
    return 0;
}

/* prod := unary (("*"|"/"|"%") unary)* */
static int parse_prod(parser *p, rk_node **out)
{
    static const uint8_t ops[] = {RK_TOK_STAR, RK_TOK_SLASH, RK_TOK_PERCENT};
    return chain(p, parse_unary, ops, 3, out);
}

/* sum := prod (("+"|"-") prod)* */
static int parse_sum(parser *p, rk_node **out)
{
    static const uint8_t ops[] = {RK_TOK_PLUS, RK_TOK_MINUS};
    return chain(p, parse_prod, ops, 2, out);
}

static bool is_comparison(int kind) { return kind >= RK_TOK_EQ && kind <= RK_TOK_GE; }

/* set := "[" [literal ("," literal)*] "]" | "@" LISTNAME */
static int parse_set(parser *p, rk_node *in)
{
    int rc;
    if (p->tok.kind == RK_TOK_LIST) {
        in->name = p->src->text + p->tok.pos + 1;
        in->name_len = p->tok.len - 1;
        in->list_pos = p->tok.pos;
        return advance(p);
    }
    if (p->tok.kind != RK_TOK_LBRACKET)
        return unexpected(p, "'[' or '@list' after 'in'");
    if ((rc = advance(p)))
        return rc;
    rk_node **tail = &in->args;
    while (p->tok.kind != RK_TOK_RBRACKET) {
        uint32_t minus = UINT32_MAX;
        if (p->tok.kind == RK_TOK_MINUS) {
            minus = p->tok.pos;
            if ((rc = advance(p)))
                return rc;
        }
        rk_node *m;
        if ((rc = literal(p, minus, &m)))
            return rc;
        *tail = m;
        tail = &m->next;
        in->nargs++;
        if (p->tok.kind == RK_TOK_COMMA) {
            if ((rc = advance(p)))
                return rc;
            if (p->tok.kind == RK_TOK_RBRACKET)
                return unexpected(p, "a literal in the set");
        } else if (p->tok.kind != RK_TOK_RBRACKET) {
            return unexpected(p, "',' or ']'");
        }
    }
    return advance(p);
}

/* cmp := sum [ ("=="|"!="|"<"|"<="|">"|">=") sum | ["not"] "in" set ] */
static int parse_cmp(parser *p, rk_node **out)
{
    rk_node *left;
    int rc = parse_sum(p, &left);
    if (rc)
        return rc;
    int op = p->tok.kind;
    uint32_t tok = p->tok.pos;
    if (is_comparison(op)) {
        rk_node *right;
        if ((rc = advance(p)) || (rc = parse_sum(p, &right)) ||
            (rc = operator_node(p, RK_N_BIN, op, left->pos, tok, left, right, out)))
            return rc;
    } else if (op == RK_TOK_IN || op == RK_TOK_NOT) {
        if ((rc = advance(p)))
            return rc;
        if (op == RK_TOK_NOT) {
            if (p->tok.kind != RK_TOK_IN)
                return unexpected(p, "'in' after 'not'");
            if ((rc = advance(p)))
                return rc;
        }
        if ((rc = operator_node(p, RK_N_IN, op == RK_TOK_NOT, left->pos, tok, left, NULL, out)) ||
            (rc = parse_set(p, *out)))
            return rc;
    } else {
        *out = left;
        return 0;
    }
    if (is_comparison(p->tok.kind) || p->tok.kind == RK_TOK_IN)
        return rk_src_error(p->src, RK_EPARSE, p->tok.pos,
                            "comparison operators cannot be chained (use 'and')");
    return 0;
}

/* not := "not" not | cmp */
static int parse_not(parser *p, rk_node **out)
{
    if (p->tok.kind != RK_TOK_NOT)
        return parse_cmp(p, out);
    uint32_t pos = p->tok.pos;
    rk_node *a;
    int rc;
    if ((rc = enter(p)) || (rc = advance(p)) || (rc = parse_not(p, &a)))
        return rc;
    p->depth--;
    return operator_node(p, RK_N_NOT, RK_TOK_NOT, pos, pos, a, NULL, out);
}

/* and := not ("and" not)* */
static int parse_and(parser *p, rk_node **out)
{
    static const uint8_t ops[] = {RK_TOK_AND};
    return chain(p, parse_not, ops, 1, out);
}

/* or := and ("or" and)*      (expr := or) */
static int parse_or(parser *p, rk_node **out)
{
    static const uint8_t ops[] = {RK_TOK_OR};
    return chain(p, parse_and, ops, 1, out);
}

int rk_parse(const rk_src *src, rk_pool *pool, rk_node **out)
{
    parser p = {.src = src, .pool = pool};
    rk_lex_init(&p.lx, src);
    rk_node *root;
    int rc = advance(&p);
    if (rc || (rc = parse_or(&p, &root)))
        return rc;
    if (p.tok.kind != RK_TOK_EOF)
        return unexpected(&p, "end of expression");
    *out = root;
    return 0;
}

/* ---- dump ---- */

typedef struct dump {
    char *buf;   /* destination */
    size_t size; /* its size */
    size_t len;  /* characters wanted so far (may exceed size: then truncated) */
} dump;

__attribute__((format(printf, 2, 3))) static void put(dump *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = d->len < d->size ? d->size - d->len : 0;
    int n = vsnprintf(room ? d->buf + d->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        d->len += (size_t)n;
}

static void dump_value(dump *d, rk_value v)
{
    switch (v.type) {
    case RK_T_INT: put(d, "%" PRId64, v.i); break;
    case RK_T_FLOAT: {
        char num[32];
        snprintf(num, sizeof num, "%g", v.f);
        put(d, "%s%s", num, strpbrk(num, ".ein") ? "" : ".0"); /* 2.0 stays a float */
        break;
    }
    case RK_T_STR: put(d, "'%.*s'", (int)v.len, v.s); break;
    case RK_T_BOOL: put(d, "%s", v.b ? "true" : "false"); break;
    default: put(d, "missing"); break;
    }
}

static void dump_node(dump *d, const rk_node *n)
{
    switch (n->kind) {
    case RK_N_LIT: dump_value(d, n->v); return;
    case RK_N_NAME: put(d, "%.*s", (int)n->name_len, n->name); return;
    case RK_N_CALL: put(d, "(%.*s", (int)n->name_len, n->name); break;
    case RK_N_NEG: put(d, "(-"); break;
    case RK_N_NOT: put(d, "(not"); break;
    case RK_N_CONV: put(d, "(float"); break;
    case RK_N_AND: put(d, "(and"); break;
    case RK_N_OR: put(d, "(or"); break;
    case RK_N_BIN: put(d, "(%s", rk_tok_name(n->op)); break;
    case RK_N_IN: put(d, "(%s", n->op ? "not-in" : "in"); break;
    }
    if (n->a) {
        put(d, " ");
        dump_node(d, n->a);
    }
    if (n->b) {
        put(d, " ");
        dump_node(d, n->b);
    }
    if (n->kind == RK_N_IN && n->name)
        put(d, " @%.*s", (int)n->name_len, n->name);
    else if (n->kind == RK_N_IN)
        put(d, " [");
    for (const rk_node *m = n->args; m; m = m->next) {
        if (n->kind == RK_N_CALL || m != n->args)
            put(d, " ");
        dump_node(d, m);
    }
    put(d, n->kind == RK_N_IN && !n->name ? "])" : ")");
}

char *rk_node_dump(const rk_node *n, char *buf, size_t size)
{
    dump d = {buf, size, 0};
    if (size)
        buf[0] = '\0';
    dump_node(&d, n);
    return buf;
}
