/* The compiler turns an expression's text into its flat, immutable form:
 * parse (parse.c), then one post-order pass over the tree that resolves names,
 * functions and lists, checks types, inserts int-to-float conversions and
 * folds constant subtrees, then code generation into one instruction array.
 *
 * Folding runs the folded node through the same code generator and VM as run
 * time (on a scratch program), so a constant means exactly what it would have
 * meant at run time; an arithmetic error while folding (`1 / 0`, an int64
 * overflow) is reported at compile time instead of silently giving missing.
 * `and`/`or` fold when one side is a deciding constant (`x and false` is false
 * whatever x is, in three-valued logic too); the dropped side's run-time
 * arithmetic errors then go uncounted, which is harmless.
 *
 * Ownership: the tree, its decoded strings and scratch folding space live in
 * the compiler and die with it. The rk_expr is one allocation holding the
 * header, the code, the constants (their string bytes copied in) and the list
 * table; inline sets are rk_lists it owns. Named lists are borrowed from the
 * environment and must outlive the expression. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/txn.h"
#include "rules/expr_int.h"
#include "rules/funcs.h"
#include "rules/lex.h"
#include "rules/parse.h"

/* A comparison's opcode is its operand type's EQ plus the operator's offset from ==. */
_Static_assert(RK_TOK_GE - RK_TOK_EQ == 5 && RK_OP_GE_I - RK_OP_EQ_I == 5 &&
                   RK_OP_GE_F - RK_OP_EQ_F == 5 && RK_OP_NE_S - RK_OP_EQ_S == 1 &&
                   RK_OP_NE_B - RK_OP_EQ_B == 1 && RK_OP_GE_I_SK - RK_OP_EQ_I_SK == 5 &&
                   RK_OP_GE_F_SK - RK_OP_EQ_F_SK == 5 && RK_OP_NE_S_SK - RK_OP_EQ_S_SK == 1,
               "comparison tokens and opcodes must be in the same order");
_Static_assert(RK_MAX_SLOTS <= UINT16_MAX + 1, "slots must fit rk_insn.b");

/* A program being generated: the final one, or a scratch one for folding. */
typedef struct emitter {
    rk_insn *code;         /* instructions so far */
    int ncode, capcode;    /* used and allocated entries */
    rk_value *k;           /* constants */
    int nk, capk;          /* used and allocated entries */
    const rk_list **lists; /* sets the IN_* instructions test */
    int nlists, caplists;  /* used and allocated entries */
    int depth;             /* stack depth after the last instruction */
    int max_depth;         /* deepest so far */
} emitter;

typedef struct compiler {
    rk_src src;          /* the text, its environment and the diagnostic */
    rk_pool pool;        /* the tree and its strings */
    rk_list **owned;     /* inline sets built so far; the expression takes them over */
    int nowned, capowned; /* used and allocated entries */
    rk_arena fold_arena; /* scratch for lower()/upper() while folding */
} compiler;

static int check(compiler *c, rk_node **np);

static int no_memory(compiler *c) { return rk_src_error(&c->src, RK_ENOMEM, 0, "out of memory"); }

/* p grown to hold need elements of size elem (capacity doubling), or NULL with
 * p untouched when out of memory. */
static void *reserve(void *p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return p;
    int ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void *q = realloc(p, (size_t)ncap * elem);
    if (q)
        *cap = ncap;
    return q;
}

/* ---- code generation ---- */

static int emit(compiler *c, emitter *e, rk_op op, int aux, int32_t a)
{
    rk_insn *code = reserve(e->code, &e->capcode, e->ncode + 1, sizeof *code);
    if (!code)
        return no_memory(c);
    e->code = code;
    code[e->ncode++] = (rk_insn){.op = (uint8_t)op, .aux = (uint8_t)aux, .a = a};
    e->depth += op == RK_OP_CALL ? 1 - rk_funcs[a].arity : rk_op_effect[op];
    if (e->depth > e->max_depth)
        e->max_depth = e->depth;
    return 0;
}

