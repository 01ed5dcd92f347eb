/* The VM: runs a compiled expression's flat instruction array over a
 * transaction's slots, on the worker's ctx->stack, allocating nothing.
 *
 * The compiler has checked every type and the stack depth, so an instruction
 * trusts that its operands are of its types or missing; the loads enforce
 * that at the boundary, turning a slot of an unexpected type into missing, so
 * no caller mistake or odd input can make the VM read a string where there is
 * an int. Missing values follow SQL's three-valued logic (DESIGN.md section 3):
 * comparisons, `in` and arithmetic with a missing operand give missing
 * (unknown), `and`/`or` give false/true when one side decides it, and every
 * arithmetic error (division by zero, int64 overflow, a non-finite float)
 * gives missing and is counted in ctx->arith_errors. Dynamic lists are the
 * one thing the VM asks outside itself (ctx->dyn_has, the store's look-up);
 * a failed look-up is unknown, like a missing operand. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "proto/txn.h"
#include "rules/expr_int.h"
#include "rules/funcs.h"

const int8_t rk_op_effect[RK_OP__COUNT] = {
#define XX(name, effect, operand) effect,
    RK_OP_MAP(XX)
#undef XX
};

const uint8_t rk_op_operand[RK_OP__COUNT] = {
#define XX(name, effect, operand) RK_OPND_##operand,
    RK_OP_MAP(XX)
#undef XX
};

const char *const rk_op_names[RK_OP__COUNT] = {
#define XX(name, effect, operand) #name,
    RK_OP_MAP(XX)
#undef XX
};

/* What the VM reads when the caller has no slots: every name is missing. */
static const rk_value no_slots[RK_MAX_SLOTS];

static inline bool known(rk_value v) { return v.type != RK_T_MISSING; }
static inline bool both(rk_value a, rk_value b) { return known(a) && known(b); }
static inline bool is_false(rk_value v) { return v.type == RK_T_BOOL && !v.b; }
static inline bool is_true(rk_value v) { return v.type == RK_T_BOOL && v.b; }

/* A truth value: r when the operands were known, else unknown. */
static inline rk_value truth(bool ok, bool r) { return ok ? rk_value_bool(r) : rk_value_missing(); }

static inline rk_value load(rk_value v, rk_type want)
{
    return v.type == want ? v : rk_value_missing();
}

/* A float slot also accepts an int (the decoder may pass `100` for 100.0);
 * NaN is missing, since it compares as neither true nor false. */
static inline rk_value load_float(rk_value v)
{
    if (v.type == RK_T_INT)
        return rk_value_float((double)v.i);
    return v.type == RK_T_FLOAT && v.f == v.f ? v : rk_value_missing();
}

static inline rk_value add_i(rk_value a, rk_value b, rk_eval_ctx *ctx)
{
    int64_t r;
    if (!both(a, b))
        return rk_value_missing();
    bool overflow = __builtin_add_overflow(a.i, b.i, &r);
    return rk_arith_int(overflow, r, ctx);
}

static inline rk_value sub_i(rk_value a, rk_value b, rk_eval_ctx *ctx)
{
    int64_t r;
    if (!both(a, b))
        return rk_value_missing();
    bool overflow = __builtin_sub_overflow(a.i, b.i, &r);
    return rk_arith_int(overflow, r, ctx);
}

static inline rk_value mul_i(rk_value a, rk_value b, rk_eval_ctx *ctx)
{
    int64_t r;
    if (!both(a, b))
        return rk_value_missing();
    bool overflow = __builtin_mul_overflow(a.i, b.i, &r);
    return rk_arith_int(overflow, r, ctx);
}

/* C's %: the sign of the dividend. INT64_MIN % -1 traps on x86, so it is an overflow. */
static inline rk_value mod_i(rk_value a, rk_value b, rk_eval_ctx *ctx)
{
    if (!both(a, b))
        return rk_value_missing();
    bool bad = b.i == 0 || (a.i == INT64_MIN && b.i == -1);
    return rk_arith_int(bad, bad ? 0 : a.i % b.i, ctx);
}

static inline rk_value arith_f(rk_value a, rk_value b, double r, rk_eval_ctx *ctx)
{
    return both(a, b) ? rk_arith_float(r, ctx) : rk_value_missing();
}

