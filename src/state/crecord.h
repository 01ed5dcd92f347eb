/* Counter records as stored in the `counters` database (internal to
 * src/state; white-box tests use it too).
 *
 * One record per entity and key set: every counter of the rule set whose `by`
 * names the same fields (all the `by: account` counters, say) lives in one
 * record, so a request costs one B-tree get and one put per distinct key set
 * (five for the shipped twelve counters) instead of one per counter.
 *
 * Key   (24 bytes): keyed hash of the entity (16) ++ key-set id (u64, an
 *       unkeyed hash of the `by` field names, so that the account "x" and
 *       the device "x" are different records).
 * Value: a group header, then one entry per counter state:
 *         {u64 counter identity, u32 body length, u32 zero} body, padded to 8
 *       Each body is a counter state: a 24-byte header, then by kind
 *   RING   int64 slots[nslots]                      count and sum
 *   RING_SPARSE  u8 slot[nexact] (zero-padded to 8), int64 value[nexact]:
 *          the non-zero slots of a RING, stored so when that is shorter
 *   EXACT  {u64 value hash, i64 bucket}[nexact]     distinct, <= 64 live values
 *   HLL    u8 regs[nslots][RK_HLL_BYTES]            distinct, beyond 64 values
 *       A counter finds its state by its identity (rk_counters_id): a
 *       definition that changed has a new identity, finds nothing and starts
 *       from zero; states whose identity the rule set no longer defines stay
 *       (carried over when the record is rewritten) until the sweeper finds
 *       them idle, or the record has no room left for them.
 * All integers in native byte order; records are read with memcpy and bodies
 * copied to aligned scratch before use, so their position in an LMDB page
 * does not matter. */
#ifndef RK_STATE_CRECORD_H
#define RK_STATE_CRECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state/window.h"

#define RK_CREC_VERSION 1
#define RK_GREC_VERSION 2          /* group record layout */
#define RK_CREC_KEY_LEN 24
#define RK_GREC_ENTRIES_MAX 64     /* counter states in one record (RK_COUNTERS_MAX) */
#define RK_DISTINCT_EXACT_MAX 64   /* distinct values counted exactly */
#define RK_HLL_P 8                 /* 2^8 = 256 registers per bucket */
#define RK_HLL_M (1 << RK_HLL_P)
#define RK_HLL_BYTES (RK_HLL_M / 2) /* 4-bit registers, two per byte */

enum {
    RK_CREC_RING = 1,  /* int64 per bucket */
    RK_CREC_EXACT = 2, /* value hashes with last-seen bucket */
    RK_CREC_HLL = 3,   /* a HyperLogLog sketch per bucket */
    RK_CREC_RING_SPARSE = 4, /* a RING's non-zero slots (rk_ring_pack) */
};

typedef struct rk_crec_hdr {
    uint8_t version; /* RK_CREC_VERSION */
    uint8_t kind;    /* RK_CREC_* */
    uint8_t nslots;  /* ring size R of the window */
    uint8_t nexact;  /* RK_CREC_EXACT, RK_CREC_RING_SPARSE: entries that follow */
    uint32_t pad;    /* zero */
    int64_t width;   /* bucket width in ms (lets the sweeper judge idleness without the definition) */
    int64_t newest;  /* newest bucket seen */
} rk_crec_hdr;

typedef struct rk_exact_entry {
    uint64_t vh;     /* value hash prefix */
    int64_t bucket;  /* bucket it was last seen in */
} rk_exact_entry;

/* Largest counter state: header plus one sketch per slot. */
#define RK_CREC_MAX (sizeof(rk_crec_hdr) + RK_WINDOW_SLOTS_MAX * RK_HLL_BYTES)

typedef struct rk_grec_hdr {
    uint8_t version; /* RK_GREC_VERSION */
    uint8_t n;       /* entries that follow */
    uint16_t pad0;   /* zero */
    uint32_t pad1;   /* zero */
} rk_grec_hdr;

typedef struct rk_grec_entry {
    uint64_t id;     /* counter identity */
    uint32_t len;    /* body bytes that follow (then zero padding to 8) */
    uint32_t pad;    /* zero */
} rk_grec_entry;

/* Largest group record: every entry at its largest. */
#define RK_GREC_MAX \
    (sizeof(rk_grec_hdr) + RK_GREC_ENTRIES_MAX * (sizeof(rk_grec_entry) + RK_CREC_MAX + 8))

/* Updates (when add) and reads a distinct record held in rec (aligned
 * scratch of RK_CREC_MAX bytes; *len is 0 for a new record) with value hash vh
 * at bucket b, then sets *value to the distinct count over the window ending
 * at max(newest, b). Returns whether rec changed (and *len with it). */
bool rk_distinct_apply(void *rec, size_t *len, const rk_window *win, int64_t b, bool add,
                       uint64_t vh, int64_t *value);

/* Rings at rest (ring.c). rk_ring_pack turns the dense ring state in rec
 * (aligned, *len bytes) into its sparse form in place when that is shorter
 * and returns the state's length; any other state is left as it is.
 * rk_ring_unpack expands a stored ring state, dense or sparse (possibly
 * unaligned), into the dense form at out (aligned, room for RK_CREC_MAX)
 * and returns its length, or 0 when in is not a well-formed ring state. */
size_t rk_ring_pack(void *rec, size_t len);
size_t rk_ring_unpack(const void *in, size_t len, void *out);

/* HyperLogLog estimate from 256 merged 4-bit registers (exposed for tests). */
int64_t rk_hll_estimate(const uint8_t *regs);

#endif
