/* The write-back record cache on its own: lookups and writes across value
 * size classes, database indexes, request undo and keep, the dirty FIFO and
 * its sequences, the sweeper's forget_clean, eviction (clean and unpinned
 * records only; RK_EFULL when all are dirty), pending_new accounting and an
 * index of many keys with deletions; prefaulting (spare slabs taken and
 * replaced, alone and with a thread prefaulting while records are written).
 * Everything but the last test is deterministic. */
#include <pthread.h>
#include <setjmp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/err.h"
#include "state/wcache.h"

#define KLEN 24

/* ---- helpers ------------------------------------------------------------- */

/* A 24-byte counter-like key for number i (distinct for distinct i). */
static void mkkey(uint32_t i, uint8_t key[KLEN])
{
    memset(key, 0, KLEN);
    memcpy(key, "ctr:", 4);
    for (int b = 0; b < 4; b++)
        key[4 + b] = (uint8_t)(i >> (8 * b));
    /* a little spread in the other words too */
    for (int b = 8; b < KLEN; b++)
        key[b] = (uint8_t)(i * 31u + (uint32_t)b * 7u);
}

/* A value of len bytes for (i, round): a pattern that differs per key and per
 * round. */
static void mkval(uint32_t i, uint32_t round, uint8_t *val, size_t len)
{
    for (size_t b = 0; b < len; b++)
        val[b] = (uint8_t)(i * 131u + round * 17u + (uint32_t)b * 3u + 1u);
}

/* Marks the first n dirty records written with the images they hold now, as
 * a checkpoint that no request interrupted does. */
static void mark_clean(rk_wcache *c, int n)
{
    rk_wc_dirty d[64];
    rk_wc_image img[64];
    while (n > 0) {
        int k = rk_wcache_dirty_head(c, d, n < 64 ? n : 64);
        if (k == 0)
            return;
        for (int i = 0; i < k; i++)
            img[i] = d[i].img;
        rk_wcache_mark_written(c, img, k, 0);
        n -= k;
    }
}

/* The fixture owns the test's cache, so that teardown frees it even when an
 * assertion fails half-way (cmocka leaves the test by longjmp). */
typedef struct fx {
    rk_wcache *c;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    rk_wcache_free(f->c);
    free(f);
    return 0;
}

static rk_wcache *cache_make(void **state, size_t cap, bool prefault)
{
    fx *f = *state;
    assert_null(f->c);
    assert_int_equal(rk_wcache_new(cap, prefault, &f->c), 0);
    assert_non_null(f->c);
    return f->c;
}

static rk_wcache *cache_new(void **state, size_t cap)
{
    return cache_make(state, cap, false);
}

static void assert_get(rk_wcache *c, int db, const void *key, size_t klen, const void *want,
                       size_t wlen)
{
    const uint8_t *v = NULL;
    size_t len = 12345;
    assert_int_equal(rk_wcache_get(c, db, key, klen, &v, &len), 0);
    assert_non_null(v);
    assert_int_equal(len, wlen);
    if (wlen)
        assert_memory_equal(v, want, wlen);
}

static void assert_absent(rk_wcache *c, int db, const void *key, size_t klen)
{
    const uint8_t *v = NULL;
    size_t len = 0;
    assert_int_equal(rk_wcache_get(c, db, key, klen, &v, &len), RK_ENOTFOUND);
}

static rk_wcache_stats stats(const rk_wcache *c)
{
    rk_wcache_stats st;
    rk_wcache_stats_get(c, &st);
    return st;
}

/* One request: begin, put (reading the value back), keep. */
static void put_req(rk_wcache *c, int db, const void *key, size_t klen, const void *val,
                    size_t len, uint64_t seq)
{
    rk_wcache_begin(c);
    assert_int_equal(rk_wcache_put(c, db, key, klen, val, len, seq), 0);
    assert_get(c, db, key, klen, val, len);
    rk_wcache_keep(c);
}

/* One request: begin, load (checking the copy), keep. */
static void load_req(rk_wcache *c, int db, const void *key, size_t klen, const void *val,
                     size_t len)
{
    const uint8_t *cv = NULL;
    rk_wcache_begin(c);
    assert_int_equal(rk_wcache_load(c, db, key, klen, val, len, &cv), 0);
    assert_non_null(cv);
    assert_memory_equal(cv, val, len);
    rk_wcache_keep(c);
}

/* ---- 1. get / put across size classes ----------------------------------- */

static void test_get_put_sizes(void **state)
{
    rk_wcache *c = cache_new(state, 64);
    uint8_t key[KLEN], v40[40], v3000[3000], v3[3];
    mkkey(1, key);
    mkval(1, 0, v40, sizeof v40);
    mkval(1, 1, v3000, sizeof v3000);
    mkval(1, 2, v3, sizeof v3);

    rk_wcache_begin(c);
    assert_absent(c, 0, key, KLEN);
    assert_int_equal(rk_wcache_put(c, 0, key, KLEN, v40, sizeof v40, 1), 0);
    assert_get(c, 0, key, KLEN, v40, sizeof v40);
    rk_wcache_keep(c);
    assert_get(c, 0, key, KLEN, v40, sizeof v40);

    /* longer: 64-byte class to 4096-byte class */
    put_req(c, 0, key, KLEN, v3000, sizeof v3000, 2);
    assert_get(c, 0, key, KLEN, v3000, sizeof v3000);

    /* shorter again */
    put_req(c, 0, key, KLEN, v3, sizeof v3, 3);
    assert_get(c, 0, key, KLEN, v3, sizeof v3);

    /* the same class, different bytes, in one request */
    rk_wcache_begin(c);
    uint8_t v5[5] = {9, 8, 7, 6, 5};
    assert_int_equal(rk_wcache_put(c, 0, key, KLEN, v5, sizeof v5, 4), 0);
    assert_get(c, 0, key, KLEN, v5, sizeof v5);
    assert_int_equal(rk_wcache_put(c, 0, key, KLEN, v3000, sizeof v3000, 5), 0);
    assert_get(c, 0, key, KLEN, v3000, sizeof v3000);
    rk_wcache_keep(c);
    assert_get(c, 0, key, KLEN, v3000, sizeof v3000);

    rk_wcache_stats st = stats(c);
    assert_int_equal(st.records, 1);
    assert_int_equal(st.dirty, 1);
    assert_int_equal(st.pending_new[0], 1);
    assert_int_equal(st.pending_new[1], 0);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.full, 0);
}

