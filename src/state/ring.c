/* Count and sum rings at rest (crecord.h). A ring is worked on dense, one
 * int64 per bucket, and stored sparse when that is shorter: most entities
 * are quiet, and a dense 10-minute ring of an (account, merchant) pair that
 * saw one payment is 280 bytes of which 8 say anything. Smaller records mean
 * fewer cache lines per request, fewer LMDB pages written per checkpoint and
 * less for the periodic flush to write back. */
#include <string.h>

#include "state/crecord.h"

/* Bytes of the slot-number array of a sparse ring with n entries. */
static size_t index_bytes(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

size_t rk_ring_pack(void *rec, size_t len)
{
    rk_crec_hdr *h = rec;
    if (len < sizeof *h || h->kind != RK_CREC_RING ||
        len != sizeof *h + (size_t)h->nslots * sizeof(int64_t))
        return len;
    const int64_t *slots = (const int64_t *)(h + 1);
    uint8_t idx[RK_WINDOW_SLOTS_MAX];
    int64_t val[RK_WINDOW_SLOTS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < h->nslots; i++) {
        if (slots[i] != 0) {
            idx[n] = (uint8_t)i;
            val[n++] = slots[i];
        }
    }
    size_t sparse = sizeof *h + index_bytes(n) + n * sizeof(int64_t);
    if (sparse >= len)
        return len;
    uint8_t *p = (uint8_t *)(h + 1);
    memset(p, 0, index_bytes(n));
    memcpy(p, idx, n);
    memcpy(p + index_bytes(n), val, n * sizeof(int64_t));
    h->kind = RK_CREC_RING_SPARSE;
    h->nexact = (uint8_t)n;
    return sparse;
}

size_t rk_ring_unpack(const void *in, size_t len, void *out)
{
    rk_crec_hdr h;
    if (len < sizeof h)
        return 0;
    memcpy(&h, in, sizeof h);
    size_t dense = sizeof h + (size_t)h.nslots * sizeof(int64_t);
    if (h.nslots > RK_WINDOW_SLOTS_MAX)
        return 0;
    if (h.kind == RK_CREC_RING) {
        if (len != dense)
            return 0;
        memcpy(out, in, len);
        return len;
    }
    size_t n = h.nexact;
    if (h.kind != RK_CREC_RING_SPARSE || n > h.nslots ||
        len != sizeof h + index_bytes(n) + n * sizeof(int64_t))
        return 0;
    const uint8_t *idx = (const uint8_t *)in + sizeof h;
    const uint8_t *val = idx + index_bytes(n);
    int64_t *slots = (int64_t *)((uint8_t *)out + sizeof h);
    memset(slots, 0, (size_t)h.nslots * sizeof(int64_t));
    for (size_t i = 0; i < n; i++) {
        if (idx[i] >= h.nslots)
            return 0;
        memcpy(&slots[idx[i]], val + i * sizeof(int64_t), sizeof(int64_t));
    }
    h.kind = RK_CREC_RING;
    h.nexact = 0;
    memcpy(out, &h, sizeof h);
    return dense;
}
