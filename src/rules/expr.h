/* The rule expression language (DESIGN.md section 3): lexer, recursive-descent
 * parser, type checker with constant folding, and a flat compiled form that
 * evaluates with no allocation.
 *
 * Names resolve against an environment of symbols (fields, schema extras,
 * counters, model.score — each with a static type and a slot in rk_txn) and of
 * named lists. Errors are reported with the file, line and column of the
 * offending token, and a "did you mean" suggestion for unknown names. */
#ifndef RK_EXPR_H
#define RK_EXPR_H

#include <stdint.h>

#include "lib/arena.h"
#include "lib/diag.h"
#include "lib/value.h"
#include "rules/list.h"

typedef struct rk_expr rk_expr;

/* A name an expression may read. */
typedef struct rk_sym {
    const char *name; /* "amount", "acct_txn_1h", "model.score" */
    rk_type type;     /* static type: RK_T_INT, RK_T_FLOAT, RK_T_STR or RK_T_BOOL */
    int slot;         /* index into the slots array given to rk_expr_eval */
} rk_sym;

/* A list that `x in @name` may test. A static list's members are known when
 * the expression compiles; a dynamic list's live in the state store, so
 * `x in @name` over it is never folded and asks ctx->dyn_has at run time (an
 * int x by its decimal text, as the store hashes it). */
typedef struct rk_named_list {
    const char *name;     /* list name, without the '@' */
    const rk_list *list;  /* members of a static list; NULL for a dynamic one */
    bool dynamic;         /* kept in the store: membership asked of ctx->dyn_has */
    int dyn_index;        /* dynamic: the index passed to ctx->dyn_has */
} rk_named_list;

/* What the compiler resolves names against, and where the text sits in its
 * file (for diagnostics). The expression text may span lines (YAML block
 * scalars): line n > 1 of the text starts at column cont_col. */
typedef struct rk_expr_env {
    const rk_sym *syms;         /* names the expression may read */
    int nsyms;                  /* entries in syms */
    const rk_named_list *lists; /* lists `in @name` may test */
    int nlists;                 /* entries in lists */
    const char *file;           /* for diagnostics */
    int line;                   /* 1-based line of the first character of the text */
    int col;                    /* 1-based column of the first character of the text */
    int cont_col;               /* 1-based column where continuation lines start */
    int nvisible;               /* > 0: only syms[0..nvisible) may be read here; the rest are refused by name */
    const char *hidden_why;     /* why the rest are refused, for "'x' cannot be used here (WHY)" */
    const char *hidden_msg;     /* when set: the whole message for reading one of the rest */
} rk_expr_env;

/* Compiles text (len bytes, need not be NUL-terminated). want is the required
 * result type (RK_T_BOOL for a rule's `when`), or RK_T_MISSING for any.
 * Returns 0 and sets *out, or a negative code (RK_EPARSE, RK_ETYPE,
 * RK_ENOTFOUND, RK_ENOMEM; RK_EINVAL for a name env->nvisible hides) with
 * diag set to the first problem, positioned at
 * the offending token, e.g. `rules.yaml:42:17: unknown field 'amout' (did you
 * mean 'amount'?)`. Also RK_ERANGE when a constant subexpression divides by
 * zero or overflows (`1 / 0`), and RK_EINVAL when out is NULL or a symbol has
 * a slot outside [0, RK_MAX_SLOTS) or no value type, or a static list has no
 * rk_list. *out is untouched on
 * error. env may be NULL (no names; positions from 1:1). */
int rk_expr_compile(const char *text, size_t len, const rk_expr_env *env, rk_type want,
                    rk_expr **out, rk_diag *diag);
void rk_expr_free(rk_expr *e);

/* Static result type of a compiled expression. */
rk_type rk_expr_type(const rk_expr *e);

/* Per-evaluation context, owned by one worker. */
#define RK_EVAL_STACK 64 /* value stack depth; the compiler rejects deeper expressions */
typedef struct rk_eval_ctx {
    rk_arena *arena;       /* scratch for strings built by lower()/upper(); the caller resets it per request */
    uint64_t arith_errors; /* division/modulo by zero and int64 overflows seen (missing results) */
    /* Membership of v in dynamic list `list` (rk_named_list.dyn_index): 1 yes,
     * 0 no, negative when the look-up failed (the test is then unknown).
     * NULL: every dynamic list is empty (riskctl test, backtest without state). */
    int (*dyn_has)(void *ud, int list, const rk_value *v);
    void *dyn_ud;          /* passed to dyn_has */
    rk_value stack[RK_EVAL_STACK]; /* evaluation stack, so evaluation never allocates */
} rk_eval_ctx;

/* Evaluates e over slots (indexed as the rk_sym slots it was compiled with).
 * Never fails: problems in the data (division by zero, overflow, arena
 * exhausted) give a missing value. A boolean expression yields RK_T_BOOL or
 * RK_T_MISSING (unknown). Returned strings are valid until the arena is reset
 * and the slots' buffers live. */
rk_value rk_expr_eval(const rk_expr *e, const rk_value *slots, rk_eval_ctx *ctx);

#endif
