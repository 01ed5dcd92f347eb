/* Diagnostics for people: a file, a line, a column and a message they can act on.
 *
 * Loading a rule file, a config or a model fills one rk_diag with the first
 * problem found; rk_diag_format renders it as `file:line:col: message`, the form
 * analysts' editors jump to. Lines and columns are 1-based; 0 means unknown and
 * is left out of the rendering. */
#ifndef RK_DIAG_H
#define RK_DIAG_H

#include <stddef.h>

typedef struct rk_diag {
    char file[512]; /* path as the user gave it (or as an include resolved it) */
    int line;       /* 1-based; 0 when the problem has no position */
    int col;        /* 1-based; 0 when unknown */
    char msg[512];  /* one line, no trailing newline */
} rk_diag;

/* Sets every field of d (d may be NULL: then nothing happens). */
void rk_diag_set(rk_diag *d, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Clears d to "no problem". */
void rk_diag_clear(rk_diag *d);

/* Writes "file:line:col: msg" (positions left out when 0) into buf, NUL-terminated.
 * Returns buf. */
char *rk_diag_format(const rk_diag *d, char *buf, size_t size);

/* The candidate closest to name by edit distance, when close enough to be a
 * plausible typo (distance <= max(1, len/3)); NULL otherwise. For "did you mean". */
const char *rk_suggest(const char *name, const char *const *cands, size_t ncands);

#endif
