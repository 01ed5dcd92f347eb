/* The built-in functions' evaluators and their table (see RK_FUNC_MAP).
 *
 * Evaluators receive arguments already of the declared types (ints converted
 * to floats where the table says so) and never see a missing argument unless
 * their entry has RK_FN_SEES_MISSING: the VM answers missing for them. They
 * never allocate except from ctx->arena, and never fail: an arithmetic
 * problem gives missing and is counted like the operators' ones. Times are
 * milliseconds since the Unix epoch, UTC, and may be negative (before 1970),
 * so calendar arithmetic uses floor division. */
#include "rules/funcs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/arena.h"
#include "proto/txn.h"
#include "rules/expr_int.h"

#define MS_PER_HOUR INT64_C(3600000)
#define MS_PER_DAY INT64_C(86400000)

/* a / b rounded towards negative infinity, for b > 0. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return a % b < 0 ? q - 1 : q;
}

/* a mod b in [0, b), for b > 0. */
static int64_t floor_mod(int64_t a, int64_t b)
{
    int64_t r = a % b;
    return r < 0 ? r + b : r;
}

static rk_value fn_exists(const rk_value *a, const rk_value *slots, rk_eval_ctx *ctx)
{
    return rk_value_bool(a[0].type != RK_T_MISSING);
}

static rk_value fn_abs(const rk_value *a, const rk_value *slots, rk_eval_ctx *ctx)
{
    if (a[0].type == RK_T_FLOAT)
        return rk_value_float(fabs(a[0].f));
    if (a[0].i == INT64_MIN)
        return rk_arith_int(true, 0, ctx); /* |INT64_MIN| is no int64 */
    return rk_value_int(a[0].i < 0 ? -a[0].i : a[0].i);
}

/* min and max share one shape; both arguments have the same type (see RK_RES_NUM). */
static rk_value pick(const rk_value *a, bool want_larger)
{
    bool first_larger = a[0].type == RK_T_INT ? a[0].i > a[1].i : a[0].f > a[1].f;
    return first_larger == want_larger ? a[0] : a[1];
}

static rk_value fn_min(const rk_value *a, const rk_value *slots, rk_eval_ctx *ctx)
{
    return pick(a, false);
}

static rk_value fn_max(const rk_value *a, const rk_value *slots, rk_eval_ctx *ctx)
{
    return pick(a, true);
}

/* Natural log; x <= 0 has none, which is missing by definition, not an error. */
static rk_value fn_log(const rk_value *a, const rk_value *slots, rk_eval_ctx *ctx)
{
    double x = a[0].type == RK_T_INT ? (double)a[0].i : a[0].f;
    if (!(x > 0))
        return rk_value_missing();
    return rk_arith_float(log(x), ctx);
}

/* Code points: every byte that is not a UTF-8 continuation byte starts one. */
static rk_value fn_len(const rk_value *a, const rk_value *slots, rk_eval_ctx *ctx)
{
    int64_t n = 0;
    for (uint32_t i = 0; i < a[0].len; i++)
        n += ((unsigned char)a[0].s[i] & 0xc0) != 0x80;
    return rk_value_int(n);
}

/* ASCII case mapping into the worker's arena; other bytes are copied, so
 * UTF-8 text stays valid. An exhausted arena gives missing. */
static rk_value map_case(rk_value s, rk_eval_ctx *ctx, char from, int delta)
{
    if (s.len == 0)
        return s;
    char *out = ctx->arena ? rk_arena_alloc(ctx->arena, s.len) : NULL;
    if (!out)
        return rk_value_missing();
    for (uint32_t i = 0; i < s.len; i++) {
        char c = s.s[i];
        out[i] = c >= from && c < from + 26 ? (char)(c + delta) : c;
    }
    return rk_value_str(out, s.len);
}

static rk_value fn_lower(const rk_value *a, const rk_value *slots, rk_eval_ctx *ctx)
{
    return map_case(a[0], ctx, 'A', 'a' - 'A');
}

static rk_value fn_upper(const rk_value *a, const rk_value *slots, rk_eval_ctx *ctx)
{
    return map_case(a[0], ctx, 'a', 'A' - 'a');
}

static rk_value fn_starts_with(const rk_value *a, const rk_value *slots, rk_eval_ctx *ctx)
{
    return rk_value_bool(a[1].len == 0 ||
                         (a[1].len <= a[0].len && memcmp(a[0].s, a[1].s, a[1].len) == 0));
}

static rk_value fn_ends_with(const rk_value *a, const rk_value *slots, rk_eval_ctx *ctx)
{
    return rk_value_bool(a[1].len == 0 || (a[1].len <= a[0].len &&
                                           memcmp(a[0].s + a[0].len - a[1].len, a[1].s,
                                                  a[1].len) == 0));
}

static rk_value fn_hour(const rk_value *a, const rk_value *slots, rk_eval_ctx *ctx)
{
    return rk_value_int(floor_mod(floor_div(a[0].i, MS_PER_HOUR), 24));
}

/* 1970-01-01 was a Thursday, day 3 when Monday is 0. */
static rk_value fn_weekday(const rk_value *a, const rk_value *slots, rk_eval_ctx *ctx)
{
    return rk_value_int(floor_mod(floor_div(a[0].i, MS_PER_DAY) + 3, 7));
}

/* The transaction's ts minus x: how long ago x was, in ms. */
static rk_value fn_age(const rk_value *a, const rk_value *slots, rk_eval_ctx *ctx)
{
    if (!slots || slots[RK_F_TS].type != RK_T_INT)
        return rk_value_missing();
    int64_t r;
    bool overflow = __builtin_sub_overflow(slots[RK_F_TS].i, a[0].i, &r);
    return rk_arith_int(overflow, r, ctx);
}

const rk_func rk_funcs[RK_FN__COUNT] = {
#define XX(id, name, arity, a1, a2, res, flags) \
    {#name, arity, {RK_ARG_##a1, RK_ARG_##a2}, RK_RES_##res, flags, fn_##name},
    RK_FUNC_MAP(XX)
#undef XX
};

int rk_func_find(const char *name, size_t len)
{
    for (int i = 0; i < RK_FN__COUNT; i++)
        if (strlen(rk_funcs[i].name) == len && memcmp(rk_funcs[i].name, name, len) == 0)
            return i;
    return -1;
}
