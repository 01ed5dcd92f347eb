/* The write-back record cache (see wcache.h for the contract).
 *
 * Layout. A fixed pool of entries (capacity of them) indexed by an
 * open-addressing table of twice as many cells (linear probing, deletion by
 * backward shift, so no tombstones); a cell holds the entry's slot and 32
 * bits of its hash, so probing past other keys reads no entry. Slots are
 * handed out in order until the pool is full (memory never used is never
 * touched, unless the cache was made resident), released ones are chained
 * through `next`. Eviction is a clock hand over the pool that takes the
 * first clean, unpinned entry within EVICT_SCAN steps: bounded work per
 * insert, and when the cache is all dirty the caller falls back to the
 * database.
 *
 * Values. Size classes every 64 bytes up to 4 KiB (records are a few hundred
 * bytes, so little is wasted), then doubling up to 2 MiB; freed buffers go to their class's
 * free list, new ones are carved from 2 MiB slabs. Undo keeps the old images
 * in a growing buffer that is reset, not freed, per request. */
#include "state/wcache.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/err.h"
#include "lib/grow.h"

#define NIL UINT32_MAX
#define EVICT_SCAN 256          /* entries the clock hand looks at before giving up */
#define FINE_CLASSES 64         /* 64, 128, ... 4096 bytes */
#define NCLASS (FINE_CLASSES + 9) /* then 8 KiB .. 2 MiB */
#define SLAB_BYTES ((size_t)2 << 20) /* one transparent huge page */
#define SPARES 2                /* populated slabs waiting (rk_wcache_prefault) */
#define POOL_AHEAD ((size_t)4 << 20) /* pool bytes kept populated beyond the last entry used */
#define POOL_STEP SLAB_BYTES    /* pool bytes one rk_wcache_prefault populates */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  /* Linux 5.14; older headers lack the name */
#endif

enum {
    F_USED = 1,   /* the entry holds a record */
    F_DIRTY = 2,  /* changed since it was last written to its database */
    F_IN_DB = 4,  /* its database holds (some image of) the key */
};

/* What a lookup reads comes first: one cache line holds the key and value
 * pointer. */
typedef struct entry {
    uint8_t key[RK_WC_KEY_MAX];
    uint8_t *val;        /* value buffer of class cls */
    uint32_t len;        /* value bytes */
    uint8_t cls;         /* size class of val */
    uint8_t db;          /* database index */
    uint8_t klen;        /* key bytes */
    uint8_t flags;       /* F_* */
    uint64_t gen;        /* request generation that last touched it (pinned while current) */
    uint32_t prev, next; /* dirty FIFO links; next also chains free entries */
    uint64_t first_seq;  /* WAL sequence of its first unflushed change (dirty only) */
    uint64_t ver;        /* which image it holds: a new value from ver_clock at each put */
    uint64_t ugen;       /* generation whose undo record holds its old image */
    uint64_t hash;       /* of db and key */
} entry;

typedef struct undo_rec {
    uint32_t slot;       /* entry */
    uint8_t kind;        /* U_ADDED or U_CHANGED */
    uint8_t flags;       /* its flags before */
    uint32_t len;        /* its value length before */
    uint64_t first_seq;  /* and first_seq */
    uint64_t ver;        /* and ver */
    size_t off;          /* old value bytes in undo_buf */
} undo_rec;

enum { U_ADDED, U_CHANGED };

typedef struct slab {
    struct slab *next;
    size_t bytes;         /* of the mapping */
} slab;

struct rk_wcache {
    entry *e;             /* the pool */
    uint32_t cap;         /* entries in the pool */
    uint64_t *idx;        /* table: hash's low 32 bits << 32 | slot + 1 (0 = empty) */
    size_t e_bytes, idx_bytes; /* their mappings' sizes */
    uint32_t mask;        /* table size - 1 */
    uint32_t max_mask;    /* the table grows up to twice the capacity */
    uint32_t free_head;   /* released entries */
    uint32_t fresh;       /* entries from here on were never used (left untouched: no page faults) */
    uint32_t used;        /* entries holding records */
    uint32_t hand;        /* clock hand */
    uint32_t dhead, dtail; /* dirty FIFO */
    uint64_t ndirty;
    uint64_t pending_new[RK_WC_DBS];
    uint64_t evictions, full;
    uint64_t gen;         /* current request generation (starts at 1) */
    uint64_t ver_clock;   /* the last image version handed out */
    uint32_t last;        /* slot + 1 of the record the last get or load returned (0: none) */