static int emit_const(compiler *c, emitter *e, rk_value v)
{
    rk_value *k = reserve(e->k, &e->capk, e->nk + 1, sizeof *k);
    if (!k)
        return no_memory(c);
    e->k = k;
    k[e->nk] = v;
    return emit(c, e, RK_OP_CONST, 0, e->nk++);
}

static int emit_in(compiler *c, emitter *e, const rk_node *n)
{
    if (!n->list) /* a dynamic list: asked at run time, nothing to keep here */
        return emit(c, e, RK_OP_IN_DYN, n->op, n->dyn_index);
    const rk_list **lists = reserve(e->lists, &e->caplists, e->nlists + 1, sizeof *lists);
    if (!lists)
        return no_memory(c);
    e->lists = lists;
    lists[e->nlists] = n->list;
    rk_op op = n->a->type == RK_T_INT ? RK_OP_IN_I : RK_OP_IN_S;
    return emit(c, e, op, n->op, e->nlists++);
}

static void emitter_free(emitter *e)
{
    free(e->code);
    free(e->k);
    free(e->lists);
}

/* The opcode of a binary operator node (types already checked and unified). */
static rk_op binary_op(const rk_node *n)
{
    bool ints = n->a->type == RK_T_INT;
    switch (n->op) {
    case RK_TOK_PLUS: return ints ? RK_OP_ADD_I : RK_OP_ADD_F;
    case RK_TOK_MINUS: return ints ? RK_OP_SUB_I : RK_OP_SUB_F;
    case RK_TOK_STAR: return ints ? RK_OP_MUL_I : RK_OP_MUL_F;
    case RK_TOK_SLASH: return RK_OP_DIV_F;
    case RK_TOK_PERCENT: return RK_OP_MOD_I;
    default: break;
    }
    int rel = n->op - RK_TOK_EQ;
    switch (n->a->type) {
    case RK_T_INT: return (rk_op)(RK_OP_EQ_I + rel);
    case RK_T_FLOAT: return (rk_op)(RK_OP_EQ_F + rel);
    case RK_T_STR: return (rk_op)(RK_OP_EQ_S + rel);
    default: return (rk_op)(RK_OP_EQ_B + rel);
    }
}

/* The fused opcode for `name OP constant`, or RK_OP__COUNT when n is not of
 * that shape (a missing constant, a bool, an int name against a float). */
static rk_op slot_const_op(const rk_node *n)
{
    const rk_node *a = n->a, *b = n->b;
    if (n->op < RK_TOK_EQ || n->op > RK_TOK_GE || a->kind != RK_N_NAME || b->kind != RK_N_LIT ||
        b->v.type != a->type)
        return RK_OP__COUNT;
    int rel = n->op - RK_TOK_EQ;
    switch (a->type) {
    case RK_T_INT: return (rk_op)(RK_OP_EQ_I_SK + rel);
    case RK_T_FLOAT: return (rk_op)(RK_OP_EQ_F_SK + rel);
    case RK_T_STR: return (rk_op)(RK_OP_EQ_S_SK + rel); /* only == and != get here */
    default: return RK_OP__COUNT;
    }
}

static const rk_op load_ops[] = {
    [RK_T_INT] = RK_OP_LOAD_I,
    [RK_T_FLOAT] = RK_OP_LOAD_F,
    [RK_T_STR] = RK_OP_LOAD_S,
    [RK_T_BOOL] = RK_OP_LOAD_B,
};

