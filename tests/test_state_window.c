/* Window arithmetic and distinct counting, without LMDB: bucket geometry and
 * edges, long gaps, out-of-order and too-old events, a brute-force check that
 * no event inside the window is ever missed, exact distinct counts up to 64
 * and the HyperLogLog estimate beyond, within its stated error, and rings
 * stored sparse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/err.h"
#include "state/crecord.h"
#include "state/window.h"

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void test_geometry(void **state)
{
    (void)state;
    rk_window w;
    assert_int_equal(rk_window_geom(30000, &w), 0);
    assert_int_equal(w.width, 1000);
    assert_int_equal(w.nslots, 31);
    assert_int_equal(rk_window_geom(3600000, &w), 0);
    assert_int_equal(w.width, 120000);
    assert_int_equal(w.nslots, 31);
    assert_int_equal(rk_window_geom(31000, &w), 0); /* 31000/30 = 1033 -> 31 buckets span it */
    assert_int_equal(w.width, 1033);
    assert_int_equal(w.nslots, 32);
    assert_int_equal(rk_window_geom(RK_WINDOW_MAX_MS, &w), 0);
    assert_true(w.nslots <= RK_WINDOW_SLOTS_MAX);
    assert_true(w.width * RK_WINDOW_BUCKETS <= RK_WINDOW_MAX_MS);
    assert_int_equal(rk_window_geom(29999, &w), RK_ERANGE);
    assert_int_equal(rk_window_geom(RK_WINDOW_MAX_MS + 1, &w), RK_ERANGE);
    for (int64_t ms = RK_WINDOW_MIN_MS; ms < RK_WINDOW_MIN_MS + 5000; ms += 7) {
        assert_int_equal(rk_window_geom(ms, &w), 0);
        assert_true(w.width * RK_WINDOW_BUCKETS <= ms);         /* granularity <= W/30 */
        assert_true((int64_t)(w.nslots - 1) * w.width >= ms);   /* ring spans the window */
        assert_true(w.nslots <= RK_WINDOW_SLOTS_MAX);
    }
}

static void test_bucket_floor(void **state)
{
    (void)state;
    rk_window w;
    rk_window_geom(30000, &w);
    assert_int_equal(rk_window_bucket(&w, 0), 0);
    assert_int_equal(rk_window_bucket(&w, 999), 0);
    assert_int_equal(rk_window_bucket(&w, 1000), 1);
    assert_int_equal(rk_window_bucket(&w, -1), -1);
    assert_int_equal(rk_window_bucket(&w, -1000), -1);
    assert_int_equal(rk_window_bucket(&w, -1001), -2);
    assert_int_equal(rk_window_slot(&w, -1), 30);
    assert_int_equal(rk_window_slot(&w, 31), 0);
}

/* A count ring driven the way counters.c drives it. */
typedef struct ring {
    rk_window w;
    int64_t slots[RK_WINDOW_SLOTS_MAX];
    int64_t newest;
    bool any;
} ring;

static int64_t ring_add(ring *r, int64_t ts, int64_t delta)
{
    int64_t b = rk_window_bucket(&r->w, ts);
    if (!r->any) {
        memset(r->slots, 0, sizeof r->slots);
        r->newest = b;
        r->any = true;
    }
    if (rk_window_in_ring(&r->w, r->newest, b)) {
        if (b > r->newest) {
            rk_window_advance_i64(&r->w, r->slots, r->newest, b);
            r->newest = b;
        }
        int s = rk_window_slot(&r->w, b);
        r->slots[s] = rk_sat_add(r->slots[s], delta);
    }
    return rk_window_sum_i64(&r->w, r->slots, r->newest, b);
}

static void test_edges_and_gaps(void **state)
{
    (void)state;
    ring r = {0};
    rk_window_geom(30000, &r.w); /* g = 1 s, R = 31 */
    assert_int_equal(ring_add(&r, 0, 1), 1);
    assert_int_equal(ring_add(&r, 29999, 1), 2);  /* same window */
    assert_int_equal(ring_add(&r, 30999, 1), 3);  /* bucket 30: bucket 0 still counted (never miss) */
    assert_int_equal(ring_add(&r, 31000, 1), 3);  /* bucket 31: bucket 0 (t=0) leaves */
    /* out of order, inside the window: lands in its own bucket (1) */
    assert_int_equal(ring_add(&r, 1500, 1), 4);
    /* it leaves when bucket 1 does, not later */
    assert_int_equal(ring_add(&r, 32000, 1), 4);  /* bucket 32: buckets 2..32 -> 29999,30999,31000,32000 */
    /* too old relative to the newest bucket: not counted, nothing changes */
    assert_int_equal(ring_add(&r, 500, 1), 4);
    assert_int_equal(ring_add(&r, -100000, 1), 4);
    /* a gap of exactly R buckets clears everything */
    assert_int_equal(ring_add(&r, 32000 + 31000, 1), 1);
    /* a long gap (days) clears everything */
    assert_int_equal(ring_add(&r, 5LL * 86400 * 1000, 1), 1);
    assert_int_equal(ring_add(&r, 5LL * 86400 * 1000 + 29000, 1), 2);
    /* saturation */
    assert_int_equal(ring_add(&r, 5LL * 86400 * 1000 + 29000, INT64_MAX), INT64_MAX);
}

