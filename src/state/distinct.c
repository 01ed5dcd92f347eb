/* Distinct counts over a sliding window.
 *
 * Up to RK_DISTINCT_EXACT_MAX (64) live values a record keeps each value's
 * hash with the newest bucket it was seen in, and the count is exact: a value
 * leaves the count when its last sighting leaves the window. The 65th live
 * value turns the record into one HyperLogLog sketch per bucket (256 4-bit
 * registers, 128 bytes): every kept value is inserted into the sketch of its
 * last-seen bucket, and the window's count is the estimate of the union
 * (register-wise max) of the sketches of the buckets still in the window.
 * Standard error 1.04/sqrt(256) = 6.5%; linear counting below 2.5 * 256.
 * Register ranks are capped at 15, which biases the estimate only above about
 * 256 * 2^15 (8 million) values per window. A sketch record returns to exact
 * mode once every bucket has left the window.
 *
 * Value hashes are the first 8 bytes of the keyed digest of the value, so
 * the stored state reveals nothing about the values counted. */
#include "state/crecord.h"

#include <math.h>
#include <string.h>

static void put_reg(uint8_t *sk, int j, int r)
{
    uint8_t *b = &sk[j >> 1];
    int cur = (j & 1) ? (*b >> 4) : (*b & 15);
    if (r <= cur)
        return;
    *b = (j & 1) ? (uint8_t)((*b & 0x0f) | (r << 4)) : (uint8_t)((*b & 0xf0) | r);
}

static int get_reg(const uint8_t *sk, int j)
{
    return (j & 1) ? (sk[j >> 1] >> 4) : (sk[j >> 1] & 15);
}

static void hll_add(uint8_t *sk, uint64_t vh)
{
    int j = (int)(vh >> (64 - RK_HLL_P));
    uint64_t rest = vh << RK_HLL_P;
    int r = rest ? __builtin_clzll(rest) + 1 : 64 - RK_HLL_P + 1;
    put_reg(sk, j, r > 15 ? 15 : r);
}

int64_t rk_hll_estimate(const uint8_t *regs)
{
    static const double inv_pow2[16] = {1.0,        0.5,         0.25,         0.125,
                                        0.0625,     0.03125,     0.015625,     0.0078125,
                                        0.00390625, 0.001953125, 0.0009765625, 0.00048828125,
                                        0.000244140625, 0.0001220703125, 0.00006103515625,
                                        0.000030517578125};
    double sum = 0;
    int zeros = 0;
    for (int j = 0; j < RK_HLL_M; j++) {
        int r = get_reg(regs, j);
        sum += inv_pow2[r];
        zeros += r == 0;
    }
    if (zeros == RK_HLL_M)
        return 0;
    double m = RK_HLL_M;
    double e = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
    if (e <= 2.5 * m && zeros > 0)
        e = m * log(m / zeros);
    int64_t v = (int64_t)llround(e);
    return v < 1 ? 1 : v;
}

/* merged = register-wise max(merged, sk), both nibble-packed. Written byte by
 * byte on the two nibbles so the compiler can vectorise it: this runs for
 * every bucket in the window on every read of a sketch record. */
static void merge(uint8_t *merged, const uint8_t *sk)
{
    for (int i = 0; i < RK_HLL_BYTES; i++) {
        uint8_t x = merged[i], y = sk[i];
        uint8_t lo = (x & 15) > (y & 15) ? (x & 15) : (y & 15);
        uint8_t hi = (x & 0xf0) > (y & 0xf0) ? (x & 0xf0) : (y & 0xf0);
        merged[i] = (uint8_t)(lo | hi);
    }
}

static uint8_t *sketch(void *rec, int slot)
{
    return (uint8_t *)rec + sizeof(rk_crec_hdr) + (size_t)slot * RK_HLL_BYTES;
}

/* EXACT -> HLL: each kept value goes into the sketch of its last bucket. */
static void to_sketches(void *rec, size_t *len, const rk_window *win)
{
    rk_crec_hdr *h = rec;
    rk_exact_entry ent[RK_DISTINCT_EXACT_MAX];
    int n = h->nexact;
    memcpy(ent, (uint8_t *)rec + sizeof *h, (size_t)n * sizeof ent[0]);
    memset(sketch(rec, 0), 0, (size_t)win->nslots * RK_HLL_BYTES);
    for (int i = 0; i < n; i++)
        hll_add(sketch(rec, rk_window_slot(win, ent[i].bucket)), ent[i].vh);
    h->kind = RK_CREC_HLL;
    h->nexact = 0;
    *len = sizeof *h + (size_t)win->nslots * RK_HLL_BYTES;
}