/* ---- 2. database indexes ------------------------------------------------- */

static void test_db_index_distinct(void **state)
{
    rk_wcache *c = cache_new(state, 64);
    uint8_t key[KLEN], a[16], b[20];
    mkkey(7, key);
    mkval(7, 0, a, sizeof a);
    mkval(7, 1, b, sizeof b);

    put_req(c, 0, key, KLEN, a, sizeof a, 1);
    rk_wcache_begin(c);
    assert_absent(c, 1, key, KLEN);
    rk_wcache_keep(c);
    put_req(c, 1, key, KLEN, b, sizeof b, 2);
    assert_get(c, 0, key, KLEN, a, sizeof a);
    assert_get(c, 1, key, KLEN, b, sizeof b);

    rk_wcache_stats st = stats(c);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.dirty, 2);
    assert_int_equal(st.pending_new[0], 1);
    assert_int_equal(st.pending_new[1], 1);

    /* forgetting (after cleaning) one leaves the other */
    mark_clean(c, 2);
    assert_true(rk_wcache_forget_clean(c, 0, key, KLEN));
    assert_absent(c, 0, key, KLEN);
    assert_get(c, 1, key, KLEN, b, sizeof b);
}

/* ---- 3. undo ------------------------------------------------------------- */

static void test_undo(void **state)
{
    rk_wcache *c = cache_new(state, 64);
    uint8_t kold[KLEN], knew[KLEN], kload[KLEN], kclean[KLEN];
    uint8_t vold[30], vold2[100], vnew[50], vload[10], vclean[12], vclean2[12];
    mkkey(1, kold);
    mkkey(2, knew);
    mkkey(3, kload);
    mkkey(4, kclean);
    mkval(1, 0, vold, sizeof vold);
    mkval(1, 1, vold2, sizeof vold2);
    mkval(2, 0, vnew, sizeof vnew);
    mkval(3, 0, vload, sizeof vload);
    mkval(4, 0, vclean, sizeof vclean);
    mkval(4, 1, vclean2, sizeof vclean2);

    /* an existing dirty (new) record and an existing clean one */
    put_req(c, 0, kold, KLEN, vold, sizeof vold, 10);
    load_req(c, 1, kclean, KLEN, vclean, sizeof vclean);
    rk_wcache_stats before = stats(c);
    assert_int_equal(before.records, 2);
    assert_int_equal(before.dirty, 1);
    assert_int_equal(before.pending_new[0], 1);
    assert_int_equal(before.pending_new[1], 0);

    rk_wcache_begin(c);
    assert_int_equal(rk_wcache_put(c, 0, knew, KLEN, vnew, sizeof vnew, 20), 0);
    assert_int_equal(rk_wcache_put(c, 0, kold, KLEN, vold2, sizeof vold2, 21), 0);
    assert_int_equal(rk_wcache_put(c, 1, kclean, KLEN, vclean2, sizeof vclean2, 22), 0);
    const uint8_t *cv = NULL;
    assert_int_equal(rk_wcache_load(c, 0, kload, KLEN, vload, sizeof vload, &cv), 0);
    assert_memory_equal(cv, vload, sizeof vload);
    /* a second put to the same record in the request: undo still goes back
     * to the image at begin */
    assert_int_equal(rk_wcache_put(c, 0, kold, KLEN, vnew, sizeof vnew, 23), 0);
    rk_wcache_stats mid = stats(c);
    assert_int_equal(mid.records, 4);
    assert_int_equal(mid.dirty, 3);
    assert_int_equal(mid.pending_new[0], 2);
    assert_int_equal(mid.pending_new[1], 0);
    rk_wcache_undo(c);

    assert_absent(c, 0, knew, KLEN);
    assert_absent(c, 0, kload, KLEN);
    assert_get(c, 0, kold, KLEN, vold, sizeof vold);
    assert_get(c, 1, kclean, KLEN, vclean, sizeof vclean);
    rk_wcache_stats after = stats(c);
    assert_int_equal(after.records, before.records);
    assert_int_equal(after.dirty, before.dirty);
    assert_int_equal(after.pending_new[0], before.pending_new[0]);
    assert_int_equal(after.pending_new[1], before.pending_new[1]);

    /* the FIFO is as before: only kold, with its first seq */
    rk_wc_dirty d[4];
    assert_int_equal(rk_wcache_dirty_head(c, d, 4), 1);
    assert_int_equal(d[0].db, 0);
    assert_int_equal(d[0].klen, KLEN);
    assert_memory_equal(d[0].key, kold, KLEN);
    assert_int_equal(d[0].len, sizeof vold);
    assert_memory_equal(d[0].val, vold, sizeof vold);
    assert_int_equal(rk_wcache_needed_seq(c, 0, 99), 10);
    assert_int_equal(rk_wcache_needed_seq(c, 1, 99), 99);

    /* the undone keys can be added afresh */
    put_req(c, 0, knew, KLEN, vnew, sizeof vnew, 30);
    assert_get(c, 0, knew, KLEN, vnew, sizeof vnew);
    assert_int_equal(stats(c).records, 3);
}

