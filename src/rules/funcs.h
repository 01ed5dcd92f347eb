/* The built-in functions of the rule language, registered in one table
 * (internal to src/rules).
 *
 * An entry gives the name analysts write, the arity, what each argument must
 * be, how the result type follows from the arguments, flags, and the
 * evaluator. The compiler checks calls against the table and folds calls of
 * constants through the same evaluators the VM calls, so compile-time and
 * run-time results cannot differ. */
#ifndef RK_FUNCS_H
#define RK_FUNCS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/value.h"
#include "rules/expr.h"

/* What an argument must be. */
typedef enum rk_arg_kind {
    RK_ARG_NONE, /* no such argument */
    RK_ARG_ANY,  /* any type */
    RK_ARG_NUM,  /* int or float */
    RK_ARG_INT,  /* int */
    RK_ARG_STR,  /* str */
} rk_arg_kind;

/* How the result type follows from the arguments. */
typedef enum rk_result_kind {
    RK_RES_BOOL,
    RK_RES_INT,
    RK_RES_FLOAT,
    RK_RES_STR,
    RK_RES_SAME, /* the type of argument 1 */
    RK_RES_NUM,  /* int if every argument is int; else float, and int arguments are converted */
} rk_result_kind;

enum {
    RK_FN_SEES_MISSING = 1, /* sees missing arguments (exists); else missing in, missing out */
    RK_FN_READS_TXN = 2,    /* reads the transaction's slots (age): never folded at compile time */
};

/* enum suffix, name, arity, argument 1, argument 2, result, flags.
 * The evaluator of NAME is fn_<name> in funcs.c. */
#define RK_FUNC_MAP(XX)                                                     \
    XX(EXISTS, exists, 1, ANY, NONE, BOOL, RK_FN_SEES_MISSING)              \
    XX(ABS, abs, 1, NUM, NONE, SAME, 0)                                     \
    XX(MIN, min, 2, NUM, NUM, NUM, 0)                                       \
    XX(MAX, max, 2, NUM, NUM, NUM, 0)                                       \
    XX(LOG, log, 1, NUM, NONE, FLOAT, 0)                                    \
    XX(LEN, len, 1, STR, NONE, INT, 0)                                      \
    XX(LOWER, lower, 1, STR, NONE, STR, 0)                                  \
    XX(UPPER, upper, 1, STR, NONE, STR, 0)                                  \
    XX(STARTS_WITH, starts_with, 2, STR, STR, BOOL, 0)                      \
    XX(ENDS_WITH, ends_with, 2, STR, STR, BOOL, 0)                          \
    XX(HOUR, hour, 1, INT, NONE, INT, 0)                                    \
    XX(WEEKDAY, weekday, 1, INT, NONE, INT, 0)                              \
    XX(AGE, age, 1, INT, NONE, INT, RK_FN_READS_TXN)

enum {
#define XX(id, name, arity, a1, a2, res, flags) RK_FN_##id,
    RK_FUNC_MAP(XX)
#undef XX
    RK_FN__COUNT,
};

#define RK_FUNC_MAX_ARGS 2

/* An evaluator: args holds arity values, each of the declared kind or (with
 * RK_FN_SEES_MISSING) missing. slots may be NULL when folding. Never fails:
 * problems give a missing value (counted in ctx->arith_errors when they are
 * arithmetic errors). */
typedef rk_value rk_func_fn(const rk_value *args, const rk_value *slots, rk_eval_ctx *ctx);

typedef struct rk_func {
    const char *name;                 /* as analysts write it */
    uint8_t arity;                    /* 1..RK_FUNC_MAX_ARGS */
    uint8_t args[RK_FUNC_MAX_ARGS];   /* rk_arg_kind of each argument */
    uint8_t result;                   /* an rk_result_kind */
    uint8_t flags;                    /* RK_FN_* */
    rk_func_fn *fn;                   /* the evaluator */
} rk_func;

extern const rk_func rk_funcs[RK_FN__COUNT];

/* Index into rk_funcs of the function named (name, len), or -1. */
int rk_func_find(const char *name, size_t len);

#endif