/* Emits n in evaluation order: operands first, so the stack holds them. */
static int gen(compiler *c, emitter *e, const rk_node *n)
{
    int rc = 0;
    switch (n->kind) {
    case RK_N_LIT: return emit_const(c, e, n->v);
    case RK_N_NAME: return emit(c, e, load_ops[n->type], 0, n->slot);
    case RK_N_CONV:
        return (rc = gen(c, e, n->a)) ? rc : emit(c, e, RK_OP_I2F, 0, 0);
    case RK_N_NEG:
        if ((rc = gen(c, e, n->a)))
            return rc;
        return emit(c, e, n->type == RK_T_INT ? RK_OP_NEG_I : RK_OP_NEG_F, 0, 0);
    case RK_N_NOT:
        return (rc = gen(c, e, n->a)) ? rc : emit(c, e, RK_OP_NOT, 0, 0);
    case RK_N_BIN: {
        rk_op fused = slot_const_op(n);
        if (fused != RK_OP__COUNT) {
            if ((rc = emit_const(c, e, n->b->v)))
                return rc;
            /* the CONST just emitted becomes the fused compare; its constant stays */
            rk_insn *last = &e->code[e->ncode - 1];
            *last = (rk_insn){.op = (uint8_t)fused, .b = (uint16_t)n->a->slot, .a = last->a};
            return 0;
        }
        if ((rc = gen(c, e, n->a)) || (rc = gen(c, e, n->b)))
            return rc;
        return emit(c, e, binary_op(n), 0, 0);
    }
    case RK_N_AND:
    case RK_N_OR: {
        /* a; jump past b and the combining op when a alone decides; b; combine */
        bool is_and = n->kind == RK_N_AND;
        if ((rc = gen(c, e, n->a)) || (rc = emit(c, e, is_and ? RK_OP_JF : RK_OP_JT, 0, 0)))
            return rc;
        int jump = e->ncode - 1;
        if ((rc = gen(c, e, n->b)) || (rc = emit(c, e, is_and ? RK_OP_AND : RK_OP_OR, 0, 0)))
            return rc;
        e->code[jump].a = e->ncode;
        return 0;
    }
    case RK_N_IN:
        return (rc = gen(c, e, n->a)) ? rc : emit_in(c, e, n);
    case RK_N_CALL:
        for (const rk_node *arg = n->args; arg; arg = arg->next)
            if ((rc = gen(c, e, arg)))
                return rc;
        return emit(c, e, RK_OP_CALL, 0, n->func);
    }
    return rc;
}

/* ---- constant folding ---- */

static bool is_lit(const rk_node *n) { return !n || n->kind == RK_N_LIT; }

static bool foldable(const rk_node *n)
{
    if (n->kind == RK_N_LIT || n->kind == RK_N_NAME || !is_lit(n->a) || !is_lit(n->b))
        return false;
    if (n->kind == RK_N_IN)
        return n->name == NULL; /* named lists are the loader's: never assume their contents */
    if (n->kind == RK_N_CALL && (rk_funcs[n->func].flags & RK_FN_READS_TXN))
        return false;
    for (const rk_node *arg = n->args; arg; arg = arg->next)
        if (!is_lit(arg))
            return false;
    return true;
}

static bool is_zero(const rk_node *n)
{
    return n->kind == RK_N_LIT &&
           ((n->v.type == RK_T_INT && n->v.i == 0) || (n->v.type == RK_T_FLOAT && n->v.f == 0));
}

/* Evaluates n, whose operands are literals, and turns it into a literal. */
static int fold(compiler *c, rk_node *n)
{
    emitter e = {0};
    int rc = gen(c, &e, n);
    if (rc) {
        emitter_free(&e);
        return rc;
    }
    rk_program p = {.code = e.code, .ncode = e.ncode, .k = e.k, .lists = e.lists};
    rk_eval_ctx ctx = {.arena = &c->fold_arena};
    rk_arena_reset(&c->fold_arena);
    rk_value v = rk_vm_run(&p, NULL, &ctx);
    emitter_free(&e);

    if (ctx.arith_errors) {
        if (n->kind == RK_N_BIN && (n->op == RK_TOK_SLASH || n->op == RK_TOK_PERCENT) &&
            is_zero(n->b))
            return rk_src_error(&c->src, RK_ERANGE, n->tok, "division by zero");
        return rk_src_error(&c->src, RK_ERANGE, n->tok,
                            "arithmetic overflow in constant expression");
    }
    if (v.type == RK_T_STR && v.len > 0) {
        char *s = rk_pool_alloc(&c->pool, v.len); /* the fold arena is reused */
        if (!s)
            return no_memory(c);
        memcpy(s, v.s, v.len);
        v.s = s;
    }
    n->kind = RK_N_LIT;
    n->v = v;
    n->a = n->b = n->args = NULL;
    n->nargs = 0;
    return 0;
}