static void test_undo_class_change(void **state)
{
    rk_wcache *c = cache_new(state, 64);
    uint8_t key[KLEN], small[40], big[3000], k2[KLEN], big2[5000], tiny[2];
    mkkey(11, key);
    mkkey(12, k2);
    mkval(11, 0, small, sizeof small);
    mkval(11, 1, big, sizeof big);
    mkval(12, 0, big2, sizeof big2);
    mkval(12, 1, tiny, sizeof tiny);

    put_req(c, 0, key, KLEN, small, sizeof small, 1);
    mark_clean(c, 1);
    load_req(c, 1, k2, KLEN, big2, sizeof big2);

    rk_wcache_begin(c);
    assert_int_equal(rk_wcache_put(c, 0, key, KLEN, big, sizeof big, 2), 0); /* grows */
    assert_int_equal(rk_wcache_put(c, 1, k2, KLEN, tiny, sizeof tiny, 3), 0); /* shrinks */
    assert_get(c, 0, key, KLEN, big, sizeof big);
    assert_get(c, 1, k2, KLEN, tiny, sizeof tiny);
    assert_int_equal(stats(c).dirty, 2);
    rk_wcache_undo(c);

    assert_get(c, 0, key, KLEN, small, sizeof small);
    assert_get(c, 1, k2, KLEN, big2, sizeof big2);
    rk_wcache_stats st = stats(c);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.dirty, 0);
    assert_int_equal(st.pending_new[0], 0);
    assert_int_equal(st.pending_new[1], 0);
    assert_int_equal(rk_wcache_needed_seq(c, 0, 77), 77);

    /* and they can change again afterwards */
    put_req(c, 0, key, KLEN, big, sizeof big, 4);
    assert_get(c, 0, key, KLEN, big, sizeof big);
    assert_int_equal(rk_wcache_needed_seq(c, 0, 77), 4);
}

/* ---- 4. keep ------------------------------------------------------------- */

static void test_keep(void **state)
{
    rk_wcache *c = cache_new(state, 64);
    uint8_t k1[KLEN], k2[KLEN], v1[8], v2[8], v3[200];
    mkkey(1, k1);
    mkkey(2, k2);
    mkval(1, 0, v1, sizeof v1);
    mkval(2, 0, v2, sizeof v2);
    mkval(1, 1, v3, sizeof v3);

    put_req(c, 0, k1, KLEN, v1, sizeof v1, 1);
    rk_wcache_begin(c);
    assert_int_equal(rk_wcache_put(c, 0, k2, KLEN, v2, sizeof v2, 2), 0);
    assert_int_equal(rk_wcache_put(c, 0, k1, KLEN, v3, sizeof v3, 3), 0);
    rk_wcache_keep(c);
    rk_wcache_stats kept = stats(c);

    rk_wcache_begin(c);
    rk_wcache_undo(c);

    assert_get(c, 0, k1, KLEN, v3, sizeof v3);
    assert_get(c, 0, k2, KLEN, v2, sizeof v2);
    rk_wcache_stats st = stats(c);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.records, kept.records);
    assert_int_equal(st.dirty, 2);
    assert_int_equal(st.pending_new[0], 2);
    assert_int_equal(rk_wcache_needed_seq(c, 0, 99), 1);
    assert_int_equal(rk_wcache_needed_seq(c, 1, 99), 2);
}

/* ---- 5. the dirty FIFO --------------------------------------------------- */

static void check_dirty(const rk_wc_dirty *d, int db, const uint8_t *key, const uint8_t *val,
                        size_t len)
{
    assert_int_equal(d->db, db);
    assert_int_equal(d->klen, KLEN);
    assert_memory_equal(d->key, key, KLEN);
    assert_int_equal(d->len, len);
    assert_memory_equal(d->val, val, len);
}

