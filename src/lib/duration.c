/* Duration text <-> milliseconds. One unit table serves parsing and
 * formatting, so a formatted duration always parses back to the same value. */
#include "lib/duration.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"

/* Largest first, for formatting. */
static const struct {
    const char *unit; /* suffix */
    int64_t ms;       /* milliseconds per unit */
} units[] = {
    {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
};
#define NUNITS (sizeof units / sizeof units[0])

int rk_duration_parse(const char *s, size_t len, int64_t *ms)
{
    size_t p = 0;
    uint64_t v = 0;
    bool overflow = false;
    for (; p < len && s[p] >= '0' && s[p] <= '9'; p++) {
        unsigned d = (unsigned)(s[p] - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = true;
        else
            v = v * 10 + d;
    }
    if (p == 0 || p == len)
        return RK_EPARSE;
    for (size_t i = 0; i < NUNITS; i++) {
        size_t ulen = strlen(units[i].unit);
        if (len - p != ulen || memcmp(s + p, units[i].unit, ulen) != 0)
            continue;
        if (overflow || v > (uint64_t)(INT64_MAX / units[i].ms))
            return RK_ERANGE;
        *ms = (int64_t)v * units[i].ms;
        return 0;
    }
    return RK_EPARSE;
}

char *rk_duration_format(int64_t ms, char *buf, size_t size)
{
    for (size_t i = 0; i < NUNITS; i++)
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(buf, size, "%" PRId64 "%s", ms / units[i].ms, units[i].unit);
            return buf;
        }
    snprintf(buf, size, "%" PRId64 "ms", ms);
    return buf;
}