/* ---- type checking ---- */

static bool numeric(rk_type t) { return t == RK_T_INT || t == RK_T_FLOAT; }

/* Makes the int expression at *np a float: a literal in place, else under a CONV node. */
static int to_float(compiler *c, rk_node **np)
{
    rk_node *n = *np;
    if (n->type != RK_T_INT)
        return 0;
    if (n->kind == RK_N_LIT) {
        if (n->v.type == RK_T_INT)
            n->v = rk_value_float((double)n->v.i);
        n->type = RK_T_FLOAT;
        return 0;
    }
    rk_node *conv = rk_node_new(&c->pool, RK_N_CONV, n->pos, n->tok);
    if (!conv)
        return no_memory(c);
    conv->type = RK_T_FLOAT;
    conv->a = n;
    conv->next = n->next; /* n may be a call argument */
    n->next = NULL;
    *np = conv;
    return 0;
}

/* The names an unknown one is compared with: a table whose entries start with
 * their name, as rk_sym, rk_named_list and rk_func all do. */
typedef struct name_table {
    const void *base; /* the first entry */
    int count;        /* entries */
    size_t stride;    /* bytes from one entry to the next */
    bool stems;       /* also offer a name the unknown one starts with (functions) */
} name_table;

/* The longest candidate of at least 3 characters that name starts with:
 * function names are stems, and analysts write `length(` or `lenght(` for
 * `len(`, `lowercase(` for `lower(`, further from them than a typo. */
static const char *stem_of(const char *name, const char **cands, int count)
{
    const char *best = NULL;
    for (int i = 0; i < count; i++) {
        size_t len = cands[i] ? strlen(cands[i]) : 0;
        if (len >= 3 && strncmp(name, cands[i], len) == 0 && (!best || len > strlen(best)))
            best = cands[i];
    }
    return best;
}

/* "unknown KIND 'name' (did you mean 'x'?)", the parenthesis only when a
 * candidate of t is close enough. */
static int unknown(compiler *c, size_t pos, const char *kind, const char *name, size_t name_len,
                   name_table t)
{
    char want[RK_NAME_MAX * 2];
    snprintf(want, sizeof want, "%.*s", (int)name_len, name);
    const char *best = NULL;
    const char **cands = t.count > 0 ? malloc((size_t)t.count * sizeof *cands) : NULL;
    if (cands) { /* out of memory: no suggestion, the error stands */
        for (int i = 0; i < t.count; i++)
            cands[i] = *(const char *const *)(const void *)((const char *)t.base +
                                                            (size_t)i * t.stride);
        best = rk_suggest(want, cands, (size_t)t.count);
        if (!best && t.stems)
            best = stem_of(want, cands, t.count);
        free(cands);
    }
    if (best)
        return rk_src_error(&c->src, RK_ENOTFOUND, pos, "unknown %s '%s' (did you mean '%s'?)",
                            kind, want, best);
    return rk_src_error(&c->src, RK_ENOTFOUND, pos, "unknown %s '%s'", kind, want);
}

static bool name_is(const char *s, const char *name, size_t len)
{
    return s && strlen(s) == len && memcmp(s, name, len) == 0;
}

