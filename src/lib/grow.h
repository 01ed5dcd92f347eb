/* Growing a heap buffer by doubling: for buffers that reach the size of the
 * largest request seen and then stay, so steady state allocates nothing. */
#ifndef RK_LIB_GROW_H
#define RK_LIB_GROW_H

#include <stdlib.h>

#include "lib/err.h"

/* Makes *buf (of *cap bytes, possibly NULL/0) hold at least need bytes,
 * doubling from min_cap. 0, or RK_ENOMEM with *buf and *cap unchanged. */
static inline int rk_grow(void **buf, size_t *cap, size_t need, size_t min_cap)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : min_cap;
    while (n < need)
        n *= 2;
    void *p = realloc(*buf, n);
    if (!p)
        return RK_ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

#endif