/* Brute force: for random traffic, in order and slightly out of order, the
 * ring's value is between the exact count in (t-W, t] and the count in
 * (t-W-g, t] of events it accepted. */
static void test_never_missed(void **state)
{
    (void)state;
    int64_t wins[] = {30000, 31000, 45000, 3600000};
    uint64_t seed = 42;
    for (size_t wi = 0; wi < sizeof wins / sizeof wins[0]; wi++) {
        ring r = {0};
        rk_window_geom(wins[wi], &r.w);
        int64_t W = wins[wi], g = r.w.width;
        enum { N = 2000 };
        static int64_t ts[N];
        int64_t t = 1000000, tmax = INT64_MIN;
        for (int i = 0; i < N; i++) {
            t += (int64_t)(splitmix(&seed) % (uint64_t)(W / 20 + 1));
            if (splitmix(&seed) % 50 == 0)
                t += W * 2; /* occasional long gap */
            int64_t e = t;
            if (splitmix(&seed) % 5 == 0) /* out of order, but within the window */
                e = t - (int64_t)(splitmix(&seed) % (uint64_t)(W / 2));
            ts[i] = e;
            int64_t v = ring_add(&r, e, 1);
            if (e > tmax)
                tmax = e;
            /* counted: buckets (N-R, N] for N the bucket of the newest event */
            int64_t n = rk_window_bucket(&r.w, tmax);
            assert_int_equal(n, r.newest);
            int64_t start = (n + 1 - r.w.nslots) * g;
            assert_true(start <= tmax - W + 1);   /* nothing in (t-W, t] is missed */
            assert_true(start > tmax - W - 2 * g); /* and at most ~one bucket more is counted */
            int64_t lo = 0, exact = 0;
            for (int j = 0; j <= i; j++) {
                lo += ts[j] > tmax - W && ts[j] <= tmax;
                exact += ts[j] >= start && ts[j] <= tmax;
            }
            if (v < lo || v != exact)
                fail_msg("window %lld event %d: value %lld, in window %lld, in buckets %lld",
                         (long long)W, i, (long long)v, (long long)lo, (long long)exact);
        }
    }
}

static void test_distinct_exact(void **state)
{
    (void)state;
    static _Alignas(16) uint8_t rec[RK_CREC_MAX];
    size_t len = 0;
    rk_window w;
    rk_window_geom(3600000, &w); /* g = 2 min */
    int64_t v;
    uint64_t seed = 7, hs[64];
    for (int i = 0; i < 64; i++)
        hs[i] = splitmix(&seed);
    for (int i = 0; i < 64; i++) {
        rk_distinct_apply(rec, &len, &w, 100, true, hs[i], &v);
        assert_int_equal(v, i + 1);
        rk_distinct_apply(rec, &len, &w, 100, true, hs[i], &v); /* repeats do not count */
        assert_int_equal(v, i + 1);
    }
    assert_int_equal(((rk_crec_hdr *)rec)->kind, RK_CREC_EXACT);
    /* reading (no add) gives the same */
    assert_false(rk_distinct_apply(rec, &len, &w, 100, false, 0, &v));
    assert_int_equal(v, 64);
    /* the window slides: values seen only at bucket 100 leave at bucket 131 */
    rk_distinct_apply(rec, &len, &w, 120, true, hs[0], &v); /* hs[0] seen again later */
    assert_int_equal(v, 64);
    rk_distinct_apply(rec, &len, &w, 131, true, hs[1], &v);
    assert_int_equal(v, 2); /* hs[0]@120 and hs[1]@131 */
    /* too old: ignored */
    assert_false(rk_distinct_apply(rec, &len, &w, 100, true, hs[5], &v));
    assert_int_equal(v, 2);
}