static void test_dirty_fifo(void **state)
{
    rk_wcache *c = cache_new(state, 64);
    uint8_t ka[KLEN], kb[KLEN], kc[KLEN];
    uint8_t va[10], va2[300], vb[11], vc[12], va3[7];
    mkkey(100, ka);
    mkkey(200, kb);
    mkkey(300, kc);
    mkval(100, 0, va, sizeof va);
    mkval(100, 1, va2, sizeof va2);
    mkval(100, 2, va3, sizeof va3);
    mkval(200, 0, vb, sizeof vb);
    mkval(300, 0, vc, sizeof vc);

    assert_int_equal(rk_wcache_needed_seq(c, 0, 99), 99);
    rk_wc_dirty d[8];
    assert_int_equal(rk_wcache_dirty_head(c, d, 8), 0);

    put_req(c, 0, ka, KLEN, va, sizeof va, 5);
    put_req(c, 1, kb, KLEN, vb, sizeof vb, 6);
    put_req(c, 0, kc, KLEN, vc, sizeof vc, 7);

    assert_int_equal(rk_wcache_dirty_head(c, d, 8), 3);
    check_dirty(&d[0], 0, ka, va, sizeof va);
    check_dirty(&d[1], 1, kb, vb, sizeof vb);
    check_dirty(&d[2], 0, kc, vc, sizeof vc);
    assert_int_equal(rk_wcache_dirty_head(c, d, 2), 2); /* bounded by n */
    check_dirty(&d[0], 0, ka, va, sizeof va);
    check_dirty(&d[1], 1, kb, vb, sizeof vb);
    assert_int_equal(rk_wcache_needed_seq(c, 0, 99), 5);
    assert_int_equal(rk_wcache_needed_seq(c, 1, 99), 6);
    assert_int_equal(rk_wcache_needed_seq(c, 2, 99), 7);
    assert_int_equal(rk_wcache_needed_seq(c, 3, 99), 99);

    /* A again, while dirty: same place, same seq, newest value */
    put_req(c, 0, ka, KLEN, va2, sizeof va2, 8);
    assert_int_equal(rk_wcache_dirty_head(c, d, 8), 3);
    check_dirty(&d[0], 0, ka, va2, sizeof va2);
    check_dirty(&d[1], 1, kb, vb, sizeof vb);
    check_dirty(&d[2], 0, kc, vc, sizeof vc);
    assert_int_equal(rk_wcache_needed_seq(c, 0, 99), 5);
    rk_wcache_stats st = stats(c);
    assert_int_equal(st.dirty, 3);
    assert_int_equal(st.pending_new[0], 2);
    assert_int_equal(st.pending_new[1], 1);

    /* A written */
    mark_clean(c, 1);
    assert_int_equal(rk_wcache_dirty_head(c, d, 8), 2);
    check_dirty(&d[0], 1, kb, vb, sizeof vb);
    check_dirty(&d[1], 0, kc, vc, sizeof vc);
    assert_int_equal(rk_wcache_needed_seq(c, 0, 99), 6);
    assert_int_equal(rk_wcache_needed_seq(c, 1, 99), 7);
    assert_int_equal(rk_wcache_needed_seq(c, 2, 99), 99);
    st = stats(c);
    assert_int_equal(st.records, 3);
    assert_int_equal(st.dirty, 2);
    assert_int_equal(st.pending_new[0], 1);
    assert_int_equal(st.pending_new[1], 1);
    assert_get(c, 0, ka, KLEN, va2, sizeof va2); /* still cached, clean */

    /* A dirty again: at the tail, with its new first seq */
    put_req(c, 0, ka, KLEN, va3, sizeof va3, 9);
    assert_int_equal(rk_wcache_dirty_head(c, d, 8), 3);
    check_dirty(&d[0], 1, kb, vb, sizeof vb);
    check_dirty(&d[1], 0, kc, vc, sizeof vc);
    check_dirty(&d[2], 0, ka, va3, sizeof va3);
    assert_int_equal(rk_wcache_needed_seq(c, 2, 99), 9);
    st = stats(c);
    assert_int_equal(st.dirty, 3);
    assert_int_equal(st.pending_new[0], 1); /* A is in its database now */
    assert_int_equal(st.pending_new[1], 1);

    mark_clean(c, 2);
    assert_int_equal(rk_wcache_needed_seq(c, 0, 99), 9);
    assert_int_equal(rk_wcache_dirty_head(c, d, 8), 1);
    check_dirty(&d[0], 0, ka, va3, sizeof va3);
    st = stats(c);
    assert_int_equal(st.dirty, 1);
    assert_int_equal(st.pending_new[0], 0);
    assert_int_equal(st.pending_new[1], 0);

    /* marking more than there are stops at the end */
    mark_clean(c, 5);
    assert_int_equal(rk_wcache_needed_seq(c, 0, 99), 99);
    assert_int_equal(rk_wcache_dirty_head(c, d, 8), 0);
    st = stats(c);
    assert_int_equal(st.records, 3);
    assert_int_equal(st.dirty, 0);
}

/* ---- 6. forget_clean ----------------------------------------------------- */

/* Images written while requests went on (the checkpointer writes copies
 * outside the store's lock): a record changed meanwhile stays dirty, from the
 * sequence the images were taken at, in its place in the FIFO; one changed
 * and undone, or unchanged, becomes clean. */
static void test_mark_written_changed(void **state)
{
    rk_wcache *c = cache_new(state, 64);
    uint8_t k[5][KLEN], v[5][16], v2[40];
    for (uint32_t i = 0; i < 5; i++) {
        mkkey(100 + i, k[i]);
        mkval(100 + i, 0, v[i], sizeof v[i]);
    }
    mkval(100, 1, v2, sizeof v2);
    put_req(c, 0, k[0], KLEN, v[0], sizeof v[0], 5); /* A */
    put_req(c, 0, k[1], KLEN, v[1], sizeof v[1], 6); /* B */
    put_req(c, 1, k[2], KLEN, v[2], sizeof v[2], 7); /* C */

    /* images of A, B and C taken at log sequence 8 */
    rk_wc_dirty d[8];
    rk_wc_image img[3];
    assert_int_equal(rk_wcache_dirty_head(c, d, 3), 3);
    for (int i = 0; i < 3; i++)
        img[i] = d[i].img;

    /* meanwhile: A changes, C changes and is undone, D and E become dirty */
    put_req(c, 0, k[0], KLEN, v2, sizeof v2, 8);
    rk_wcache_begin(c);
    assert_int_equal(rk_wcache_put(c, 1, k[2], KLEN, v2, sizeof v2, 9), 0);
    rk_wcache_undo(c);
    put_req(c, 0, k[3], KLEN, v[3], sizeof v[3], 9);
    put_req(c, 0, k[4], KLEN, v[4], sizeof v[4], 10);
    assert_int_equal(stats(c).pending_new[0], 4);

    rk_wcache_mark_written(c, img, 3, 8);

    /* B and C clean; A dirty from 8, between what was dirty before (none
     * left) and D */
    assert_int_equal(rk_wcache_dirty_head(c, d, 8), 3);
    check_dirty(&d[0], 0, k[0], v2, sizeof v2);
    check_dirty(&d[1], 0, k[3], v[3], sizeof v[3]);
    check_dirty(&d[2], 0, k[4], v[4], sizeof v[4]);
    assert_int_equal(rk_wcache_needed_seq(c, 0, 99), 8);
    assert_int_equal(rk_wcache_needed_seq(c, 1, 99), 9);
    assert_int_equal(rk_wcache_needed_seq(c, 2, 99), 10);
    rk_wcache_stats st = stats(c);
    assert_int_equal(st.dirty, 3);
    assert_int_equal(st.pending_new[0], 2); /* A's key is in its database now */
    assert_int_equal(st.pending_new[1], 0);
    assert_get(c, 1, k[2], KLEN, v[2], sizeof v[2]);

    /* a record that stayed dirty before the images were taken keeps its
     * place ahead of A's new one: images of D only, D changed, taken at 9 */
    assert_int_equal(rk_wcache_dirty_head(c, d, 2), 2);
    img[0] = d[1].img; /* D */
    put_req(c, 0, k[3], KLEN, v2, sizeof v2, 11);
    rk_wcache_mark_written(c, img, 1, 11);
    assert_int_equal(rk_wcache_dirty_head(c, d, 8), 3);
    check_dirty(&d[0], 0, k[0], v2, sizeof v2);
    check_dirty(&d[1], 0, k[4], v[4], sizeof v[4]);
    check_dirty(&d[2], 0, k[3], v2, sizeof v2);
    assert_int_equal(rk_wcache_needed_seq(c, 2, 99), 11);

    /* the images taken now are the newest: all clean */
    mark_clean(c, 3);
    assert_int_equal(stats(c).dirty, 0);
    assert_int_equal(stats(c).pending_new[0], 0);
}

