/* Diagnostics: formatting `file:line:col: message` and "did you mean" suggestions.
 * The suggestion uses a plain Levenshtein distance; candidate lists are short
 * (the names a rule file can use), so the quadratic cost does not matter. */
#include "lib/diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void rk_diag_set(rk_diag *d, const char *file, int line, int col, const char *fmt, ...)
{
    if (!d)
        return;
    snprintf(d->file, sizeof d->file, "%s", file ? file : "");
    d->line = line;
    d->col = col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
}

void rk_diag_clear(rk_diag *d)
{
    if (d)
        memset(d, 0, sizeof *d);
}

char *rk_diag_format(const rk_diag *d, char *buf, size_t size)
{
    if (d->file[0] && d->line > 0 && d->col > 0)
        snprintf(buf, size, "%s:%d:%d: %s", d->file, d->line, d->col, d->msg);
    else if (d->file[0] && d->line > 0)
        snprintf(buf, size, "%s:%d: %s", d->file, d->line, d->msg);
    else if (d->file[0])
        snprintf(buf, size, "%s: %s", d->file, d->msg);
    else
        snprintf(buf, size, "%s", d->msg);
    return buf;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return (size_t)-1;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            if (up + 1 < best)
                best = up + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *rk_suggest(const char *name, const char *const *cands, size_t ncands)
{
    size_t len = strlen(name);
    size_t limit = len / 3 > 1 ? len / 3 : 1;
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < ncands; i++) {
        if (!cands[i])
            continue;
        size_t d = edit_distance(name, cands[i]);
        if (d < best_d && d > 0) {
            best_d = d;
            best = cands[i];
        }
    }
    return best_d <= limit ? best : NULL;
}
