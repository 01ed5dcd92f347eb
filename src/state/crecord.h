/* Counter records as stored in the `counters` database (internal to
 * src/state; white-box tests use it too).
 *
 * Key   (24 bytes): keyed hash of the entity (16) ++ definition identity (u64).
 *       The entity hash comes first so that all counters keyed by the same
 *       entity sit next to each other in one B-tree leaf: a request touching
 *       three `by: account` counters dirties one page, not three.
 * Value: a 24-byte header, then by kind:
 *   RING   int64 slots[nslots]                      count and sum
 *   EXACT  {u64 value hash, i64 bucket}[nexact]     distinct, <= 64 live values
 *   HLL    u8 regs[nslots][RK_HLL_BYTES]            distinct, beyond 64 values
 * All integers in native byte order; records are copied to aligned scratch
 * before use, so their position in an LMDB page does not matter. */
#ifndef RK_STATE_CRECORD_H
#define RK_STATE_CRECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state/window.h"

#define RK_CREC_VERSION 1
#define RK_CREC_KEY_LEN 24
#define RK_DISTINCT_EXACT_MAX 64   /* distinct values counted exactly */
#define RK_HLL_P 8                 /* 2^8 = 256 registers per bucket */
#define RK_HLL_M (1 << RK_HLL_P)
#define RK_HLL_BYTES (RK_HLL_M / 2) /* 4-bit registers, two per byte */

enum {
    RK_CREC_RING = 1,  /* int64 per bucket */
    RK_CREC_EXACT = 2, /* value hashes with last-seen bucket */
    RK_CREC_HLL = 3,   /* a HyperLogLog sketch per bucket */
};

typedef struct rk_crec_hdr {
    uint8_t version; /* RK_CREC_VERSION */
    uint8_t kind;    /* RK_CREC_* */
    uint8_t nslots;  /* ring size R of the window */
    uint8_t nexact;  /* RK_CREC_EXACT: entries that follow */
    uint32_t pad;    /* zero */
    int64_t width;   /* bucket width in ms (lets the sweeper judge idleness without the definition) */
    int64_t newest;  /* newest bucket seen */
} rk_crec_hdr;

typedef struct rk_exact_entry {
    uint64_t vh;     /* value hash prefix */
    int64_t bucket;  /* bucket it was last seen in */
} rk_exact_entry;

/* Largest distinct record: header plus one sketch per slot. */
#define RK_CREC_MAX (sizeof(rk_crec_hdr) + RK_WINDOW_SLOTS_MAX * RK_HLL_BYTES)

/* Updates (when add) and reads a distinct record held in rec (aligned
 * scratch of RK_CREC_MAX bytes; *len is 0 for a new record) with value hash vh
 * at bucket b, then sets *value to the distinct count over the window ending
 * at max(newest, b). Returns whether rec changed (and *len with it). */
bool rk_distinct_apply(void *rec, size_t *len, const rk_window *win, int64_t b, bool add,
                       uint64_t vh, int64_t *value);

/* HyperLogLog estimate from 256 merged 4-bit registers (exposed for tests). */
int64_t rk_hll_estimate(const uint8_t *regs);

#endif