static void test_distinct_estimate(void **state)
{
    (void)state;
    static _Alignas(16) uint8_t rec[RK_CREC_MAX];
    rk_window w;
    rk_window_geom(86400000, &w);
    int sizes[] = {65, 100, 500, 3000};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        for (uint64_t seed0 = 1; seed0 <= 4; seed0++) {
            size_t len = 0;
            int64_t v = 0;
            uint64_t seed = seed0 * 1000 + si;
            for (int i = 0; i < sizes[si]; i++) /* spread over the window's buckets */
                rk_distinct_apply(rec, &len, &w, 1000 + i % 30, true, splitmix(&seed), &v);
            assert_int_equal(((rk_crec_hdr *)rec)->kind, RK_CREC_HLL);
            double err = (double)(v - sizes[si]) / sizes[si];
            /* 3 standard errors of a 256-register sketch: 3 * 1.04 / 16 = 19.5% */
            if (err > 0.195 || err < -0.195)
                fail_msg("distinct %d estimated %lld (%.1f%%)", sizes[si], (long long)v, err * 100);
        }
    }
    /* once every bucket has left the window the record is exact again */
    size_t len = 0;
    int64_t v;
    uint64_t seed = 99;
    for (int i = 0; i < 100; i++)
        rk_distinct_apply(rec, &len, &w, 50, true, splitmix(&seed), &v);
    assert_int_equal(((rk_crec_hdr *)rec)->kind, RK_CREC_HLL);
    rk_distinct_apply(rec, &len, &w, 50 + 40, true, 12345, &v);
    assert_int_equal(((rk_crec_hdr *)rec)->kind, RK_CREC_EXACT);
    assert_int_equal(v, 1);
    uint8_t empty[RK_HLL_BYTES] = {0};
    assert_int_equal(rk_hll_estimate(empty), 0);
}

/* A dense ring state: header and nslots values. */
static size_t dense_ring(int64_t *buf, int nslots, const int64_t *vals)
{
    rk_crec_hdr h = {.version = RK_CREC_VERSION, .kind = RK_CREC_RING, .nslots = (uint8_t)nslots,
                     .width = 1000, .newest = 12345};
    memcpy(buf, &h, sizeof h);
    memcpy((uint8_t *)buf + sizeof h, vals, (size_t)nslots * sizeof *vals);
    return sizeof h + (size_t)nslots * sizeof *vals;
}

/* Packing keeps every slot (read back through rk_ring_unpack, also from an
 * unaligned copy), is used only when shorter, and leaves dense states as
 * they are readable; malformed sparse states are refused. */
static void test_ring_sparse(void **state)
{
    (void)state;
    uint64_t seed = 11;
    int64_t vals[RK_WINDOW_SLOTS_MAX], dense[64], packed[64], back[64];
    uint8_t unaligned[600];
    for (int round = 0; round < 2000; round++) {
        int nslots = 31 + round % 2;
        int want = (int)(splitmix(&seed) % (uint64_t)(nslots + 1)); /* non-zero slots */
        memset(vals, 0, sizeof vals);
        for (int k = 0; k < want; k++)
            vals[splitmix(&seed) % (uint64_t)nslots] = (int64_t)(splitmix(&seed) % 1000) - 500;
        int nz = 0;
        for (int i = 0; i < nslots; i++)
            nz += vals[i] != 0;
        size_t len = dense_ring(dense, nslots, vals);
        memcpy(packed, dense, len);
        size_t plen = rk_ring_pack(packed, len);
        size_t sparse = sizeof(rk_crec_hdr) + (size_t)((nz + 7) & ~7) + (size_t)nz * 8;
        assert_int_equal(plen, sparse < len ? sparse : len);
        assert_int_equal(((rk_crec_hdr *)packed)->kind,
                         sparse < len ? RK_CREC_RING_SPARSE : RK_CREC_RING);
        memcpy(unaligned + 1, packed, plen);
        memset(back, 0x5a, sizeof back);
        assert_int_equal(rk_ring_unpack(unaligned + 1, plen, back), len);
        assert_memory_equal(back, dense, len);
    }
    /* a quiet entity: one payment in a 31-bucket ring, 24 + 8 + 8 bytes */
    memset(vals, 0, sizeof vals);
    vals[7] = 1;
    size_t len = dense_ring(dense, 31, vals);
    assert_int_equal(rk_ring_pack(dense, len), sizeof(rk_crec_hdr) + 16);
    /* other kinds are not rings */
    rk_crec_hdr *h = (rk_crec_hdr *)packed;
    len = dense_ring(packed, 31, vals);
    h->kind = RK_CREC_EXACT;
    assert_int_equal(rk_ring_pack(packed, len), len);
    assert_int_equal(rk_ring_unpack(packed, len, back), 0);
    /* malformed sparse states */
    len = dense_ring(packed, 31, vals);
    size_t plen = rk_ring_pack(packed, len);
    assert_int_equal(rk_ring_unpack(packed, plen - 8, back), 0);      /* short */
    uint8_t *idx = (uint8_t *)packed + sizeof(rk_crec_hdr);
    idx[0] = 31;                                                        /* slot out of the ring */
    assert_int_equal(rk_ring_unpack(packed, plen, back), 0);
    idx[0] = 7;
    h->nexact = 32;                                                     /* more than nslots */
    assert_int_equal(rk_ring_unpack(packed, plen, back), 0);
    h->nexact = 1;
    assert_int_equal(rk_ring_unpack(packed, plen, back), len);
    assert_int_equal(rk_ring_unpack(packed, 3, back), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_sparse),
        cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_bucket_floor),
        cmocka_unit_test(test_edges_and_gaps),
        cmocka_unit_test(test_never_missed),
        cmocka_unit_test(test_distinct_exact),
        cmocka_unit_test(test_distinct_estimate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