static void test_forget_clean(void **state)
{
    rk_wcache *c = cache_new(state, 64);
    uint8_t kd[KLEN], kc[KLEN], kx[KLEN], vd[9], vc[9];
    mkkey(1, kd);
    mkkey(2, kc);
    mkkey(3, kx);
    mkval(1, 0, vd, sizeof vd);
    mkval(2, 0, vc, sizeof vc);

    put_req(c, 0, kd, KLEN, vd, sizeof vd, 1);
    load_req(c, 0, kc, KLEN, vc, sizeof vc);

    assert_false(rk_wcache_forget_clean(c, 0, kd, KLEN));
    assert_get(c, 0, kd, KLEN, vd, sizeof vd);
    assert_int_equal(stats(c).records, 2);

    assert_true(rk_wcache_forget_clean(c, 0, kc, KLEN));
    assert_absent(c, 0, kc, KLEN);
    assert_int_equal(stats(c).records, 1);

    assert_true(rk_wcache_forget_clean(c, 0, kx, KLEN));
    assert_true(rk_wcache_forget_clean(c, 1, kd, KLEN)); /* other db: absent */
    assert_get(c, 0, kd, KLEN, vd, sizeof vd);

    /* once written, the dirty one can go */
    mark_clean(c, 1);
    assert_true(rk_wcache_forget_clean(c, 0, kd, KLEN));
    assert_absent(c, 0, kd, KLEN);
    rk_wcache_stats st = stats(c);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.dirty, 0);
    assert_int_equal(st.pending_new[0], 0);
}

/* ---- 7. eviction --------------------------------------------------------- */

static void test_eviction(void **state)
{
    rk_wcache *c = cache_new(state, 64);
    uint8_t key[KLEN], val[16];
    for (uint32_t i = 0; i < 64; i++) {
        mkkey(i, key);
        mkval(i, 0, val, sizeof val);
        load_req(c, 0, key, KLEN, val, sizeof val);
    }
    rk_wcache_stats st = stats(c);
    assert_int_equal(st.records, 64);
    assert_int_equal(st.evictions, 0);

    /* a 65th key: one clean record makes room */
    mkkey(64, key);
    mkval(64, 0, val, sizeof val);
    put_req(c, 0, key, KLEN, val, sizeof val, 1);
    st = stats(c);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.records, 64);
    assert_int_equal(st.full, 0);

    /* exactly one of the first 64 left; the rest (and the 65th) are here */
    bool present[65];
    int npresent = 0;
    rk_wcache_begin(c);
    for (uint32_t i = 0; i <= 64; i++) {
        const uint8_t *v;
        size_t len;
        mkkey(i, key);
        present[i] = rk_wcache_get(c, 0, key, KLEN, &v, &len) == 0;
        npresent += present[i];
    }
    rk_wcache_keep(c);
    assert_true(present[64]);
    assert_int_equal(npresent, 64);

    /* all dirty */
    for (uint32_t i = 0; i <= 64; i++) {
        if (!present[i])
            continue;
        mkkey(i, key);
        mkval(i, 1, val, sizeof val);
        put_req(c, 0, key, KLEN, val, sizeof val, 100 + i);
    }
    st = stats(c);
    assert_int_equal(st.records, 64);
    assert_int_equal(st.dirty, 64);

    /* nothing clean to evict */
    rk_wcache_begin(c);
    mkkey(1000, key);
    mkval(1000, 0, val, sizeof val);
    assert_int_equal(rk_wcache_put(c, 0, key, KLEN, val, sizeof val, 500), RK_EFULL);
    const uint8_t *cv = NULL;
    assert_int_equal(rk_wcache_load(c, 0, key, KLEN, val, sizeof val, &cv), RK_EFULL);
    rk_wcache_keep(c);
    st = stats(c);
    assert_int_equal(st.full, 2);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.records, 64);
    assert_int_equal(st.dirty, 64);
    assert_absent(c, 0, key, KLEN);
    for (uint32_t i = 0; i <= 64; i++) {
        mkkey(i, key);
        if (!present[i]) {
            assert_absent(c, 0, key, KLEN);
            continue;
        }
        mkval(i, 1, val, sizeof val);
        assert_get(c, 0, key, KLEN, val, sizeof val);
    }

    /* a write-back frees room again */
    mark_clean(c, 64);
    mkkey(1000, key);
    mkval(1000, 0, val, sizeof val);
    put_req(c, 0, key, KLEN, val, sizeof val, 600);
    st = stats(c);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.records, 64);
}

