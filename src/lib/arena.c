/* Fixed-block bump allocator; see arena.h for the contract. */
#include "lib/arena.h"

#include <stdlib.h>

#include "lib/err.h"

int rk_arena_init(rk_arena *a, size_t cap)
{
    a->base = malloc(cap);
    a->cap = a->base ? cap : 0;
    a->used = 0;
    return a->base ? 0 : RK_ENOMEM;
}

void rk_arena_free(rk_arena *a)
{
    if (!a)
        return;
    free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
}

void *rk_arena_alloc(rk_arena *a, size_t n)
{
    size_t start = (a->used + 7) & ~(size_t)7;
    if (start > a->cap || n > a->cap - start)
        return NULL;
    a->used = start + n;
    return a->base + start;
}
