/* Inside a compiled expression: the instruction set, the layout of rk_expr,
 * and the VM entry point shared by the evaluator and the constant folder
 * (internal to src/rules and its tests).
 *
 * The compiled form is flat: one contiguous array of fixed-size instructions,
 * an array of constants and an array of the sets `in` tests, all in the same
 * allocation as the rk_expr header. The VM runs the array on ctx->stack.
 * Types are resolved at compile time, so each instruction knows the types of
 * its operands; at run time a value is either of that type or missing. */
#ifndef RK_EXPR_INT_H
#define RK_EXPR_INT_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rules/expr.h"
#include "rules/list.h"

/* Opcodes: name, net effect on the stack depth, and what the operands of
 * rk_insn are. The suffix gives the operand type (_I int, _F float, _S str,
 * _B bool); _SK compares a slot with a constant that is never missing, which
 * saves two dispatches on `amount >= 100000` (as Lua's EQK and LTI do).
 * CALL's effect is 1 - arity, worked out from rk_funcs. */
#define RK_OP_MAP(XX)                                                                \
    XX(CONST, 1, K)      /* push k[a] */                                             \
    XX(LOAD_I, 1, SLOT)  /* push slots[a] when it holds an int, else missing */      \
    XX(LOAD_F, 1, SLOT)  /* same for a float (an int slot value is converted) */     \
    XX(LOAD_S, 1, SLOT)                                                              \
    XX(LOAD_B, 1, SLOT)                                                              \
    XX(I2F, 0, NONE)     /* int on top becomes a float */                            \
    XX(NEG_I, 0, NONE)                                                               \
    XX(NEG_F, 0, NONE)                                                               \
    XX(NOT, 0, NONE)                                                                 \
    XX(ADD_I, -1, NONE)                                                              \
    XX(SUB_I, -1, NONE)                                                              \
    XX(MUL_I, -1, NONE)                                                              \
    XX(MOD_I, -1, NONE)                                                              \
    XX(ADD_F, -1, NONE)                                                              \
    XX(SUB_F, -1, NONE)                                                              \
    XX(MUL_F, -1, NONE)                                                              \
    XX(DIV_F, -1, NONE)                                                              \
    XX(EQ_I, -1, NONE)                                                               \
    XX(NE_I, -1, NONE)                                                               \
    XX(LT_I, -1, NONE)                                                               \
    XX(LE_I, -1, NONE)                                                               \
    XX(GT_I, -1, NONE)                                                               \
    XX(GE_I, -1, NONE)                                                               \
    XX(EQ_F, -1, NONE)                                                               \
    XX(NE_F, -1, NONE)                                                               \
    XX(LT_F, -1, NONE)                                                               \
    XX(LE_F, -1, NONE)                                                               \
    XX(GT_F, -1, NONE)                                                               \
    XX(GE_F, -1, NONE)                                                               \
    XX(EQ_S, -1, NONE)                                                               \
    XX(NE_S, -1, NONE)                                                               \
    XX(EQ_B, -1, NONE)                                                               \
    XX(NE_B, -1, NONE)                                                               \
    XX(EQ_I_SK, 1, SK)   /* push slots[b] == k[a]: the commonest rule shape, fused */ \
    XX(NE_I_SK, 1, SK)                                                               \
    XX(LT_I_SK, 1, SK)                                                               \
    XX(LE_I_SK, 1, SK)                                                               \
    XX(GT_I_SK, 1, SK)                                                               \
    XX(GE_I_SK, 1, SK)                                                               \
    XX(EQ_F_SK, 1, SK)                                                               \
    XX(NE_F_SK, 1, SK)                                                               \
    XX(LT_F_SK, 1, SK)                                                               \
    XX(LE_F_SK, 1, SK)                                                               \
    XX(GT_F_SK, 1, SK)                                                               \
    XX(GE_F_SK, 1, SK)                                                               \
    XX(EQ_S_SK, 1, SK)                                                               \
    XX(NE_S_SK, 1, SK)                                                               \
    XX(IN_S, 0, LIST)    /* top in lists[a]; aux 1 negates (`not in`) */             \
    XX(IN_I, 0, LIST)                                                                \
    XX(IN_DYN, 0, DYN)   /* top in dynamic list a: asks ctx->dyn_has */              \
    XX(JF, 0, JUMP)      /* jump to a when top is false, leaving it as the result */ \
    XX(JT, 0, JUMP)      /* jump to a when top is true, leaving it as the result */  \
    XX(AND, -1, NONE)    /* three-valued and of the two on top */                    \
    XX(OR, -1, NONE)                                                                 \
    XX(CALL, 0, FUNC)    /* rk_funcs[a] on the arity values on top */