    undo_rec *undo;       /* this request's undo records */
    size_t nundo, undo_bytes;
    uint8_t *undo_buf;    /* their old values */
    size_t undo_used, undo_buf_cap;

    void *freelist[NCLASS]; /* recycled value buffers */
    slab *slabs;          /* every slab, for rk_wcache_free */
    uint8_t *carve;       /* unused tail of the newest slab */
    size_t carve_left;

    /* prefaulting: the only fields another thread (rk_wcache_prefault) touches */
    _Atomic(slab *) spare[SPARES]; /* populated slabs (SLAB_BYTES), NULL when taken */
    atomic_bool pf_wanted;         /* work for the prefaulter since rk_wcache_prefault_wanted */
    atomic_size_t pool_want;       /* pool bytes that should be populated (user's) */
    atomic_size_t pool_done;       /* pool bytes populated (prefaulter's; read for stats) */
    atomic_size_t idx_want;        /* bytes of the next, doubled table; 0 when not wanted */
    atomic_uintptr_t spare_idx;    /* a populated table and its size (spare_pack), 0 when taken */
};

/* ---- memory -------------------------------------------------------------- */

/* Zeroed memory for the pool, the table and the slabs, asking for
 * transparent huge pages: a lookup is a few dependent random reads across
 * hundreds of megabytes, and with 4 KiB pages each also misses the TLB.
 * resident: faulted in now (by writing it: no one else sees it yet). */
static void *big_alloc(size_t n, bool resident)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    (void)madvise(p, n, MADV_HUGEPAGE); /* advice: kernels without THP ignore it */
    if (resident)
        memset(p, 0, n);
    return p;
}

static void big_free(void *p, size_t n)
{
    if (p)
        munmap(p, n);
}

/* A spare index table passes between threads with its size in one atomic
 * word, so whoever takes it knows what it took: tables are page-aligned and
 * a power of two bytes long, and the low bits hold log2 of the size. */
static uintptr_t spare_pack(uint64_t *t, size_t bytes)
{
    return (uintptr_t)t | (uintptr_t)__builtin_ctzll((unsigned long long)bytes);
}

static uint64_t *spare_take(rk_wcache *c, size_t *bytes)
{
    uintptr_t v = atomic_exchange(&c->spare_idx, 0);
    *bytes = (size_t)1 << (v & 63);
    return (uint64_t *)(v & ~(uintptr_t)63);
}

/* The spare table if it is bytes long; one of another size was made for a
 * growth that did not wait for it, and is freed. */
static uint64_t *spare_take_sized(rk_wcache *c, size_t bytes)
{
    size_t spare_bytes = 0;
    uint64_t *t = spare_take(c, &spare_bytes);
    if (t && spare_bytes != bytes) {
        big_free(t, spare_bytes);
        t = NULL;
    }
    return t;
}

/* ---- values -------------------------------------------------------------- */

static size_t class_size(int k)
{
    return k < FINE_CLASSES ? (size_t)(k + 1) * 64 : (size_t)4096 << (k - FINE_CLASSES + 1);
}

static int class_of(size_t len)
{
    if (len <= (size_t)FINE_CLASSES * 64)
        return len ? (int)((len + 63) / 64) - 1 : 0;
    for (int k = FINE_CLASSES; k < NCLASS; k++)
        if (class_size(k) >= len)
            return k;
    return -1;
}

/* A populated slab from the spare slots, or NULL. */
static slab *take_spare(rk_wcache *c)
{
    for (int i = 0; i < SPARES; i++) {
        slab *s = atomic_exchange(&c->spare[i], NULL);
        if (s) {
            atomic_store(&c->pf_wanted, true);
            return s;
        }
    }
    return NULL;
}