static void test_eviction_pinned(void **state)
{
    rk_wcache *c = cache_new(state, 64);
    uint8_t key[KLEN], val[16], v0[16];
    const uint8_t *cv;

    rk_wcache_begin(c);
    for (uint32_t i = 0; i < 63; i++) {
        mkkey(i, key);
        mkval(i, 0, val, sizeof val);
        assert_int_equal(rk_wcache_load(c, 0, key, KLEN, val, sizeof val, &cv), 0);
    }
    rk_wcache_keep(c);
    assert_int_equal(stats(c).records, 63);

    rk_wcache_begin(c);
    mkkey(0, key);
    mkval(0, 0, v0, sizeof v0);
    const uint8_t *p0 = NULL;
    size_t len0 = 0;
    assert_int_equal(rk_wcache_get(c, 0, key, KLEN, &p0, &len0), 0); /* pins #0 */
    for (uint32_t i = 63; i < 65; i++) {
        mkkey(i, key);
        mkval(i, 0, val, sizeof val);
        assert_int_equal(rk_wcache_load(c, 0, key, KLEN, val, sizeof val, &cv), 0);
    }
    /* the pointer from the get is still #0's value */
    assert_int_equal(len0, sizeof v0);
    assert_memory_equal(p0, v0, sizeof v0);
    rk_wcache_keep(c);

    rk_wcache_stats st = stats(c);
    assert_int_equal(st.records, 64);
    assert_int_equal(st.evictions, 1);
    mkkey(0, key);
    assert_get(c, 0, key, KLEN, v0, sizeof v0);
    for (uint32_t i = 63; i < 65; i++) {
        mkkey(i, key);
        mkval(i, 0, val, sizeof val);
        assert_get(c, 0, key, KLEN, val, sizeof val);
    }
}

/* Every record added by evicting another must be found afterwards, and so
 * must every record not evicted: the eviction deletes from the open-addressing
 * table (backward shift), which can move the spot where the new key belongs.
 * A stream of new clean keys through a full cache of 64. */
static void test_eviction_keeps_index(void **state)
{
    rk_wcache *c = cache_new(state, 64);
    uint8_t key[KLEN], val[16];
    for (uint32_t i = 0; i < 64; i++) {
        mkkey(i, key);
        mkval(i, 0, val, sizeof val);
        load_req(c, 0, key, KLEN, val, sizeof val);
    }
    for (uint32_t i = 64; i < 64 + 512; i++) {
        mkkey(i, key);
        mkval(i, 0, val, sizeof val);
        load_req(c, 0, key, KLEN, val, sizeof val);
        /* the one just added */
        const uint8_t *v = NULL;
        size_t len = 0;
        int rc = rk_wcache_get(c, 0, key, KLEN, &v, &len);
        if (rc != 0)
            fail_msg("key #%u loaded with an eviction (eviction %llu) is not found: %d", i,
                     (unsigned long long)stats(c).evictions, rc);
        assert_int_equal(len, sizeof val);
        assert_memory_equal(v, val, sizeof val);
        /* exactly the last 64 keys are cached (the clock evicts in order) */
        rk_wcache_stats st = stats(c);
        assert_int_equal(st.records, 64);
        assert_int_equal(st.evictions, i - 63);
        int found = 0;
        for (uint32_t j = i - 63; j <= i; j++) {
            mkkey(j, key);
            found += rk_wcache_get(c, 0, key, KLEN, &v, &len) == 0;
        }
        if (found != 64)
            fail_msg("after loading key #%u only %d of the 64 cached keys are found", i, found);
    }
}

/* ---- 8. pending_new ------------------------------------------------------ */

static void test_pending_new(void **state)
{
    rk_wcache *c = cache_new(state, 64);
    uint8_t k1[KLEN], k2[KLEN], k3[KLEN], v[8];
    mkkey(1, k1);
    mkkey(2, k2);
    mkkey(3, k3);
    mkval(1, 0, v, sizeof v);

    put_req(c, 1, k1, KLEN, v, sizeof v, 1);
    rk_wcache_stats st = stats(c);
    assert_int_equal(st.pending_new[0], 0);
    assert_int_equal(st.pending_new[1], 1);

    load_req(c, 1, k2, KLEN, v, sizeof v);
    st = stats(c);
    assert_int_equal(st.pending_new[1], 1);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.dirty, 1);

    /* a put over a loaded record: dirty, but its database holds it */
    put_req(c, 1, k2, KLEN, v, sizeof v, 2);
    st = stats(c);
    assert_int_equal(st.pending_new[1], 1);
    assert_int_equal(st.dirty, 2);

    put_req(c, 0, k3, KLEN, v, sizeof v, 3);
    st = stats(c);
    assert_int_equal(st.pending_new[0], 1);
    assert_int_equal(st.pending_new[1], 1);

    mark_clean(c, 1); /* k1 */
    st = stats(c);
    assert_int_equal(st.pending_new[0], 1);
    assert_int_equal(st.pending_new[1], 0);
    mark_clean(c, 1); /* k2 (already in its database) */
    st = stats(c);
    assert_int_equal(st.pending_new[0], 1);
    assert_int_equal(st.pending_new[1], 0);
    mark_clean(c, 1); /* k3 */
    st = stats(c);
    assert_int_equal(st.pending_new[0], 0);
    assert_int_equal(st.pending_new[1], 0);
    assert_int_equal(st.dirty, 0);
    assert_int_equal(st.records, 3);

    /* an undone new record is no longer pending */
    uint8_t k4[KLEN];
    mkkey(4, k4);
    rk_wcache_begin(c);
    assert_int_equal(rk_wcache_put(c, 0, k4, KLEN, v, sizeof v, 4), 0);
    assert_int_equal(stats(c).pending_new[0], 1);
    rk_wcache_undo(c);
    assert_int_equal(stats(c).pending_new[0], 0);
}