/* What an instruction's operand a refers to. */
typedef enum rk_operand {
    RK_OPND_NONE,
    RK_OPND_K,    /* index into the constants */
    RK_OPND_SLOT, /* slot of the transaction */
    RK_OPND_LIST, /* index into the list table */
    RK_OPND_JUMP, /* instruction index */
    RK_OPND_FUNC, /* index into rk_funcs */
    RK_OPND_SK,   /* b a slot, a index into the constants */
    RK_OPND_DYN,  /* a dynamic list's index, passed to ctx->dyn_has */
} rk_operand;

typedef enum rk_op {
#define XX(name, effect, operand) RK_OP_##name,
    RK_OP_MAP(XX)
#undef XX
    RK_OP__COUNT,
} rk_op;

/* Net stack effect of each opcode (CALL: see RK_OP_MAP). */
extern const int8_t rk_op_effect[RK_OP__COUNT];
/* What each opcode's operand is. */
extern const uint8_t rk_op_operand[RK_OP__COUNT];
/* "CONST", "LOAD_I", ... */
extern const char *const rk_op_names[RK_OP__COUNT];

typedef struct rk_insn {
    uint8_t op;  /* an rk_op */
    uint8_t aux; /* IN_* (IN_DYN too): 1 for `not in` */
    uint16_t b;  /* *_SK: the slot */
    int32_t a;   /* constant, slot, list, jump target or function index */
} rk_insn;

/* What the VM runs: code plus the tables its operands index. */
typedef struct rk_program {
    const rk_insn *code;         /* the instructions, run from 0 to ncode */
    int ncode;                   /* their count */
    const rk_value *k;           /* constants; strings point into the expression's own storage */
    const rk_list *const *lists; /* sets tested by IN_*: inline ones and named ones */
} rk_program;

struct rk_expr {
    rk_program prog;  /* points into the same allocation */
    rk_type type;     /* static result type */
    int nconst;       /* entries of prog.k */
    int nlists;       /* entries of prog.lists */
    int max_stack;    /* deepest stack evaluation reaches, at most RK_EVAL_STACK */
    rk_list **owned;  /* inline sets, freed with the expression */
    int nowned;       /* entries of owned */
};

/* Runs p over slots (NULL when p reads none) on ctx->stack and returns the value
 * left on top. p must have been checked by the compiler (stack depth, types). */
rk_value rk_vm_run(const rk_program *p, const rk_value *slots, rk_eval_ctx *ctx);

/* Writes the instructions, one per line ("CONST 7", "LOAD_I 2", "JF 4", "GT_I"), into buf.
 * For tests. Returns buf. */
char *rk_expr_disasm(const rk_expr *e, char *buf, size_t size);

/* Results of arithmetic: an overflow or a non-finite float is missing and
 * counted, so that a rule cannot match on garbage and operators can see it. */
static inline rk_value rk_arith_int(bool overflow, int64_t r, rk_eval_ctx *ctx)
{
    if (overflow) {
        ctx->arith_errors++;
        return rk_value_missing();
    }
    return rk_value_int(r);
}

static inline rk_value rk_arith_float(double r, rk_eval_ctx *ctx)
{
    if (!isfinite(r)) {
        ctx->arith_errors++;
        return rk_value_missing();
    }
    return rk_value_float(r);
}

#endif