static inline rk_value div_f(rk_value a, rk_value b, rk_eval_ctx *ctx)
{
    if (!both(a, b))
        return rk_value_missing();
    if (b.f == 0) {
        ctx->arith_errors++;
        return rk_value_missing();
    }
    return rk_arith_float(a.f / b.f, ctx);
}

static inline rk_value neg_i(rk_value a, rk_eval_ctx *ctx)
{
    int64_t r;
    if (!known(a))
        return rk_value_missing();
    bool overflow = __builtin_sub_overflow(0, a.i, &r);
    return rk_arith_int(overflow, r, ctx);
}

/* String and bool equality look at the payload only when both are known. */
static inline rk_value eq_s(rk_value a, rk_value b, bool want)
{
    if (!both(a, b))
        return rk_value_missing();
    bool eq = a.len == b.len && (a.len == 0 || memcmp(a.s, b.s, a.len) == 0);
    return rk_value_bool(eq == want);
}

static inline rk_value eq_b(rk_value a, rk_value b, bool want)
{
    return both(a, b) ? rk_value_bool((a.b == b.b) == want) : rk_value_missing();
}

/* Three-valued and/or: a false (true) side decides whatever the other is. */
static inline rk_value and3(rk_value a, rk_value b)
{
    if (is_false(a) || is_false(b))
        return rk_value_bool(false);
    return both(a, b) ? rk_value_bool(true) : rk_value_missing();
}

static inline rk_value or3(rk_value a, rk_value b)
{
    if (is_true(a) || is_true(b))
        return rk_value_bool(true);
    return both(a, b) ? rk_value_bool(false) : rk_value_missing();
}

/* `v in @list` for a dynamic list (v known, a str or an int): the store's
 * answer through ctx->dyn_has, unknown when the look-up failed; without a
 * store every dynamic list is empty. neg is 1 for `not in`. */
static inline rk_value in_dyn(const rk_value *v, int list, int neg, rk_eval_ctx *ctx)
{
    int r = ctx->dyn_has ? ctx->dyn_has(ctx->dyn_ud, list, v) : 0;
    return r < 0 ? rk_value_missing() : rk_value_bool((r > 0) != neg);
}

static inline rk_value call(const rk_func *f, const rk_value *args, const rk_value *slots,
                            rk_eval_ctx *ctx)
{
    if (!(f->flags & RK_FN_SEES_MISSING))
        for (int i = 0; i < f->arity; i++)
            if (!known(args[i]))
                return rk_value_missing();
    return f->fn(args, slots, ctx);
}

