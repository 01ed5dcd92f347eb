/* Durations as people write them in riskd.yaml, admin ops and riskctl: a whole
 * number and a unit, `500ms`, `30s`, `10m`, `24h`, `90d` (the units of the
 * rule language's DURATION literals). */
#ifndef RK_DURATION_H
#define RK_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Parses s (len bytes, need not be NUL-terminated) into milliseconds. The unit
 * is required. Returns 0; RK_EPARSE when s is not digits followed by ms, s,
 * m, h or d; RK_ERANGE when the value does not fit in int64 milliseconds.
 * *ms is untouched on failure. */
int rk_duration_parse(const char *s, size_t len, int64_t *ms);

/* Writes ms in the largest unit that divides it exactly (`86400000` ->
 * "1d", `90000` -> "90s", `0` -> "0ms"). Returns buf. */
char *rk_duration_format(int64_t ms, char *buf, size_t size);

#endif
