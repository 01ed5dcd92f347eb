/* A tagged scalar value: what request fields, counters, list members and
 * expression results are. Strings are (pointer, length) and not NUL-terminated:
 * they usually borrow the request's message buffer, so a value is valid only
 * as long as the buffer it points into. */
#ifndef RK_VALUE_H
#define RK_VALUE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum rk_type {
    RK_T_MISSING, /* absent: SQL-style unknown in comparisons */
    RK_T_INT,     /* int64 */
    RK_T_FLOAT,   /* double */
    RK_T_STR,     /* bytes, (s, len) */
    RK_T_BOOL,
} rk_type;

typedef struct rk_value {
    uint8_t type; /* an rk_type */
    uint32_t len; /* string length in bytes (RK_T_STR only) */
    union {
        int64_t i;     /* RK_T_INT */
        double f;      /* RK_T_FLOAT */
        const char *s; /* RK_T_STR; not NUL-terminated */
        bool b;        /* RK_T_BOOL */
    };
} rk_value;

static inline rk_value rk_value_missing(void) { return (rk_value){.type = RK_T_MISSING}; }
static inline rk_value rk_value_int(int64_t i) { return (rk_value){.type = RK_T_INT, .i = i}; }
static inline rk_value rk_value_float(double f) { return (rk_value){.type = RK_T_FLOAT, .f = f}; }
static inline rk_value rk_value_bool(bool b) { return (rk_value){.type = RK_T_BOOL, .b = b}; }
static inline rk_value rk_value_str(const char *s, uint32_t len)
{
    return (rk_value){.type = RK_T_STR, .len = len, .s = s};
}

/* "missing", "int", "float", "str", "bool". */
const char *rk_type_name(rk_type t);
/* Parses a schema type name ("int", "float", "str", "bool"); -1 when unknown. */
int rk_type_from_name(const char *name);

#endif