rk_value rk_vm_run(const rk_program *p, const rk_value *slots, rk_eval_ctx *ctx)
{
    const rk_insn *code = p->code;
    const rk_value *k = p->k;
    rk_value *sp = ctx->stack; /* the next free entry; sp[-1] is the top */
    if (!slots)
        slots = no_slots;
    int pc = 0, n = p->ncode;
    rk_value v; /* the slot a *_SK instruction compares */
    while (pc < n) {
        const rk_insn in = code[pc++];
        switch ((rk_op)in.op) {
        case RK_OP_CONST: *sp++ = k[in.a]; break;
        case RK_OP_LOAD_I: *sp++ = load(slots[in.a], RK_T_INT); break;
        case RK_OP_LOAD_F: *sp++ = load_float(slots[in.a]); break;
        case RK_OP_LOAD_S: *sp++ = load(slots[in.a], RK_T_STR); break;
        case RK_OP_LOAD_B: *sp++ = load(slots[in.a], RK_T_BOOL); break;
        case RK_OP_I2F:
            if (sp[-1].type == RK_T_INT)
                sp[-1] = rk_value_float((double)sp[-1].i);
            break;
        case RK_OP_NEG_I: sp[-1] = neg_i(sp[-1], ctx); break;
        case RK_OP_NEG_F:
            if (known(sp[-1]))
                sp[-1].f = -sp[-1].f;
            break;
        case RK_OP_NOT:
            sp[-1] = truth(known(sp[-1]), !is_true(sp[-1]));
            break;
        case RK_OP_ADD_I: sp--; sp[-1] = add_i(sp[-1], sp[0], ctx); break;
        case RK_OP_SUB_I: sp--; sp[-1] = sub_i(sp[-1], sp[0], ctx); break;
        case RK_OP_MUL_I: sp--; sp[-1] = mul_i(sp[-1], sp[0], ctx); break;
        case RK_OP_MOD_I: sp--; sp[-1] = mod_i(sp[-1], sp[0], ctx); break;
        case RK_OP_ADD_F: sp--; sp[-1] = arith_f(sp[-1], sp[0], sp[-1].f + sp[0].f, ctx); break;
        case RK_OP_SUB_F: sp--; sp[-1] = arith_f(sp[-1], sp[0], sp[-1].f - sp[0].f, ctx); break;
        case RK_OP_MUL_F: sp--; sp[-1] = arith_f(sp[-1], sp[0], sp[-1].f * sp[0].f, ctx); break;
        case RK_OP_DIV_F: sp--; sp[-1] = div_f(sp[-1], sp[0], ctx); break;
        case RK_OP_EQ_I: sp--; sp[-1] = truth(both(sp[-1], sp[0]), sp[-1].i == sp[0].i); break;
        case RK_OP_NE_I: sp--; sp[-1] = truth(both(sp[-1], sp[0]), sp[-1].i != sp[0].i); break;
        case RK_OP_LT_I: sp--; sp[-1] = truth(both(sp[-1], sp[0]), sp[-1].i < sp[0].i); break;
        case RK_OP_LE_I: sp--; sp[-1] = truth(both(sp[-1], sp[0]), sp[-1].i <= sp[0].i); break;
        case RK_OP_GT_I: sp--; sp[-1] = truth(both(sp[-1], sp[0]), sp[-1].i > sp[0].i); break;
        case RK_OP_GE_I: sp--; sp[-1] = truth(both(sp[-1], sp[0]), sp[-1].i >= sp[0].i); break;
        case RK_OP_EQ_F: sp--; sp[-1] = truth(both(sp[-1], sp[0]), sp[-1].f == sp[0].f); break;
        case RK_OP_NE_F: sp--; sp[-1] = truth(both(sp[-1], sp[0]), sp[-1].f != sp[0].f); break;
        case RK_OP_LT_F: sp--; sp[-1] = truth(both(sp[-1], sp[0]), sp[-1].f < sp[0].f); break;
        case RK_OP_LE_F: sp--; sp[-1] = truth(both(sp[-1], sp[0]), sp[-1].f <= sp[0].f); break;
        case RK_OP_GT_F: sp--; sp[-1] = truth(both(sp[-1], sp[0]), sp[-1].f > sp[0].f); break;
        case RK_OP_GE_F: sp--; sp[-1] = truth(both(sp[-1], sp[0]), sp[-1].f >= sp[0].f); break;
        case RK_OP_EQ_S: sp--; sp[-1] = eq_s(sp[-1], sp[0], true); break;
        case RK_OP_NE_S: sp--; sp[-1] = eq_s(sp[-1], sp[0], false); break;
        case RK_OP_EQ_B: sp--; sp[-1] = eq_b(sp[-1], sp[0], true); break;
        case RK_OP_NE_B: sp--; sp[-1] = eq_b(sp[-1], sp[0], false); break;
        case RK_OP_EQ_I_SK:
            v = load(slots[in.b], RK_T_INT);
            *sp++ = truth(known(v), v.i == k[in.a].i);
            break;
        case RK_OP_NE_I_SK:
            v = load(slots[in.b], RK_T_INT);
            *sp++ = truth(known(v), v.i != k[in.a].i);
            break;
        case RK_OP_LT_I_SK:
            v = load(slots[in.b], RK_T_INT);
            *sp++ = truth(known(v), v.i < k[in.a].i);
            break;
        case RK_OP_LE_I_SK:
            v = load(slots[in.b], RK_T_INT);
            *sp++ = truth(known(v), v.i <= k[in.a].i);
            break;
        case RK_OP_GT_I_SK:
            v = load(slots[in.b], RK_T_INT);
            *sp++ = truth(known(v), v.i > k[in.a].i);
            break;
        case RK_OP_GE_I_SK:
            v = load(slots[in.b], RK_T_INT);
            *sp++ = truth(known(v), v.i >= k[in.a].i);
            break;
        case RK_OP_EQ_F_SK:
            v = load_float(slots[in.b]);
            *sp++ = truth(known(v), v.f == k[in.a].f);
            break;
        case RK_OP_NE_F_SK:
            v = load_float(slots[in.b]);
            *sp++ = truth(known(v), v.f != k[in.a].f);
            break;
        case RK_OP_LT_F_SK:
            v = load_float(slots[in.b]);
            *sp++ = truth(known(v), v.f < k[in.a].f);
            break;
        case RK_OP_LE_F_SK:
            v = load_float(slots[in.b]);
            *sp++ = truth(known(v), v.f <= k[in.a].f);
            break;
        case RK_OP_GT_F_SK:
            v = load_float(slots[in.b]);
            *sp++ = truth(known(v), v.f > k[in.a].f);
            break;
        case RK_OP_GE_F_SK:
            v = load_float(slots[in.b]);
            *sp++ = truth(known(v), v.f >= k[in.a].f);
            break;
        case RK_OP_EQ_S_SK:
            *sp++ = eq_s(load(slots[in.b], RK_T_STR), k[in.a], true);
            break;
        case RK_OP_NE_S_SK:
            *sp++ = eq_s(load(slots[in.b], RK_T_STR), k[in.a], false);
            break;
        case RK_OP_IN_S:
            if (known(sp[-1]))
                sp[-1] = rk_value_bool(rk_list_has(p->lists[in.a], sp[-1].s, sp[-1].len) != in.aux);
            break;
        case RK_OP_IN_I:
            if (known(sp[-1]))
                sp[-1] = rk_value_bool(rk_list_has_int(p->lists[in.a], sp[-1].i) != in.aux);
            break;
        case RK_OP_IN_DYN:
            if (known(sp[-1]))
                sp[-1] = in_dyn(&sp[-1], in.a, in.aux, ctx);
            break;
        case RK_OP_JF:
            if (is_false(sp[-1]))
                pc = in.a;
            break;
        case RK_OP_JT:
            if (is_true(sp[-1]))
                pc = in.a;
            break;
        case RK_OP_AND: sp--; sp[-1] = and3(sp[-1], sp[0]); break;
        case RK_OP_OR: sp--; sp[-1] = or3(sp[-1], sp[0]); break;
        case RK_OP_CALL: {
            const rk_func *f = &rk_funcs[in.a];
            sp -= f->arity;
            sp[0] = call(f, sp, slots, ctx);
            sp++;
            break;
        }
        default: return rk_value_missing(); /* not produced by the compiler */
        }
    }
    return ctx->stack[0];
}

