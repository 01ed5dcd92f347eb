/* The msgpack cursor reader (mp.h): one item at a time, straight from a
 * borrowed buffer.
 *
 * Every read first checks that the whole item (header and payload) lies inside
 * the buffer, so a truncated or lying length can never make us read past the
 * end; lengths are compared against the bytes left rather than added to
 * pointers, so no arithmetic can overflow. Containers are not recursed into:
 * rk_mp_skip keeps a fixed stack of remaining-element counts, one entry per
 * open level, which bounds both its stack use and its work on hostile input. */
#include "proto/mp.h"

#include <string.h>

#include "lib/err.h"

/* n big-endian bytes at p, n <= 8. */
static uint64_t load_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Widths of the length (or value) field after the type byte, for the
 * variable-length formats, indexed by type byte - 0xc4. 0 marks formats that
 * rk_mp_read handles on their own. */
static const uint8_t field_width[0xdf - 0xc4 + 1] = {
    [0xc4 - 0xc4] = 1, [0xc5 - 0xc4] = 2, [0xc6 - 0xc4] = 4, /* bin 8/16/32 */
    [0xc7 - 0xc4] = 1, [0xc8 - 0xc4] = 2, [0xc9 - 0xc4] = 4, /* ext 8/16/32 */
    [0xca - 0xc4] = 4, [0xcb - 0xc4] = 8,                    /* float 32/64 */
    [0xcc - 0xc4] = 1, [0xcd - 0xc4] = 2, [0xce - 0xc4] = 4, [0xcf - 0xc4] = 8, /* uint */
    [0xd0 - 0xc4] = 1, [0xd1 - 0xc4] = 2, [0xd2 - 0xc4] = 4, [0xd3 - 0xc4] = 8, /* int */
    [0xd9 - 0xc4] = 1, [0xda - 0xc4] = 2, [0xdb - 0xc4] = 4, /* str 8/16/32 */
    [0xdc - 0xc4] = 2, [0xdd - 0xc4] = 4,                    /* array 16/32 */
    [0xde - 0xc4] = 2, [0xdf - 0xc4] = 4,                    /* map 16/32 */
};

/* The signed value of a w-byte two's complement field. */
static int64_t load_signed(uint64_t v, size_t w)
{
    switch (w) {
    case 1:
        return (int8_t)v;
    case 2:
        return (int16_t)v;
    case 4:
        return (int32_t)v;
    default:
        return (int64_t)v;
    }
}

static void set_int(rk_mp_item *it, int64_t v)
{
    if (v < 0) {
        it->type = RK_MP_INT;
        it->i = v;
    } else {
        it->type = RK_MP_UINT;
        it->u = (uint64_t)v;
    }
}

int rk_mp_read(rk_mp *r, rk_mp_item *it)
{
    size_t left = r->len - r->pos;
    if (left < 1)
        return RK_EPARSE;
    const uint8_t *p = r->buf + r->pos;
    uint8_t b = p[0];
    size_t hdr = 1;  /* bytes of type byte and length/value fields */
    size_t body = 0; /* payload bytes after the header (str, bin, ext) */

    if (b <= 0x7f) {
        it->type = RK_MP_UINT;
        it->u = b;
    } else if (b <= 0x8f) {
        it->type = RK_MP_MAP;
        it->n = b & 0x0f;
    } else if (b <= 0x9f) {
        it->type = RK_MP_ARRAY;
        it->n = b & 0x0f;
    } else if (b <= 0xbf) {
        it->type = RK_MP_STR;
        body = b & 0x1f;
    } else if (b >= 0xe0) {
        it->type = RK_MP_INT;
        it->i = (int8_t)b;
    } else if (b == 0xc0) {
        it->type = RK_MP_NIL;
    } else if (b == 0xc1) {
        return RK_ECORRUPT;
    } else if (b == 0xc2 || b == 0xc3) {
        it->type = RK_MP_BOOL;
        it->b = b == 0xc3;
    } else if (b >= 0xd4 && b <= 0xd8) {
        /* fixext 1/2/4/8/16: a type byte, then 2^(b - 0xd4) data bytes */
        if (left < 2)
            return RK_EPARSE;
        it->type = RK_MP_EXT;
        it->ext_type = (int8_t)p[1];
        hdr = 2;
        body = (size_t)1 << (b - 0xd4);
    } else {
        size_t w = field_width[b - 0xc4];
        if (left < 1 + w)
            return RK_EPARSE;
        uint64_t v = load_be(p + 1, w);
        hdr = 1 + w;
        switch (b) {
        case 0xc4: case 0xc5: case 0xc6:
            it->type = RK_MP_BIN;
            body = (size_t)v;
            break;
        case 0xc7: case 0xc8: case 0xc9:
            if (left < hdr + 1)
                return RK_EPARSE;
            it->type = RK_MP_EXT;
            it->ext_type = (int8_t)p[hdr];
            hdr += 1;
            body = (size_t)v;
            break;
        case 0xca: {
            uint32_t bits = (uint32_t)v;
            float f;
            memcpy(&f, &bits, sizeof f);
            it->type = RK_MP_FLOAT32;
            it->f = f;
            break;
        }
        case 0xcb:
            it->type = RK_MP_FLOAT64;
            memcpy(&it->f, &v, sizeof it->f);
            break;
        case 0xcc: case 0xcd: case 0xce: case 0xcf:
            it->type = RK_MP_UINT;
            it->u = v;
            break;
        case 0xd0: case 0xd1: case 0xd2: case 0xd3:
            set_int(it, load_signed(v, w));
            break;
        case 0xd9: case 0xda: case 0xdb:
            it->type = RK_MP_STR;
            body = (size_t)v;
            break;
        case 0xdc: case 0xdd:
            it->type = RK_MP_ARRAY;
            it->n = (uint32_t)v;
            break;
        default: /* 0xde, 0xdf */
            it->type = RK_MP_MAP;
            it->n = (uint32_t)v;
            break;
        }
    }
    if (body > left - hdr)
        return RK_EPARSE;
    if (it->type == RK_MP_STR || it->type == RK_MP_BIN || it->type == RK_MP_EXT) {
        it->raw.p = p + hdr;
        it->raw.len = (uint32_t)body;
    }
    r->pos += hdr + body;
    return 0;
}

