/* The write-back record cache: the newest image of hot counter and decided
 * records, kept in memory so that a request reads and writes them without
 * descending LMDB's B-trees. Internal to src/state (and its tests).
 *
 * The store keeps the cache and the database consistent under its write
 * lock (one user at a time, no locking here): a record that is cached is
 * authoritative in the cache; one that is not is authoritative in LMDB. A
 * record changed in the cache is dirty until the checkpointer has written it
 * to its database; the write-ahead log (wal.c) covers it in the
 * meantime. Only clean records are evicted, so eviction never loses a change.
 *
 * Requests. Between rk_wcache_begin and rk_wcache_keep (or rk_wcache_undo),
 * every record the request touches is pinned (never evicted, so value
 * pointers stay valid) and its first change is saved, so that an aborted
 * transaction leaves the cache as it found it.
 *
 * Dirty records form a FIFO ordered by the WAL sequence of their first
 * unflushed change (the order they became dirty, mostly), so the head's
 * sequence is the oldest log entry still needed. Each put gives the record a
 * new image version, so a checkpointer that writes a copy of an image
 * outside the store's lock can tell afterwards whether the record changed
 * meanwhile (rk_wcache_mark_written). Values live in size-class buffers recycled
 * through free lists: after warm-up nothing is allocated per request. */
#ifndef RK_STATE_WCACHE_H
#define RK_STATE_WCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RK_WC_KEY_MAX 32      /* longest key (counter keys are 24 bytes, decided ones 16) */
#define RK_WC_DBS 2           /* databases cached: indexes given by the store */

typedef struct rk_wcache rk_wcache;

/* Which image of a record a writer took: its entry and the image's version
 * (for rk_wcache_mark_written). */
typedef struct rk_wc_image {
    uint32_t slot;
    uint64_t ver;
} rk_wc_image;

/* A dirty record handed to the checkpointer; valid until the next change to
 * the cache. */
typedef struct rk_wc_dirty {
    rk_wc_image img;          /* what to tell rk_wcache_mark_written once it is written */
    int db;                   /* database index */
    const uint8_t *key;       /* key bytes */
    size_t klen;
    const uint8_t *val;       /* newest image */
    size_t len;
} rk_wc_dirty;

/* A cache of at most capacity records (at least 64). With resident (a live
 * store's cache), its pool and table are touched now and the table is sized
 * for the capacity at once, so it never rehashes on a request's path;
 * without, memory is touched as it is first used and the table starts small
 * and doubles (a backtest's cache of millions keeps a small, cache-friendly
 * table while it holds few records). RK_ENOMEM. */
int rk_wcache_new(size_t capacity, bool resident, rk_wcache **out);
void rk_wcache_free(rk_wcache *c);

/* Request boundaries, see above. rk_wcache_undo restores every record the
 * request changed or loaded to its state at rk_wcache_begin. */
void rk_wcache_begin(rk_wcache *c);
void rk_wcache_keep(rk_wcache *c);
void rk_wcache_undo(rk_wcache *c);

/* Looks a record up (and pins it). 0 with *val and *len set (valid until the
 * record is written), or RK_ENOTFOUND: not cached, ask the database. */
int rk_wcache_get(rk_wcache *c, int db, const void *key, size_t klen, const uint8_t **val,
                  size_t *len);

/* Starts loading what a lookup of (db, key) will read, in stages: stage 0
 * the table cell, 1 the entry (reads the cell), 2 the value's first KiB
 * (reads the entry: an account's counter record is 1-1.5 KiB, read whole;
 * 1 KiB instead of 256 bytes measured a backtest ~6% faster). A request that is about to look up several records
 * runs stage 0 for all, then 1, then 2, so their cache misses overlap
 * instead of following one another. Changes nothing. */
void rk_wcache_prefetch(const rk_wcache *c, int db, const void *key, size_t klen, int stage);

/* Caches a clean copy of what the database holds for a key that was not
 * cached, pinned, and points *cval at the copy. 0, or RK_EFULL when no clean
 * record can be evicted (the caller then works on the database directly). */
int rk_wcache_load(rk_wcache *c, int db, const void *key, size_t klen, const void *val,
                   size_t len, const uint8_t **cval);

/* Writes a record's new image: it becomes dirty (first change seq when it was
 * clean) and moves to the FIFO's tail only then. A key not cached is added,
 * as not yet in the database. 0, or RK_EFULL as rk_wcache_load. */
int rk_wcache_put(rk_wcache *c, int db, const void *key, size_t klen, const void *val,
                  size_t len, uint64_t seq);

/* For the sweeper, about to drop or rewrite a database record: forgets the
 * cached copy if it is clean and returns true; returns false (keep the
 * database record: the cache holds newer changes) if it is dirty. */
bool rk_wcache_forget_clean(rk_wcache *c, int db, const void *key, size_t klen);

/* Up to n dirty records from the FIFO's head into out; returns how many. */
int rk_wcache_dirty_head(rk_wcache *c, rk_wc_dirty *out, int n);
/* The first change sequence of the (skip+1)-th dirty record, or none_seq
 * when there are not that many: the oldest log entry still needed once the
 * first skip records are flushed. */
uint64_t rk_wcache_needed_seq(const rk_wcache *c, int skip, uint64_t none_seq);
/* Records that the n images img (from rk_wcache_dirty_head) are now in their
 * databases. A record still holding that image becomes clean. One changed
 * since (a request ran while the images were being written) stays dirty;
 * its first change sequence becomes seq, the log sequence when the images
 * were taken (every later change has at least that sequence; the earlier
 * ones are in the image written), and it moves to its place in the FIFO,
 * behind the records dirtied before seq. Only the writer of an image makes
 * it clean, so the records are still dirty and cached when this runs. */
void rk_wcache_mark_written(rk_wcache *c, const rk_wc_image *img, int n, uint64_t seq);

/* Memory made resident ahead of use. The first write to fresh memory costs
 * the kernel a page clear, 2 MiB at a time with transparent huge pages: about
 * 5 ms on a virtual machine whose host backs guest memory lazily. A warming
 * live cache needed a new value slab or pool page every few hundred requests
 * (most of riskd's open-loop p99 at 5,000 req/s), and a backtest spent 10-15%
 * of its time clearing pages.
 *
 * rk_wcache_prefault keeps a few populated value slabs waiting and, in a
 * cache not made resident, the entry pool populated a few MiB beyond the
 * last entry used and the next, doubled index table ready before the index
 * is half full: it does one step of that (true) or finds there is nothing
 * to do (false). It takes no lock and may run in another thread while the
 * cache's user works (spare slabs pass through atomic slots; populating the
 * pool faults its pages in without writing them); one prefaulting thread at
 * a time.
 *
 * rk_wcache_prefault_wanted returns true once after the cache's user took a
 * spare slab, went further into its pool or filled 3/8 of its index: the
 * prefaulting thread has work. */
bool rk_wcache_prefault(rk_wcache *c);
bool rk_wcache_prefault_wanted(rk_wcache *c);

typedef struct rk_wcache_stats {
    uint64_t records;         /* cached */
    uint64_t dirty;           /* of which not yet in their database */
    uint64_t pending_new[RK_WC_DBS]; /* cached records their database does not hold yet */
    uint64_t evictions;       /* clean records dropped for room */
    uint64_t full;            /* loads and puts refused for want of a clean record */
    uint64_t pool_used;       /* bytes of the entry pool handed out so far */
    uint64_t pool_ready;      /* bytes of it resident: made so ahead of use, or all at open */
} rk_wcache_stats;

void rk_wcache_stats_get(const rk_wcache *c, rk_wcache_stats *out);

#endif
