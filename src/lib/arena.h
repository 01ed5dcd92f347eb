/* A bump allocator over one fixed block, reset wholesale.
 *
 * Each worker owns one for per-request scratch (lower()/upper() results and the
 * like). It never grows: the hot path allocates nothing after start-up, and a
 * request that needs more than the block gets NULL (callers turn that into a
 * missing value, never a crash). */
#ifndef RK_ARENA_H
#define RK_ARENA_H

#include <stddef.h>

typedef struct rk_arena {
    char *base;  /* the block, owned by the arena */
    size_t cap;  /* its size in bytes */
    size_t used; /* bytes handed out since the last reset */
} rk_arena;

/* Allocates the block. Returns 0 or RK_ENOMEM. */
int rk_arena_init(rk_arena *a, size_t cap);
/* Frees the block; a may be NULL or already freed. */
void rk_arena_free(rk_arena *a);
/* n bytes aligned to 8, or NULL when the block is exhausted. Valid until reset. */
void *rk_arena_alloc(rk_arena *a, size_t n);
static inline void rk_arena_reset(rk_arena *a) { a->used = 0; }

#endif