static int check_name(compiler *c, rk_node *n)
{
    const rk_expr_env *env = c->src.env;
    for (int i = 0; i < env->nsyms; i++) {
        const rk_sym *s = &env->syms[i];
        if (!name_is(s->name, n->name, n->name_len))
            continue;
        if (env->nvisible > 0 && i >= env->nvisible && env->hidden_msg)
            return rk_src_error(&c->src, RK_EINVAL, n->tok, "%s", env->hidden_msg);
        if (env->nvisible > 0 && i >= env->nvisible)
            return rk_src_error(&c->src, RK_EINVAL, n->tok, "'%s' cannot be used here (%s)",
                                s->name, env->hidden_why ? env->hidden_why : "not allowed");
        if (s->slot < 0 || s->slot >= RK_MAX_SLOTS || s->type < RK_T_INT || s->type > RK_T_BOOL)
            return rk_src_error(&c->src, RK_EINVAL, n->tok, "field '%s' has no valid slot or type",
                                s->name);
        n->slot = s->slot;
        n->type = (uint8_t)s->type;
        return 0;
    }
    int nsuggest = env->nvisible > 0 && env->nvisible < env->nsyms ? env->nvisible : env->nsyms;
    return unknown(c, n->tok, "field", n->name, n->name_len,
                   (name_table){env->syms, nsuggest, sizeof *env->syms, false});
}

static const char *const arg_kind_names[] = {
    [RK_ARG_NUM] = "int or float",
    [RK_ARG_INT] = "int",
    [RK_ARG_STR] = "str",
};

static bool arg_fits(rk_arg_kind kind, rk_type t)
{
    return kind == RK_ARG_ANY || (kind == RK_ARG_NUM && numeric(t)) ||
           (kind == RK_ARG_INT && t == RK_T_INT) || (kind == RK_ARG_STR && t == RK_T_STR);
}

static int check_call(compiler *c, rk_node *n)
{
    int f = rk_func_find(n->name, n->name_len);
    if (f < 0)
        return unknown(c, n->tok, "function", n->name, n->name_len,
                       (name_table){rk_funcs, RK_FN__COUNT, sizeof rk_funcs[0], true});
    const rk_func *fn = &rk_funcs[f];
    n->func = f;
    if (n->nargs != fn->arity)
        return rk_src_error(&c->src, RK_ETYPE, n->tok, "function '%s' takes %d argument%s, got %d",
                            fn->name, fn->arity, fn->arity == 1 ? "" : "s", n->nargs);
    bool all_int = true;
    int i = 0, rc;
    for (rk_node **ap = &n->args; *ap; ap = &(*ap)->next, i++) {
        if ((rc = check(c, ap)))
            return rc;
        rk_type t = (*ap)->type;
        if (!arg_fits(fn->args[i], t))
            return rk_src_error(&c->src, RK_ETYPE, (*ap)->pos,
                                "function '%s' expects %s for argument %d, got %s", fn->name,
                                arg_kind_names[fn->args[i]], i + 1, rk_type_name(t));
        all_int = all_int && t == RK_T_INT;
    }
    switch (fn->result) {
    case RK_RES_BOOL: n->type = RK_T_BOOL; break;
    case RK_RES_INT: n->type = RK_T_INT; break;
    case RK_RES_FLOAT: n->type = RK_T_FLOAT; break;
    case RK_RES_STR: n->type = RK_T_STR; break;
    case RK_RES_SAME: n->type = n->args->type; break;
    case RK_RES_NUM:
        n->type = all_int ? RK_T_INT : RK_T_FLOAT;
        for (rk_node **ap = &n->args; *ap && !all_int; ap = &(*ap)->next)
            if ((rc = to_float(c, ap)))
                return rc;
        break;
    }
    return 0;
}