/* ---- 9. many keys -------------------------------------------------------- */

#define MANY 10000

static void test_many_keys(void **state)
{
    rk_wcache *c = cache_new(state, 16384);
    uint8_t key[KLEN], val[20];
    for (uint32_t i = 0; i < MANY; i++) {
        mkkey(i, key);
        mkval(i, 0, val, sizeof val);
        put_req(c, 0, key, KLEN, val, sizeof val, 1 + i);
    }
    rk_wcache_stats st = stats(c);
    assert_int_equal(st.records, MANY);
    assert_int_equal(st.dirty, MANY);
    assert_int_equal(st.pending_new[0], MANY);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(rk_wcache_needed_seq(c, 0, 0), 1);
    assert_int_equal(rk_wcache_needed_seq(c, MANY - 1, 0), MANY);

    mark_clean(c, MANY);
    st = stats(c);
    assert_int_equal(st.dirty, 0);
    assert_int_equal(st.pending_new[0], 0);

    for (uint32_t i = 0; i < MANY; i += 2) {
        mkkey(i, key);
        assert_true(rk_wcache_forget_clean(c, 0, key, KLEN));
    }
    st = stats(c);
    assert_int_equal(st.records, MANY / 2);

    rk_wcache_begin(c);
    for (uint32_t i = 0; i < MANY; i++) {
        mkkey(i, key);
        if (i % 2 == 0) {
            const uint8_t *v;
            size_t len;
            int rc = rk_wcache_get(c, 0, key, KLEN, &v, &len);
            if (rc != RK_ENOTFOUND)
                fail_msg("forgotten key #%u still found (%d)", i, rc);
        } else {
            mkval(i, 0, val, sizeof val);
            assert_get(c, 0, key, KLEN, val, sizeof val);
        }
    }
    rk_wcache_keep(c);
    /* and the other db saw none of it */
    mkkey(1, key);
    assert_absent(c, 1, key, KLEN);
}

/* Prefetching reads the cache and changes nothing: present, absent and
 * too-long keys, every stage (ASan checks the reads). */
static void test_prefetch_changes_nothing(void **state)
{
    rk_wcache *c = cache_new(state, 64);
    uint8_t key[KLEN], val[300], missing[KLEN], toolong[RK_WC_KEY_MAX + 8] = {0};
    mkkey(1, key);
    mkkey(2, missing);
    mkval(1, 0, val, sizeof val);
    put_req(c, 0, key, KLEN, val, sizeof val, 1);
    rk_wcache_stats before = stats(c);
    for (int stage = 0; stage <= 2; stage++) {
        rk_wcache_prefetch(c, 0, key, KLEN, stage);
        rk_wcache_prefetch(c, 0, missing, KLEN, stage);
        rk_wcache_prefetch(c, 1, key, KLEN, stage);
        rk_wcache_prefetch(c, 0, toolong, sizeof toolong, stage);
    }
    rk_wcache_stats after = stats(c);
    assert_memory_equal(&before, &after, sizeof before);
    rk_wcache_begin(c);
    assert_get(c, 0, key, KLEN, val, sizeof val);
    assert_absent(c, 0, missing, KLEN);
    rk_wcache_keep(c);
}

/* Runs rk_wcache_prefault until it has nothing left; returns its steps. */
static int prefault_all(rk_wcache *c)
{
    int steps = 0;
    while (rk_wcache_prefault(c))
        assert_true(++steps < 10000);
    return steps;
}

#define PF_RECORDS 900
#define PF_LEN 4000 /* 900 x 4 KiB buffers: two 2 MiB slabs and part of a third */

static void put_big(rk_wcache *c, uint32_t i)
{
    static uint8_t key[KLEN], val[PF_LEN];
    mkkey(i, key);
    mkval(i, 3, val, PF_LEN);
    put_req(c, 0, key, KLEN, val, PF_LEN, 1 + i);
}

static void assert_big(rk_wcache *c, uint32_t n)
{
    static uint8_t key[KLEN], val[PF_LEN];
    rk_wcache_begin(c);
    for (uint32_t i = 0; i < n; i++) {
        mkkey(i, key);
        mkval(i, 3, val, PF_LEN);
        assert_get(c, 0, key, KLEN, val, PF_LEN);
    }
    rk_wcache_keep(c);
}

/* Spare slabs are made, taken by the writes that need a slab, reported once,
 * and replaced, in a resident cache and in one that touches memory as it
 * goes (whose pool is populated ahead too); a cache nobody prefaults for
 * works as well without. */
static void test_prefault(void **state)
{
    fx *f = *state;
    for (int resident = 1; resident >= 0; resident--) {
        rk_wcache *c = cache_make(state, 1000, resident);
        assert_false(rk_wcache_prefault_wanted(c));
        assert_int_equal(prefault_all(c), 2); /* two spare slabs */
        assert_false(rk_wcache_prefault(c));
        for (uint32_t i = 0; i < PF_RECORDS; i++)
            put_big(c, i);
        assert_true(rk_wcache_prefault_wanted(c));
        assert_false(rk_wcache_prefault_wanted(c)); /* once */
        assert_big(c, PF_RECORDS);
        /* both spares were used: two new ones; and the pool of a cache not
         * made resident is populated ahead of its first entry (one step) */
        assert_int_equal(prefault_all(c), 2 + !resident);
        assert_int_equal(stats(c).records, PF_RECORDS);
        rk_wcache_free(f->c);
        f->c = NULL;
    }
    rk_wcache *c = cache_new(state, 1000);
    for (uint32_t i = 0; i < PF_RECORDS; i++)
        put_big(c, i);
    assert_true(rk_wcache_prefault_wanted(c)); /* its pool, asked for, never given */
    assert_big(c, PF_RECORDS);
}