/* Moves the newest bucket to b > newest, dropping what leaves the ring. */
static void advance(void *rec, size_t *len, const rk_window *win, int64_t b)
{
    rk_crec_hdr *h = rec;
    if (h->kind == RK_CREC_EXACT) {
        rk_exact_entry *e = (rk_exact_entry *)((uint8_t *)rec + sizeof *h);
        int keep = 0;
        for (int i = 0; i < h->nexact; i++)
            if (rk_window_in_ring(win, b, e[i].bucket))
                e[keep++] = e[i];
        h->nexact = (uint8_t)keep;
        *len = sizeof *h + (size_t)keep * sizeof *e;
    } else {
        bool all = b - h->newest >= win->nslots;
        for (int64_t k = h->newest + 1; !all && k <= b; k++)
            memset(sketch(rec, rk_window_slot(win, k)), 0, RK_HLL_BYTES);
        bool empty = true;
        for (int i = 0; !all && i < win->nslots && empty; i++)
            for (int j = 0; j < RK_HLL_BYTES && empty; j++)
                empty = sketch(rec, i)[j] == 0;
        if (all || empty) { /* nothing left in the window: back to exact */
            h->kind = RK_CREC_EXACT;
            h->nexact = 0;
            *len = sizeof *h;
        }
    }
    h->newest = b;
}

static int64_t window_value(const void *rec, const rk_window *win, int64_t end)
{
    const rk_crec_hdr *h = rec;
    if (end < h->newest)
        end = h->newest;
    int64_t first = rk_window_first(win, end);
    if (h->kind == RK_CREC_EXACT) {
        const rk_exact_entry *e = (const rk_exact_entry *)((const uint8_t *)rec + sizeof *h);
        int64_t n = 0;
        for (int i = 0; i < h->nexact; i++)
            n += e[i].bucket >= first;
        return n;
    }
    uint8_t merged[RK_HLL_BYTES];
    memset(merged, 0, sizeof merged);
    int64_t lo = h->newest - win->nslots + 1;
    if (first < lo)
        first = lo;
    for (int64_t k = first; k <= h->newest; k++) {
        merge(merged, sketch((void *)rec, rk_window_slot(win, k)));
    }
    return rk_hll_estimate(merged);
}

bool rk_distinct_apply(void *rec, size_t *len, const rk_window *win, int64_t b, bool add,
                       uint64_t vh, int64_t *value)
{
    rk_crec_hdr *h = rec;
    bool changed = false;
    if (*len == 0) {
        if (!add) {
            *value = 0;
            return false;
        }
        memset(h, 0, sizeof *h);
        h->version = RK_CREC_VERSION;
        h->kind = RK_CREC_EXACT;
        h->nslots = (uint8_t)win->nslots;
        h->width = win->width;
        h->newest = b;
        *len = sizeof *h;
    }
    if (add && rk_window_in_ring(win, h->newest, b)) {
        changed = true;
        if (b > h->newest)
            advance(rec, len, win, b);
        if (h->kind == RK_CREC_EXACT) {
            rk_exact_entry *e = (rk_exact_entry *)((uint8_t *)rec + sizeof *h);
            int i = 0;
            while (i < h->nexact && e[i].vh != vh)
                i++;
            if (i < h->nexact) {
                if (b > e[i].bucket)
                    e[i].bucket = b;
                else
                    changed = false; /* already seen at or after b: nothing to write */
            } else if (h->nexact < RK_DISTINCT_EXACT_MAX) {
                e[i] = (rk_exact_entry){vh, b};
                h->nexact++;
                *len += sizeof *e;
            } else {
                to_sketches(rec, len, win);
            }
        }
        if (h->kind == RK_CREC_HLL)
            hll_add(sketch(rec, rk_window_slot(win, b)), vh);
    }
    *value = window_value(rec, win, b);
    return changed;
}