rk_value rk_expr_eval(const rk_expr *e, const rk_value *slots, rk_eval_ctx *ctx)
{
    if (!e || !ctx)
        return rk_value_missing();
    return rk_vm_run(&e->prog, slots, ctx);
}

char *rk_expr_disasm(const rk_expr *e, char *buf, size_t size)
{
    size_t len = 0;
    if (size)
        buf[0] = '\0';
    for (int pc = 0; pc < e->prog.ncode && len < size; pc++) {
        const rk_insn *in = &e->prog.code[pc];
        char arg[96] = "";
        switch (rk_op_operand[in->op]) {
        case RK_OPND_NONE: break;
        case RK_OPND_K: {
            rk_value v = e->prog.k[in->a];
            if (v.type == RK_T_INT)
                snprintf(arg, sizeof arg, " %" PRId64, v.i);
            else if (v.type == RK_T_FLOAT)
                snprintf(arg, sizeof arg, " %g", v.f);
            else if (v.type == RK_T_STR)
                snprintf(arg, sizeof arg, " '%.*s'", (int)(v.len > 64 ? 64 : v.len), v.s);
            else if (v.type == RK_T_BOOL)
                snprintf(arg, sizeof arg, " %s", v.b ? "true" : "false");
            else
                snprintf(arg, sizeof arg, " missing");
            break;
        }
        case RK_OPND_FUNC: snprintf(arg, sizeof arg, " %s", rk_funcs[in->a].name); break;
        case RK_OPND_SK: {
            rk_value v = e->prog.k[in->a];
            if (v.type == RK_T_INT)
                snprintf(arg, sizeof arg, " %u %" PRId64, in->b, v.i);
            else if (v.type == RK_T_FLOAT)
                snprintf(arg, sizeof arg, " %u %g", in->b, v.f);
            else
                snprintf(arg, sizeof arg, " %u '%.*s'", in->b, (int)(v.len > 64 ? 64 : v.len),
                         v.s);
            break;
        }
        default: snprintf(arg, sizeof arg, " %" PRId32 "%s", in->a, in->aux ? " not" : ""); break;
        }
        int w = snprintf(buf + len, size - len, "%s%s\n", rk_op_names[in->op], arg);
        len += w > 0 ? (size_t)w : 0;
    }
    return buf;
}
