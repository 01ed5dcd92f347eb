/* A small bounds-checked msgpack reader: a cursor over a borrowed buffer.
 *
 * rk_mp_read() decodes one item at the cursor and advances past it. Scalars
 * come back whole; str, bin and ext come back as (pointer, length) into the
 * buffer, never copied; an array or map comes back as its header only (the
 * element count), its elements being the next items read. rk_mp_skip() steps
 * over one complete value, however it is nested, without recursion. Nothing
 * allocates, and no input makes the reader read outside [buf, buf + len).
 *
 * On failure the cursor stays at the start of the offending item, so
 * `r->pos` is the byte offset to report. Used by the request decoder, by admin
 * handlers that read extra keys from rk_request.body, and by the JSON printer. */
#ifndef RK_MP_H
#define RK_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RK_MP_DEPTH_MAX 64 /* deepest nesting rk_mp_skip() can be asked to allow */

typedef enum rk_mp_type {
    RK_MP_NIL,
    RK_MP_BOOL,
    RK_MP_UINT,    /* an integer >= 0, whatever its encoding (fixint, uint8..64, int8..64) */
    RK_MP_INT,     /* an integer < 0 */
    RK_MP_FLOAT32,
    RK_MP_FLOAT64,
    RK_MP_STR,
    RK_MP_BIN,
    RK_MP_ARRAY,
    RK_MP_MAP,
    RK_MP_EXT,
} rk_mp_type;

/* One decoded item. Which member is valid depends on type. */
typedef struct rk_mp_item {
    rk_mp_type type; /* what was read */
    int8_t ext_type; /* application type tag (RK_MP_EXT only) */
    union {
        bool b;       /* RK_MP_BOOL */
        uint64_t u;   /* RK_MP_UINT */
        int64_t i;    /* RK_MP_INT (always negative) */
        double f;     /* RK_MP_FLOAT32 (widened exactly) and RK_MP_FLOAT64 */
        uint32_t n;   /* RK_MP_ARRAY: elements; RK_MP_MAP: key/value pairs */
        struct {
            const uint8_t *p; /* payload, borrowed from the buffer */
            uint32_t len;     /* payload bytes */
        } raw;                /* RK_MP_STR, RK_MP_BIN, RK_MP_EXT */
    };
} rk_mp_item;

/* The cursor. Plain data: copy it to look ahead and come back. */
typedef struct rk_mp {
    const uint8_t *buf; /* start of the buffer, borrowed */
    size_t len;         /* its length in bytes */
    size_t pos;         /* offset of the next unread byte; on failure, of the bad item */
} rk_mp;

static inline void rk_mp_init(rk_mp *r, const uint8_t *buf, size_t len)
{
    r->buf = buf;
    r->len = len;
    r->pos = 0;
}

/* Bytes after the cursor. */
static inline size_t rk_mp_left(const rk_mp *r) { return r->len - r->pos; }

/* Reads the item at the cursor into *it and advances past it (past the header
 * only, for arrays and maps). Returns 0; RK_EPARSE when the item runs past the
 * end of the buffer (truncated); RK_ECORRUPT for the byte 0xc1, which msgpack
 * never uses. On failure the cursor does not move and *it is unspecified. */
int rk_mp_read(rk_mp *r, rk_mp_item *it);

/* Steps over one complete value at the cursor, elements of arrays and maps
 * included. An array or map is one level; at most max_depth levels may nest
 * (1 <= max_depth <= RK_MP_DEPTH_MAX), so max_depth 1 accepts [1, 2] but not
 * [[1]]. Iterative: a megabyte of nested arrays costs max_depth steps, never
 * stack. Returns 0; RK_EPARSE (truncated) or RK_ECORRUPT as rk_mp_read;
 * RK_ERANGE when nesting exceeds max_depth. On failure r->pos is the offset of
 * the offending item (the truncated one, the 0xc1, the container too deep). */
int rk_mp_skip(rk_mp *r, int max_depth);

/* Finds key in the map at the start of buf (a whole msgpack message such as
 * rk_request.body) and reads the first item of its value into *it; for an
 * array or map value that is the header, and *next (may be NULL) is a cursor
 * placed after it to read the elements from. Keys that are not strings are
 * passed over. Returns 0; RK_ENOTFOUND when the map has no such key;
 * RK_ETYPE when buf does not hold a map; RK_EPARSE, RK_ECORRUPT or RK_ERANGE
 * when the map is malformed before the key is found. */
int rk_mp_map_find(const uint8_t *buf, size_t len, const char *key, rk_mp_item *it,
                   rk_mp *next);

/* The value of an integer item as int64. Returns 0; RK_ETYPE when it is not
 * an integer (floats included, even integral ones); RK_ERANGE when it is a
 * uint64 above INT64_MAX. *out is untouched on failure. */
int rk_mp_int64(const rk_mp_item *it, int64_t *out);

/* The value of any number item (integer, float32, float64) as a double; large
 * integers round to the nearest double. Returns 0 or RK_ETYPE. */
int rk_mp_double(const rk_mp_item *it, double *out);

/* Whether the item is a string equal to the NUL-terminated s. */
bool rk_mp_str_eq(const rk_mp_item *it, const char *s);

/* The type as a person would name it on the wire: "nil", "bool", "int",
 * "float", "str", "bin", "array", "map", "ext". Never NULL. */
const char *rk_mp_type_name(rk_mp_type t);

#endif