static int check_unary(compiler *c, rk_node *n)
{
    int rc = check(c, &n->a);
    if (rc)
        return rc;
    rk_type t = n->a->type;
    if (n->kind == RK_N_NOT && t != RK_T_BOOL)
        return rk_src_error(&c->src, RK_ETYPE, n->tok, "'not' expects a bool operand, got %s",
                            rk_type_name(t));
    if (n->kind == RK_N_NEG && !numeric(t))
        return rk_src_error(&c->src, RK_ETYPE, n->tok, "'-' expects a numeric operand, got %s",
                            rk_type_name(t));
    n->type = (uint8_t)t;
    return 0;
}

static int check_binary(compiler *c, rk_node *n)
{
    int rc;
    if ((rc = check(c, &n->a)) || (rc = check(c, &n->b)))
        return rc;
    rk_type ta = n->a->type, tb = n->b->type;
    const char *op = rk_tok_name(n->op);
    bool arith = n->op >= RK_TOK_PLUS && n->op <= RK_TOK_PERCENT;

    if (n->op == RK_TOK_PERCENT && (ta != RK_T_INT || tb != RK_T_INT))
        return rk_src_error(&c->src, RK_ETYPE, n->tok, "'%%' expects int operands, got %s",
                            rk_type_name(ta != RK_T_INT ? ta : tb));
    if (arith && (!numeric(ta) || !numeric(tb)))
        return rk_src_error(&c->src, RK_ETYPE, n->tok, "'%s' expects numeric operands, got %s",
                            op, rk_type_name(!numeric(ta) ? ta : tb));
    if (!arith && !(numeric(ta) && numeric(tb)) && ta != tb)
        return rk_src_error(&c->src, RK_ETYPE, n->tok, "cannot compare %s with %s",
                            rk_type_name(ta), rk_type_name(tb));
    if (!arith && !numeric(ta) && n->op != RK_TOK_EQ && n->op != RK_TOK_NE)
        return rk_src_error(&c->src, RK_ETYPE, n->tok, "cannot order %s values with '%s'",
                            rk_type_name(ta), op);

    /* Mixed int/float operands, and both operands of '/', work in floats. */
    bool floats = (numeric(ta) && ta != tb) || n->op == RK_TOK_SLASH;
    if (floats && ((rc = to_float(c, &n->a)) || (rc = to_float(c, &n->b))))
        return rc;
    n->type = arith ? n->a->type : RK_T_BOOL;
    return 0;
}

/* Replaces the node at *np by its operand keep, which takes over its position. */
static void replace(rk_node **np, rk_node *keep)
{
    rk_node *n = *np;
    keep->pos = n->pos;
    keep->next = n->next;
    *np = keep;
}

static bool lit_bool(const rk_node *n, bool b)
{
    return n->kind == RK_N_LIT && n->v.type == RK_T_BOOL && n->v.b == b;
}

/* and/or: both sides bool; folds when a constant side decides or drops out. */
static int check_logic(compiler *c, rk_node **np)
{
    rk_node *n = *np;
    int rc;
    if ((rc = check(c, &n->a)) || (rc = check(c, &n->b)))
        return rc;
    const char *op = n->kind == RK_N_AND ? "and" : "or";
    if (n->a->type != RK_T_BOOL || n->b->type != RK_T_BOOL)
        return rk_src_error(&c->src, RK_ETYPE, n->tok, "'%s' expects bool operands, got %s", op,
                            rk_type_name(n->a->type != RK_T_BOOL ? n->a->type : n->b->type));
    n->type = RK_T_BOOL;
    bool decides = n->kind == RK_N_OR; /* false decides `and`, true decides `or` */
    if (lit_bool(n->a, decides) || lit_bool(n->b, decides)) {
        n->kind = RK_N_LIT;
        n->v = rk_value_bool(decides);
        n->a = n->b = NULL;
    } else if (lit_bool(n->a, !decides)) {
        replace(np, n->b);
    } else if (lit_bool(n->b, !decides)) {
        replace(np, n->a);
    } else if (foldable(n)) {
        return fold(c, n);
    }
    return 0;
}