/* The entry pool of a cache not made resident is populated ahead of use,
 * step after step, for as long as it fills: never behind the entries handed
 * out, never far beyond them. (A want that was not a whole number of steps
 * once made the kernel refuse a populate at an unaligned address, and the
 * prefaulter gave the rest of the pool up.) */
static void test_prefault_pool(void **state)
{
    enum { N = 200000 };                   /* entries: a pool of eight 2 MiB steps and more */
    /* wcache.c: POOL_AHEAD rounded up to a step, and a step to spare */
    const uint64_t ahead = (uint64_t)8 << 20;
    rk_wcache *c = cache_make(state, N, false);
    uint8_t key[KLEN], val[16];
    uint64_t grown = 0, last_ready = 0;
    for (uint32_t i = 0; i < N; i++) {
        mkkey(i, key);
        mkval(i, 1, val, sizeof val);
        put_req(c, 0, key, KLEN, val, sizeof val, 1 + i);
        if (i % 256 == 0)
            prefault_all(c);
        rk_wcache_stats st = stats(c);
        if (i % 256 == 0)
            assert_true(st.pool_ready >= st.pool_used);
        assert_true(st.pool_ready <= st.pool_used + ahead);
        grown += st.pool_ready > last_ready;
        last_ready = st.pool_ready;
    }
    assert_true(grown >= 5); /* populated step by step, to the end */
    assert_true(last_ready == stats(c).pool_used);
}

typedef struct pf_thread {
    rk_wcache *c;
    atomic_int kicks;  /* spares taken and not yet answered */
    atomic_bool stop;
} pf_thread;

static void *pf_main(void *arg)
{
    pf_thread *t = arg;
    while (!atomic_load(&t->stop) || atomic_load(&t->kicks) > 0) {
        if (atomic_load(&t->kicks) > 0) {
            atomic_fetch_sub(&t->kicks, 1);
            while (rk_wcache_prefault(t->c))
                ;
        }
        sched_yield();
    }
    return NULL;
}

/* A thread prefaulting while records are written and rewritten, as the
 * store runs it: every record reads back as written. */
static void test_prefault_concurrent(void **state)
{
    pf_thread t = { .c = cache_make(state, 4096, true) };
    atomic_store(&t.kicks, 1);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pf_main, &t), 0);
    for (int round = 0; round < 3; round++) {
        for (uint32_t i = 0; i < PF_RECORDS; i++) {
            put_big(t.c, i + (uint32_t)round * PF_RECORDS);
            if (rk_wcache_prefault_wanted(t.c))
                atomic_fetch_add(&t.kicks, 1);
        }
    }
    atomic_store(&t.stop, true);
    pthread_join(th, NULL);
    assert_big(t.c, 3 * PF_RECORDS);
}

/* A cache not made resident doubles its index as it fills, into tables the
 * prefaulter made ready (or, when it was too late, into its own): every
 * record reads back, through several doublings, with the prefaulter run
 * whenever asked, never, once too late and then whenever asked, and once
 * too late only. */
static void test_prefault_index(void **state)
{
    fx *f = *state;
    uint8_t key[KLEN], val[24];
    for (int mode = 0; mode < 4; mode++) {
        rk_wcache *c = cache_make(state, 200000, false);
        int asked = 0;
        for (uint32_t i = 0; i < 40000; i++) {
            mkkey(i, key);
            mkval(i, 5, val, sizeof val);
            put_req(c, 0, key, KLEN, val, sizeof val, 1 + i);
            if (rk_wcache_prefault_wanted(c)) {
                asked++;
                if (mode == 0 || (mode == 2 && i > 2100))
                    prefault_all(c);
            }
            /* modes 2, 3: the table wanted at 3/8 of 4096 slots is made after
             * the growth at half, and must give way to the next one wanted
             * (2) or be passed over by the next growth, which needs twice
             * its size (3) */
            if (mode >= 2 && i == 2100)
                assert_true(prefault_all(c) >= 1);
        }
        assert_true(asked >= 4); /* 4096 -> 8192 -> ... -> 131072 slots: five doublings */
        rk_wcache_begin(c);
        for (uint32_t i = 0; i < 40000; i++) {
            mkkey(i, key);
            mkval(i, 5, val, sizeof val);
            assert_get(c, 0, key, KLEN, val, sizeof val);
        }
        rk_wcache_keep(c);
        assert_int_equal(stats(c).records, 40000);
        rk_wcache_free(f->c);
        f->c = NULL;
    }
}

/* The same with a thread prefaulting as the store runs it, while the index
 * doubles under it. */
static void test_prefault_index_concurrent(void **state)
{
    pf_thread t = {.c = cache_make(state, 200000, false)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pf_main, &t), 0);
    uint8_t key[KLEN], val[24];
    for (uint32_t i = 0; i < 40000; i++) {
        mkkey(i, key);
        mkval(i, 5, val, sizeof val);
        put_req(t.c, 0, key, KLEN, val, sizeof val, 1 + i);
        if (rk_wcache_prefault_wanted(t.c))
            atomic_fetch_add(&t.kicks, 1);
    }
    atomic_store(&t.stop, true);
    pthread_join(th, NULL);
    rk_wcache_begin(t.c);
    for (uint32_t i = 0; i < 40000; i++) {
        mkkey(i, key);
        mkval(i, 5, val, sizeof val);
        assert_get(t.c, 0, key, KLEN, val, sizeof val);
    }
    rk_wcache_keep(t.c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prefetch_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_put_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_index_distinct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undo_class_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mark_written_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eviction_pinned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eviction_keeps_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_new, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefault_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefault_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefault_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefault_index_concurrent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