static uint8_t *buf_get(rk_wcache *c, int k)
{
    if (c->freelist[k]) {
        void *p = c->freelist[k];
        memcpy(&c->freelist[k], p, sizeof(void *));
        return p;
    }
    size_t size = class_size(k);
    if (c->carve_left < size) {
        size_t want = size > SLAB_BYTES - 64 ? size : SLAB_BYTES - 64;
        slab *s = want == SLAB_BYTES - 64 ? take_spare(c) : NULL;
        if (!s)
            s = big_alloc(64 + want, false);
        if (!s)
            return NULL;
        s->next = c->slabs;
        s->bytes = 64 + want;
        c->slabs = s;
        c->carve = (uint8_t *)s + 64; /* keeps buffers 64-byte aligned relative to the slab */
        c->carve_left = want;
    }
    uint8_t *p = c->carve;
    c->carve += size;
    c->carve_left -= size;
    return p;
}

static void buf_put(rk_wcache *c, int k, uint8_t *p)
{
    memcpy(p, &c->freelist[k], sizeof(void *));
    c->freelist[k] = p;
}

/* Gives entry x room for len bytes, keeping what fits of its value when
 * keep (else the bytes are left for the caller to write). */
static int ensure_room(rk_wcache *c, entry *x, size_t len, bool keep)
{
    int k = class_of(len);
    if (k < 0)
        return RK_ETOOBIG;
    if (x->val && x->cls == k)
        return 0;
    uint8_t *p = buf_get(c, k);
    if (!p)
        return RK_ENOMEM;
    if (x->val && keep)
        memcpy(p, x->val, len < x->len ? len : x->len);
    if (x->val)
        buf_put(c, x->cls, x->val);
    x->val = p;
    x->cls = (uint8_t)k;
    return 0;
}

/* ---- the index ----------------------------------------------------------- */