static int check_in(compiler *c, rk_node *n)
{
    int rc = check(c, &n->a);
    if (rc)
        return rc;
    rk_type t = n->a->type;
    const char *op = n->op ? "not in" : "in";
    if (t != RK_T_STR && t != RK_T_INT)
        return rk_src_error(&c->src, RK_ETYPE, n->tok,
                            "'%s' expects a str or int on the left, got %s", op, rk_type_name(t));
    n->type = RK_T_BOOL;
    if (n->name) {
        const rk_expr_env *env = c->src.env;
        const rk_named_list *nl = NULL;
        for (int i = 0; i < env->nlists && !nl; i++)
            if (name_is(env->lists[i].name, n->name, n->name_len))
                nl = &env->lists[i];
        if (!nl)
            return unknown(c, n->list_pos, "list", n->name, n->name_len,
                           (name_table){env->lists, env->nlists, sizeof *env->lists, false});
        if (nl->dynamic) {
            /* Members are whatever the store holds when the rule runs: never
             * folded, and an int is looked up by its decimal text. */
            n->list = NULL;
            n->dyn_index = nl->dyn_index;
            return 0;
        }
        if (!nl->list)
            return rk_src_error(&c->src, RK_EINVAL, n->list_pos,
                                "list '%s' is neither dynamic nor given members", nl->name);
        if (t == RK_T_INT && !rk_list_all_int(nl->list)) {
            char what[RK_NAME_MAX * 2];
            if (n->a->kind == RK_N_NAME)
                snprintf(what, sizeof what, "int '%.*s'", (int)n->a->name_len, n->a->name);
            else
                snprintf(what, sizeof what, "an int expression");
            return rk_src_error(&c->src, RK_ETYPE, n->list_pos,
                                "list '%s' has non-integer members; cannot test %s", nl->name,
                                what);
        }
        n->list = nl->list;
        return 0;
    }

    rk_list **owned = reserve(c->owned, &c->capowned, c->nowned + 1, sizeof *owned);
    rk_list *l = owned ? rk_list_new() : NULL;
    if (owned)
        c->owned = owned;
    if (!l)
        return no_memory(c);
    c->owned[c->nowned++] = l;
    n->list = l;
    for (const rk_node *m = n->args; m; m = m->next) {
        if (m->type != t)
            return rk_src_error(&c->src, RK_ETYPE, m->tok,
                                "set members must be %s like the left side, got %s",
                                rk_type_name(t), rk_type_name(m->type));
        rc = t == RK_T_INT ? rk_list_add_int(l, m->v.i) : rk_list_add(l, m->v.s, m->v.len);
        if (rc)
            return no_memory(c);
    }
    return 0;
}

/* Resolves, type-checks and folds the subtree at *np (which folding may replace). */
static int check(compiler *c, rk_node **np)
{
    rk_node *n = *np;
    int rc = 0;
    switch (n->kind) {
    case RK_N_LIT:
    case RK_N_CONV: return 0;
    case RK_N_NAME: return check_name(c, n);
    case RK_N_AND:
    case RK_N_OR: return check_logic(c, np);
    case RK_N_CALL: rc = check_call(c, n); break;
    case RK_N_NEG:
    case RK_N_NOT: rc = check_unary(c, n); break;
    case RK_N_BIN: rc = check_binary(c, n); break;
    case RK_N_IN: rc = check_in(c, n); break;
    }
    return rc ? rc : foldable(n) ? fold(c, n) : 0;
}