int rk_mp_skip(rk_mp *r, int max_depth)
{
    /* left[d]: values still to step over at level d; level 0 holds the one
     * value we were asked to skip, level d > 0 the elements of the d-th open
     * container (two per map entry, so uint64). */
    uint64_t left[RK_MP_DEPTH_MAX + 1];
    int d = 0;
    if (max_depth > RK_MP_DEPTH_MAX)
        max_depth = RK_MP_DEPTH_MAX;
    left[0] = 1;
    for (;;) {
        while (d > 0 && left[d] == 0)
            d--;
        if (left[d] == 0)
            return 0;
        left[d]--;
        size_t start = r->pos;
        rk_mp_item it;
        int rc = rk_mp_read(r, &it);
        if (rc < 0)
            return rc;
        if (it.type != RK_MP_ARRAY && it.type != RK_MP_MAP)
            continue;
        if (d + 1 > max_depth) {
            r->pos = start;
            return RK_ERANGE;
        }
        left[++d] = it.type == RK_MP_MAP ? 2 * (uint64_t)it.n : it.n;
    }
}

int rk_mp_map_find(const uint8_t *buf, size_t len, const char *key, rk_mp_item *it,
                   rk_mp *next)
{
    rk_mp r;
    rk_mp_item m;
    rk_mp_init(&r, buf, len);
    int rc = rk_mp_read(&r, &m);
    if (rc < 0)
        return rc;
    if (m.type != RK_MP_MAP)
        return RK_ETYPE;
    for (uint32_t i = 0; i < m.n; i++) {
        rk_mp k = r;
        rk_mp_item ki;
        rc = rk_mp_read(&k, &ki);
        if (rc < 0)
            return rc;
        if (rk_mp_str_eq(&ki, key)) {
            rc = rk_mp_read(&k, it);
            if (rc < 0)
                return rc;
            if (next)
                *next = k;
            return 0;
        }
        if ((rc = rk_mp_skip(&r, RK_MP_DEPTH_MAX)) < 0 ||
            (rc = rk_mp_skip(&r, RK_MP_DEPTH_MAX)) < 0)
            return rc;
    }
    return RK_ENOTFOUND;
}

int rk_mp_int64(const rk_mp_item *it, int64_t *out)
{
    if (it->type == RK_MP_INT) {
        *out = it->i;
        return 0;
    }
    if (it->type != RK_MP_UINT)
        return RK_ETYPE;
    if (it->u > (uint64_t)INT64_MAX)
        return RK_ERANGE;
    *out = (int64_t)it->u;
    return 0;
}

int rk_mp_double(const rk_mp_item *it, double *out)
{
    switch (it->type) {
    case RK_MP_UINT:
        *out = (double)it->u;
        return 0;
    case RK_MP_INT:
        *out = (double)it->i;
        return 0;
    case RK_MP_FLOAT32:
    case RK_MP_FLOAT64:
        *out = it->f;
        return 0;
    default:
        return RK_ETYPE;
    }
}

bool rk_mp_str_eq(const rk_mp_item *it, const char *s)
{
    size_t n = strlen(s);
    return it->type == RK_MP_STR && it->raw.len == n && memcmp(it->raw.p, s, n) == 0;
}

const char *rk_mp_type_name(rk_mp_type t)
{
    static const char *const names[] = {
        [RK_MP_NIL] = "nil",       [RK_MP_BOOL] = "bool",    [RK_MP_UINT] = "int",
        [RK_MP_INT] = "int",       [RK_MP_FLOAT32] = "float", [RK_MP_FLOAT64] = "float",
        [RK_MP_STR] = "str",       [RK_MP_BIN] = "bin",      [RK_MP_ARRAY] = "array",
        [RK_MP_MAP] = "map",       [RK_MP_EXT] = "ext",
    };
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}