static uint64_t hash_key(int db, const uint8_t *key, size_t klen)
{
    uint64_t h = 0x9e3779b97f4a7c15ull * (uint64_t)(db + 1) ^ klen;
    for (size_t i = 0; i < klen; i += 8) {
        uint64_t w = 0;
        memcpy(&w, key + i, klen - i < 8 ? klen - i : 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return h;
}

/* Whether n bytes of two keys agree: keys are a few 8-byte words (24-byte
 * counter keys, 16-byte decided ones), so an inline word compare instead of
 * a call to memcmp (which measured 3% of a backtest's time). */
static inline bool key_eq(const uint8_t *a, const uint8_t *b, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            return false;
    }
    for (; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* The table position holding (db, key), or the empty one where it would go. */
static uint32_t probe(const rk_wcache *c, uint64_t h, int db, const uint8_t *key, size_t klen)
{
    uint32_t i = (uint32_t)h & c->mask;
    for (;;) {
        uint64_t cell = c->idx[i];
        if (cell == 0)
            return i;
        if ((uint32_t)(cell >> 32) == (uint32_t)h) { /* only then read the entry */
            const entry *x = &c->e[(uint32_t)cell - 1];
            if (x->db == db && x->klen == klen && key_eq(x->key, key, klen))
                return i;
        }
        i = (i + 1) & c->mask;
    }
}

static void index_remove(rk_wcache *c, uint32_t i)
{
    c->idx[i] = 0;
    /* backward shift: pull later members of the run into the hole */
    for (uint32_t j = (i + 1) & c->mask; c->idx[j]; j = (j + 1) & c->mask) {
        uint32_t home = (uint32_t)(c->idx[j] >> 32) & c->mask;
        /* j's entry may move to i when i lies cyclically in [home, j) */
        if (((j - home) & c->mask) >= ((j - i) & c->mask)) {
            c->idx[i] = c->idx[j];
            c->idx[j] = 0;
            i = j;
        }
    }
}

/* Doubles the table when it passes half full: a large cache whose records
 * are few (a short backtest) keeps a small, cache-friendly table. Rare and
 * amortised: a rehash per doubling. The new table is the prefaulter's spare
 * when it has one ready (asked for at 3/8 full, see add_entry): faulting
 * tens of MiB in on the request's path cost a backtest ~5% of its time.
 * RK_ENOMEM leaves the table as it was. */
static int grow_index(rk_wcache *c)
{
    size_t n = ((size_t)c->mask + 1) * 2, bytes = n * sizeof *c->idx;
    uint64_t *t = spare_take_sized(c, bytes);
    if (!t)
        t = big_alloc(bytes, false);
    if (!t)
        return RK_ENOMEM;
    uint64_t *old = c->idx;
    size_t old_bytes = c->idx_bytes;
    c->idx = t;
    c->idx_bytes = bytes;
    c->mask = (uint32_t)(n - 1);
    for (uint32_t s = 0; s < c->fresh; s++) {
        const entry *x = &c->e[s];
        if (x->flags & F_USED)
            c->idx[probe(c, x->hash, x->db, x->key, x->klen)] = (uint64_t)(uint32_t)x->hash << 32 | (s + 1);
    }
    big_free(old, old_bytes);
    return 0;
}

/* ---- the dirty FIFO ------------------------------------------------------ */

static void fifo_unlink(rk_wcache *c, uint32_t s)
{
    entry *x = &c->e[s];
    if (x->prev != NIL)
        c->e[x->prev].next = x->next;
    else
        c->dhead = x->next;
    if (x->next != NIL)
        c->e[x->next].prev = x->prev;
    else
        c->dtail = x->prev;
    c->ndirty--;
}

static void fifo_append(rk_wcache *c, uint32_t s)
{
    entry *x = &c->e[s];
    x->next = NIL;
    x->prev = c->dtail;
    if (c->dtail != NIL)
        c->e[c->dtail].next = s;
    else
        c->dhead = s;
    c->dtail = s;
    c->ndirty++;
}

/* Sets x's flags, keeping the FIFO and the counts in step. */
static void set_flags(rk_wcache *c, uint32_t s, uint8_t nf)
{
    entry *x = &c->e[s];
    uint8_t of = x->flags;
    bool was_new = (of & F_USED) && !(of & F_IN_DB), is_new = (nf & F_USED) && !(nf & F_IN_DB);
    if ((of & F_DIRTY) && !(nf & F_DIRTY))
        fifo_unlink(c, s);
    else if (!(of & F_DIRTY) && (nf & F_DIRTY))
        fifo_append(c, s);
    c->pending_new[x->db] += (uint64_t)is_new - (uint64_t)was_new;
    x->flags = nf;
}

/* ---- entries ------------------------------------------------------------- */

/* Empties slot s (its record leaves the cache). */
static void release_entry(rk_wcache *c, uint32_t s)
{
    entry *x = &c->e[s];
    set_flags(c, s, 0);
    index_remove(c, probe(c, x->hash, x->db, x->key, x->klen));
    if (x->val)
        buf_put(c, x->cls, x->val);
    x->val = NULL;
    x->next = c->free_head;
    c->free_head = s;
    c->used--;
}

/* A free slot, evicting a clean unpinned record when the pool is full; NIL
 * when there is none within reach. */
static uint32_t take_slot(rk_wcache *c)
{
    if (c->cap == 0) { /* a cache of nothing: every record stays in the database */
        c->full++;
        return NIL;
    }
    if (c->free_head == NIL && c->fresh < c->cap) {
        /* each time the pool's used part crosses a step, ask for the next
         * POOL_AHEAD bytes (a cache made resident has them all) */
        size_t used = (size_t)c->fresh * sizeof *c->e;
        if (used % POOL_STEP < sizeof *c->e) {
            atomic_store_explicit(&c->pool_want, used + POOL_AHEAD, memory_order_relaxed);
            atomic_store(&c->pf_wanted, true);
        }
        return c->fresh++;
    }
    if (c->free_head == NIL) {
        for (int n = 0; n < EVICT_SCAN; n++) {
            uint32_t s = c->hand;
            c->hand = c->hand + 1 == c->cap ? 0 : c->hand + 1;
            const entry *x = &c->e[s];
            if ((x->flags & (F_USED | F_DIRTY)) == F_USED && x->gen != c->gen) {
                release_entry(c, s);
                c->evictions++;
                break;
            }
        }
        if (c->free_head == NIL) {
            c->full++;
            return NIL;
        }
    }
    uint32_t s = c->free_head;
    c->free_head = c->e[s].next;
    return s;
}

static int undo_push(rk_wcache *c, uint32_t s, int kind)
{
    entry *x = &c->e[s];
    size_t keep = kind == U_CHANGED ? x->len : 0;
    if (rk_grow((void **)&c->undo, &c->undo_bytes, (c->nundo + 1) * sizeof *c->undo,
                64 * sizeof *c->undo) != 0 ||
        rk_grow((void **)&c->undo_buf, &c->undo_buf_cap, c->undo_used + keep, 64 * 1024) != 0)
        return RK_ENOMEM;
    if (keep)
        memcpy(c->undo_buf + c->undo_used, x->val, keep);
    c->undo[c->nundo++] = (undo_rec){s, (uint8_t)kind, x->flags, x->len, x->first_seq,
                                     x->ver, c->undo_used};
    c->undo_used += keep;
    return 0;
}

/* Adds (db, key), not cached, with room for len bytes, pinned and recorded
 * for undo. RK_EFULL when there is no room, RK_ENOMEM. */
static int add_entry(rk_wcache *c, uint64_t h, int db, const uint8_t *key, size_t klen,
                     size_t len, uint32_t *out)
{
    size_t slots = (size_t)c->mask + 1;
    if (((size_t)c->used + 1) * 8 == slots * 3 && c->mask < c->max_mask) {
        atomic_store_explicit(&c->idx_want, slots * 2 * sizeof *c->idx, memory_order_relaxed);
        atomic_store(&c->pf_wanted, true);
    }
    if (((size_t)c->used + 1) * 2 > slots && c->mask < c->max_mask && grow_index(c) != 0)
        return RK_ENOMEM;
    uint32_t s = take_slot(c);
    if (s == NIL)
        return RK_EFULL;
    /* probed after the eviction, which may have shortened the key's run */
    uint32_t i = probe(c, h, db, key, klen);
    entry *x = &c->e[s];
    memset(x, 0, sizeof *x);
    x->prev = x->next = NIL;
    x->db = (uint8_t)db;
    x->klen = (uint8_t)klen;
    x->hash = h;
    memcpy(x->key, key, klen);
    int rc = ensure_room(c, x, len, false);
    if (rc == 0)
        rc = undo_push(c, s, U_ADDED);
    if (rc != 0) {
        if (x->val)
            buf_put(c, x->cls, x->val);
        x->val = NULL;
        x->next = c->free_head;
        c->free_head = s;
        return rc;
    }
    c->idx[i] = (uint64_t)(uint32_t)h << 32 | (s + 1);
    c->used++;
    x->gen = x->ugen = c->gen;
    *out = s;
    return 0;
}

/* ---- the API ------------------------------------------------------------- */

int rk_wcache_new(size_t capacity, bool resident, rk_wcache **out)
{
    if (capacity > 0 && capacity < 64)
        capacity = 64;
    if (capacity > (1u << 30))
        capacity = 1u << 30;
    rk_wcache *c = calloc(1, sizeof *c);
    if (!c)
        return RK_ENOMEM;
    uint32_t tsize = 1, tmax = 1;
    while (tmax < capacity * 2)
        tmax <<= 1;
    tsize = resident || tmax < 4096 ? tmax : 4096;
    c->max_mask = tmax - 1;
    c->cap = (uint32_t)capacity;
    c->mask = tsize - 1;
    c->e_bytes = capacity * sizeof *c->e;
    c->idx_bytes = (size_t)tsize * sizeof *c->idx;
    c->e = capacity ? big_alloc(c->e_bytes, resident) : NULL;
    c->pool_done = resident ? c->e_bytes : 0;
    c->idx = big_alloc(c->idx_bytes, resident);
    if ((capacity && !c->e) || !c->idx) {
        rk_wcache_free(c);
        return RK_ENOMEM;
    }
    c->free_head = NIL;
    c->dhead = c->dtail = NIL;
    c->gen = 1;
    *out = c;
    return 0;
}

void rk_wcache_free(rk_wcache *c)
{
    if (!c)
        return;
    while (c->slabs) {
        slab *n = c->slabs->next;
        big_free(c->slabs, c->slabs->bytes);
        c->slabs = n;
    }
    for (int i = 0; i < SPARES; i++)
        big_free(atomic_load(&c->spare[i]), SLAB_BYTES);
    size_t spare_bytes = 0;
    big_free(spare_take(c, &spare_bytes), spare_bytes);
    big_free(c->e, c->e_bytes);
    big_free(c->idx, c->idx_bytes);
    free(c->undo);
    free(c->undo_buf);
    free(c);
}

void rk_wcache_begin(rk_wcache *c)
{
    c->gen++;
    c->nundo = 0;
    c->undo_used = 0;
}

void rk_wcache_keep(rk_wcache *c)
{
    c->nundo = 0;
    c->undo_used = 0;
}

void rk_wcache_undo(rk_wcache *c)
{
    while (c->nundo > 0) {
        const undo_rec *u = &c->undo[--c->nundo];
        if (u->kind == U_ADDED) {
            release_entry(c, u->slot);
            continue;
        }
        entry *x = &c->e[u->slot];
        /* the old image fits its old class; only a grown record changed class */
        if (ensure_room(c, x, u->len, false) == 0) {
            memcpy(x->val, c->undo_buf + u->off, u->len);
            x->len = u->len;
            set_flags(c, u->slot, u->flags);
            x->first_seq = u->first_seq;
            x->ver = u->ver;
        } else { /* out of memory: forgetting is only safe for a clean record */
            release_entry(c, u->slot);
        }
    }
    c->undo_used = 0;
}

void rk_wcache_prefetch(const rk_wcache *c, int db, const void *key, size_t klen, int stage)
{
    if (klen > RK_WC_KEY_MAX)
        return;
    uint64_t h = hash_key(db, key, klen);
    const uint64_t *cell = &c->idx[(uint32_t)h & c->mask];
    if (stage == 0) {
        __builtin_prefetch(cell);
        return;
    }
    if (*cell == 0 || (uint32_t)(*cell >> 32) != (uint32_t)h)
        return; /* absent, or further along the run: not worth chasing */
    const entry *x = &c->e[(uint32_t)*cell - 1];
    if (stage == 1) {
        __builtin_prefetch(x);
        return;
    }
    for (uint32_t off = 0; x->val && off < x->len && off < 1024; off += 64)
        __builtin_prefetch(x->val + off);
}

int rk_wcache_get(rk_wcache *c, int db, const void *key, size_t klen, const uint8_t **val,
                  size_t *len)
{
    if (klen > RK_WC_KEY_MAX)
        return RK_ENOTFOUND;
    uint64_t h = hash_key(db, key, klen);
    uint32_t s = (uint32_t)c->idx[probe(c, h, db, key, klen)];
    if (s == 0)
        return RK_ENOTFOUND;
    entry *x = &c->e[s - 1];
    x->gen = c->gen;
    c->last = s;
    *val = x->val;
    *len = x->len;
    return 0;
}

int rk_wcache_load(rk_wcache *c, int db, const void *key, size_t klen, const void *val,
                   size_t len, const uint8_t **cval)
{
    if (klen > RK_WC_KEY_MAX || len > UINT32_MAX)
        return RK_EFULL;
    uint64_t h = hash_key(db, key, klen);
    uint32_t i = probe(c, h, db, key, klen), s;
    if (c->idx[i] != 0)
        return RK_EINVAL; /* already cached: the caller should have used it */
    int rc = add_entry(c, h, db, key, klen, len, &s);
    if (rc != 0)
        return rc == RK_ENOMEM || rc == RK_ETOOBIG ? RK_EFULL : rc;
    entry *x = &c->e[s];
    memcpy(x->val, val, len);
    x->len = (uint32_t)len;
    set_flags(c, s, F_USED | F_IN_DB);
    c->last = s + 1;
    *cval = x->val;
    return 0;
}

int rk_wcache_put(rk_wcache *c, int db, const void *key, size_t klen, const void *val,
                  size_t len, uint64_t seq)
{
    if (klen > RK_WC_KEY_MAX || len > UINT32_MAX)
        return RK_EFULL;
    uint32_t s = NIL;
    int rc;
    const entry *l = c->last ? &c->e[c->last - 1] : NULL;
    if (l && (l->flags & F_USED) && l->db == db && l->klen == klen &&
        key_eq(l->key, key, klen))
        s = c->last - 1; /* the usual get-then-put: no second probe */
    else {
        uint64_t h = hash_key(db, key, klen);
        uint32_t cell = (uint32_t)c->idx[probe(c, h, db, key, klen)];
        if (cell != 0) {
            s = cell - 1;
        } else {
            if ((rc = add_entry(c, h, db, key, klen, len, &s)) != 0)
                return rc == RK_ENOMEM || rc == RK_ETOOBIG ? RK_EFULL : rc;
            set_flags(c, s, F_USED);
        }
    }
    entry *x = &c->e[s];
    if (x->ugen != c->gen) { /* its first change in this request: keep the old image */
        if ((rc = undo_push(c, s, U_CHANGED)) != 0)
            return rc;
    }
    bool own = val == x->val; /* the caller passed the record's own buffer back */
    if ((rc = ensure_room(c, x, len, own)) != 0)
        return RK_ENOMEM; /* never RK_EFULL here: the cache holds this record, it must
                             take the change (RK_ETOOBIG cannot happen: values are far
                             below 2 MiB) */
    x->gen = x->ugen = c->gen;
    if (!own)
        memcpy(x->val, val, len);
    x->len = (uint32_t)len;
    x->ver = ++c->ver_clock;
    if (!(x->flags & F_DIRTY)) {
        x->first_seq = seq;
        set_flags(c, s, x->flags | F_DIRTY);
    }
    return 0;
}

bool rk_wcache_forget_clean(rk_wcache *c, int db, const void *key, size_t klen)
{
    if (klen > RK_WC_KEY_MAX)
        return true;
    uint32_t s = (uint32_t)c->idx[probe(c, hash_key(db, key, klen), db, key, klen)];
    if (s == 0)
        return true;
    if (c->e[s - 1].flags & F_DIRTY)
        return false;
    release_entry(c, s - 1);
    return true;
}

int rk_wcache_dirty_head(rk_wcache *c, rk_wc_dirty *out, int n)
{
    int k = 0;
    for (uint32_t s = c->dhead; s != NIL && k < n; s = c->e[s].next, k++) {
        const entry *x = &c->e[s];
        out[k] = (rk_wc_dirty){{s, x->ver}, x->db, x->key, x->klen, x->val, x->len};
    }
    return k;
}

uint64_t rk_wcache_needed_seq(const rk_wcache *c, int skip, uint64_t none_seq)
{
    uint32_t s = c->dhead;
    for (int k = 0; s != NIL && k < skip; k++)
        s = c->e[s].next;
    return s == NIL ? none_seq : c->e[s].first_seq;
}

/* Puts slot s back into the FIFO in first_seq order, searching from the
 * tail: it goes behind the records dirtied before seq, which are all that
 * precede the few dirtied since. */
static void fifo_insert_sorted(rk_wcache *c, uint32_t s)
{
    entry *x = &c->e[s];
    uint32_t after = c->dtail;
    while (after != NIL && c->e[after].first_seq > x->first_seq)
        after = c->e[after].prev;
    x->prev = after;
    x->next = after == NIL ? c->dhead : c->e[after].next;
    if (after == NIL)
        c->dhead = s;
    else
        c->e[after].next = s;
    if (x->next == NIL)
        c->dtail = s;
    else
        c->e[x->next].prev = s;
    c->ndirty++;
}

void rk_wcache_mark_written(rk_wcache *c, const rk_wc_image *img, int n, uint64_t seq)
{
    for (int i = 0; i < n; i++) {
        uint32_t s = img[i].slot;
        entry *x = &c->e[s];
        if ((x->flags & (F_USED | F_DIRTY)) != (F_USED | F_DIRTY))
            continue; /* cannot happen: only the writer of the image cleans it */
        if (x->ver == img[i].ver) {
            set_flags(c, s, (uint8_t)((x->flags & ~F_DIRTY) | F_IN_DB));
            continue;
        }
        /* changed since the image was taken: its changes from seq on are not
         * in the database yet, the earlier ones are */
        if (!(x->flags & F_IN_DB))
            set_flags(c, s, x->flags | F_IN_DB);
        if (x->first_seq < seq) {
            fifo_unlink(c, s);
            x->first_seq = seq;
            fifo_insert_sorted(c, s);
        }
    }
}

bool rk_wcache_prefault(rk_wcache *c)
{
    for (int i = 0; i < SPARES; i++) {
        if (atomic_load(&c->spare[i]))
            continue;
        slab *s = big_alloc(SLAB_BYTES, false);
        if (!s)
            return false;
        /* Private until published: writing it faults it in page by page,
         * under the new mapping's own lock (MADV_POPULATE_WRITE would hold
         * the process's mmap lock for the whole slab, and a request thread
         * growing its malloc arena would wait for it). */
        memset(s, 0, SLAB_BYTES);
        atomic_store(&c->spare[i], s);
        return true;
    }
    size_t iw = atomic_load_explicit(&c->idx_want, memory_order_relaxed);
    if (iw && atomic_compare_exchange_strong(&c->idx_want, &iw, 0)) {
        uint64_t *t = spare_take_sized(c, iw);
        if (!t && (t = big_alloc(iw, false)) != NULL)
            memset(t, 0, iw); /* private until published, as a slab */
        if (!t)
            return false;
        atomic_store(&c->spare_idx, spare_pack(t, iw));
        return true;
    }
    /* The pool is shared with the user: populating faults pages in without
     * writing them, so it is safe while entries are being used. */
    size_t want = atomic_load_explicit(&c->pool_want, memory_order_relaxed);
    /* whole steps only: madvise wants a page-aligned start, and the next
     * call starts where this one ended (an entry-sized want had left it
     * unaligned, the kernel refused, and the rest of the pool faulted in
     * the replay thread) */
    want = (want + POOL_STEP - 1) / POOL_STEP * POOL_STEP;
    if (want > c->e_bytes)
        want = c->e_bytes;
    size_t done = atomic_load_explicit(&c->pool_done, memory_order_relaxed);
    if (done >= want)
        return false;
    size_t n = want - done < POOL_STEP ? want - done : POOL_STEP;
    if (madvise((uint8_t *)c->e + done, n, MADV_POPULATE_WRITE) != 0)
        done = c->e_bytes; /* refused (before Linux 5.14): faults as it goes */
    else
        done += n;
    atomic_store_explicit(&c->pool_done, done, memory_order_relaxed);
    return true;
}

bool rk_wcache_prefault_wanted(rk_wcache *c)
{
    /* asked after every commit: a plain load first, the locked exchange
     * only when there is something to take */
    return atomic_load_explicit(&c->pf_wanted, memory_order_relaxed) &&
           atomic_exchange(&c->pf_wanted, false);
}

void rk_wcache_stats_get(const rk_wcache *c, rk_wcache_stats *out)
{
    memset(out, 0, sizeof *out);
    out->records = c->used;
    out->dirty = c->ndirty;
    for (int d = 0; d < RK_WC_DBS; d++)
        out->pending_new[d] = c->pending_new[d];
    out->evictions = c->evictions;
    out->full = c->full;
    out->pool_used = (uint64_t)c->fresh * sizeof *c->e;
    out->pool_ready = atomic_load_explicit(&c->pool_done, memory_order_relaxed);
}