/* ---- the compiled expression ---- */

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Moves the program into one allocation and takes over the inline sets. */
static int finish(compiler *c, const emitter *e, rk_type type, rk_expr **out)
{
    size_t strbytes = 0;
    for (int i = 0; i < e->nk; i++)
        if (e->k[i].type == RK_T_STR)
            strbytes += e->k[i].len;
    size_t off_code = align8(sizeof(rk_expr));
    size_t off_k = off_code + align8((size_t)e->ncode * sizeof(rk_insn));
    size_t off_lists = off_k + (size_t)e->nk * sizeof(rk_value);
    size_t off_owned = off_lists + (size_t)e->nlists * sizeof(rk_list *);
    size_t off_str = off_owned + (size_t)c->nowned * sizeof(rk_list *);
    char *block = malloc(off_str + strbytes);
    if (!block)
        return no_memory(c);

    rk_expr *x = (rk_expr *)(void *)block;
    rk_insn *code = (rk_insn *)(void *)(block + off_code);
    rk_value *k = (rk_value *)(void *)(block + off_k);
    const rk_list **lists = (const rk_list **)(void *)(block + off_lists);
    char *str = block + off_str;
    memcpy(code, e->code, (size_t)e->ncode * sizeof *code);
    for (int i = 0; i < e->nk; i++) {
        k[i] = e->k[i];
        if (k[i].type == RK_T_STR) {
            if (k[i].len)
                memcpy(str, k[i].s, k[i].len);
            k[i].s = str;
            str += k[i].len;
        }
    }
    if (e->nlists)
        memcpy(lists, e->lists, (size_t)e->nlists * sizeof *lists);
    x->prog = (rk_program){.code = code, .ncode = e->ncode, .k = k, .lists = lists};
    x->type = type;
    x->nconst = e->nk;
    x->nlists = e->nlists;
    x->max_stack = e->max_depth;
    x->owned = (rk_list **)(void *)(block + off_owned);
    x->nowned = c->nowned;
    if (c->nowned)
        memcpy(x->owned, c->owned, (size_t)c->nowned * sizeof *x->owned);
    c->nowned = 0; /* the expression owns them now */
    *out = x;
    return 0;
}

int rk_expr_compile(const char *text, size_t len, const rk_expr_env *env, rk_type want,
                    rk_expr **out, rk_diag *diag)
{
    static const rk_expr_env no_env = {.line = 1, .col = 1, .cont_col = 1};
    compiler c = {.src = {.text = text ? text : "", .len = text ? len : 0,
                          .env = env ? env : &no_env, .diag = diag}};
    if (!out)
        return rk_src_error(&c.src, RK_EINVAL, 0, "invalid argument");
    if (len > RK_EXPR_MAX_LEN)
        return rk_src_error(&c.src, RK_EPARSE, 0, "expression too long (limit %d bytes)",
                            RK_EXPR_MAX_LEN);
    if (rk_arena_init(&c.fold_arena, len + 64))
        return no_memory(&c);

    emitter e = {0};
    rk_node *root = NULL;
    int rc = rk_parse(&c.src, &c.pool, &root);
    if (!rc)
        rc = check(&c, &root);
    if (!rc && want != RK_T_MISSING && root->type != want)
        rc = rk_src_error(&c.src, RK_ETYPE, root->pos, "expected a %s expression, got %s",
                          rk_type_name(want), rk_type_name(root->type));
    if (!rc)
        rc = gen(&c, &e, root);
    if (!rc && e.max_depth > RK_EVAL_STACK)
        rc = rk_src_error(&c.src, RK_EPARSE, root->pos, "expression too complex");
    if (!rc)
        rc = finish(&c, &e, root->type, out);

    emitter_free(&e);
    for (int i = 0; i < c.nowned; i++)
        rk_list_free(c.owned[i]);
    free(c.owned);
    rk_pool_free(&c.pool);
    rk_arena_free(&c.fold_arena);
    return rc;
}

void rk_expr_free(rk_expr *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->nowned; i++)
        rk_list_free(e->owned[i]);
    free(e);
}

rk_type rk_expr_type(const rk_expr *e)
{
    return e ? e->type : RK_T_MISSING;
}
