/* Statistics counters and their rendering as the admin `stats` map.
 *
 * Every counter is an atomic bumped with relaxed ordering: they are
 * independent tallies, nothing synchronises through them, and a relaxed
 * increment is the cheapest thing a worker can do on the hot path. The last
 * reload error (text and wall time) sits behind a mutex because it is a string;
 * only reloads write it and only the admin thread reads it. The keys packed by
 * rk_stats_pack are documented in docs/config.md; change both together. */
#include "engine/stats.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"

struct rk_stats {
    int64_t started_ns;                              /* rk_clock_ns at creation, for uptime */
    atomic_uint_fast64_t requests;                   /* messages through the pipeline */
    atomic_uint_fast64_t decisions[RK_VERDICT__COUNT]; /* score replies by verdict */
    atomic_uint_fast64_t degraded;                   /* of which fallback decisions */
    atomic_uint_fast64_t replayed;                   /* retries answered from the store */
    atomic_uint_fast64_t errors[RK_WERR__COUNT];     /* error replies by wire code */
    atomic_uint_fast64_t arith_errors;               /* evaluator division/overflow results */
    atomic_int_fast64_t inflight;                    /* received by the server, not yet answered */
    atomic_int workers;                              /* scoring threads */
    atomic_uint_fast64_t reloads_ok;                 /* successful reloads since start */
    atomic_uint_fast64_t reloads_failed;             /* failed reloads since start */
    pthread_mutex_t lock;                            /* guards the fields below */
    char last_error[1024];                           /* last failed reload's diagnostic; "" when none */
    int64_t last_error_ms;                           /* its wall time, ms since the epoch; 0 when none */
    int64_t last_ok_ms;                              /* last successful reload, wall ms; 0 when none */
};

rk_stats *rk_stats_new(void)
{
    rk_stats *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->started_ns = rk_clock_ns();
    pthread_mutex_init(&st->lock, NULL);
    return st;
}

void rk_stats_free(rk_stats *st)
{
    if (!st)
        return;
    pthread_mutex_destroy(&st->lock);
    free(st);
}

static inline void bump(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t get(const atomic_uint_fast64_t *c)
{
    return atomic_load_explicit((atomic_uint_fast64_t *)c, memory_order_relaxed);
}

void rk_stats_count_request(rk_stats *st)
{
    bump(&st->requests, 1);
}

void rk_stats_count_decision(rk_stats *st, rk_verdict v, bool degraded)
{
    if ((unsigned)v < RK_VERDICT__COUNT)
        bump(&st->decisions[v], 1);
    if (degraded)
        bump(&st->degraded, 1);
}

void rk_stats_count_replayed(rk_stats *st)
{
    bump(&st->replayed, 1);
}

void rk_stats_count_error(rk_stats *st, rk_wire_err code)
{
    if ((unsigned)code < RK_WERR__COUNT)
        bump(&st->errors[code], 1);
}

void rk_stats_add_arith_errors(rk_stats *st, uint64_t n)
{
    bump(&st->arith_errors, n);
}

void rk_stats_add_inflight(rk_stats *st, int64_t delta)
{
    atomic_fetch_add_explicit(&st->inflight, delta, memory_order_relaxed);
}

void rk_stats_set_workers(rk_stats *st, int n)
{
    atomic_store_explicit(&st->workers, n, memory_order_relaxed);
}

void rk_stats_reload_ok(rk_stats *st)
{
    bump(&st->reloads_ok, 1);
    pthread_mutex_lock(&st->lock);
    st->last_ok_ms = rk_clock_wall_ms();
    pthread_mutex_unlock(&st->lock);
}

void rk_stats_reload_failed(rk_stats *st, const char *msg)
{
    bump(&st->reloads_failed, 1);
    pthread_mutex_lock(&st->lock);
    snprintf(st->last_error, sizeof st->last_error, "%s", msg);
    st->last_error_ms = rk_clock_wall_ms();
    pthread_mutex_unlock(&st->lock);
}

uint64_t rk_stats_requests(const rk_stats *st)
{
    return get(&st->requests);
}

uint64_t rk_stats_replayed(const rk_stats *st)
{
    return get(&st->replayed);
}

uint64_t rk_stats_degraded(const rk_stats *st)
{
    return get(&st->degraded);
}

uint64_t rk_stats_errors(const rk_stats *st, rk_wire_err code)
{
    return (unsigned)code < RK_WERR__COUNT ? get(&st->errors[code]) : 0;
}

uint64_t rk_stats_reloads_failed(const rk_stats *st)
{
    return get(&st->reloads_failed);
}

int64_t rk_stats_inflight(const rk_stats *st)
{
    return atomic_load_explicit((atomic_int_fast64_t *)&st->inflight, memory_order_relaxed);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t v)
{
    pack_cstr(pk, key);
    msgpack_pack_uint64(pk, v);
}

/* One map of rule id -> hits, for the live (shadow == false) or shadow rules. */
static void pack_hits(msgpack_packer *pk, const rk_snapshot *snap, bool shadow)
{
    const rk_ruleset *rs = rk_snapshot_ruleset(snap);
    int n = rk_ruleset_nrules(rs), count = 0;
    for (int i = 0; i < n; i++)
        count += rk_ruleset_rule_shadow(rs, i) == shadow;
    msgpack_pack_map(pk, (size_t)count);
    for (int i = 0; i < n; i++)
        if (rk_ruleset_rule_shadow(rs, i) == shadow)
            pack_kv_u64(pk, rk_ruleset_rule_id(rs, i), rk_snapshot_hits(snap, i));
}

/* The store section: the same names as rk_store_stats (docs/operations.md). */
static void pack_store(msgpack_packer *pk, const rk_store_stats *s)
{
    if (!s) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_map(pk, 26);
    pack_cstr(pk, "durability");
    pack_cstr(pk, rk_durability_name(s->durability));
    pack_kv_u64(pk, "file_bytes", s->file_bytes);
    pack_kv_u64(pk, "map_bytes", s->map_bytes);
    pack_kv_u64(pk, "used_bytes", s->used_bytes);
    pack_kv_u64(pk, "entries_counters", s->entries_counters);
    pack_kv_u64(pk, "entries_lists", s->entries_lists);
    pack_kv_u64(pk, "entries_recent", s->entries_recent);
    pack_kv_u64(pk, "entries_meta", s->entries_meta);
    pack_kv_u64(pk, "commits", s->commits);
    pack_kv_u64(pk, "aborts", s->aborts);
    pack_kv_u64(pk, "syncs", s->syncs);
    pack_kv_u64(pk, "durable_commits", s->durable_commits);
    pack_kv_u64(pk, "map_growths", s->map_growths);
    pack_kv_u64(pk, "txn_replays", s->txn_replays);
    pack_kv_u64(pk, "sweeps", s->sweeps);
    pack_kv_u64(pk, "swept_counters", s->swept_counters);
    pack_kv_u64(pk, "swept_lists", s->swept_lists);
    pack_kv_u64(pk, "swept_recent", s->swept_recent);
    pack_kv_u64(pk, "store_errors", s->store_errors);
    pack_kv_u64(pk, "cache_records", s->cache_records);
    pack_kv_u64(pk, "cache_dirty", s->cache_dirty);
    pack_kv_u64(pk, "cache_evictions", s->cache_evictions);
    pack_kv_u64(pk, "wal_entries", s->wal_entries);
    pack_kv_u64(pk, "wal_bytes", s->wal_bytes);
    pack_kv_u64(pk, "checkpoints", s->checkpoints);
    pack_kv_u64(pk, "page_size", s->page_size);
}

/* The decision_log section: the names of rk_declog_stats (docs/config.md). */
static void pack_declog(msgpack_packer *pk, const rk_declog_stats *d)
{
    if (!d) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_map(pk, 7);
    pack_kv_u64(pk, "written", d->written);
    pack_kv_u64(pk, "dropped", d->dropped);
    pack_kv_u64(pk, "bytes", d->bytes);
    pack_kv_u64(pk, "files", d->files);
    pack_kv_u64(pk, "rotations", d->rotations);
    pack_kv_u64(pk, "queue_depth", d->queue_depth);
    pack_kv_u64(pk, "errors", d->errors);
}

int rk_stats_pack(rk_stats *st, const rk_snapshot *snap, const rk_store_stats *store,
                  const rk_declog_stats *declog, msgpack_packer *pk)
{
    char last_error[sizeof st->last_error];
    int64_t last_error_ms, last_ok_ms;
    pthread_mutex_lock(&st->lock);
    memcpy(last_error, st->last_error, sizeof last_error);
    last_error_ms = st->last_error_ms;
    last_ok_ms = st->last_ok_ms;
    pthread_mutex_unlock(&st->lock);

    msgpack_pack_map(pk, 15);
    pack_cstr(pk, "ruleset");
    pack_cstr(pk, rk_snapshot_label(snap));
    pack_kv_u64(pk, "uptime_s", (uint64_t)((rk_clock_ns() - st->started_ns) / 1000000000));
    pack_cstr(pk, "workers");
    msgpack_pack_int(pk, atomic_load_explicit(&st->workers, memory_order_relaxed));
    pack_cstr(pk, "inflight");
    msgpack_pack_int64(pk, rk_stats_inflight(st));
    pack_kv_u64(pk, "requests", get(&st->requests));

    pack_cstr(pk, "decisions");
    msgpack_pack_map(pk, RK_VERDICT__COUNT);
    for (int v = 0; v < RK_VERDICT__COUNT; v++)
        pack_kv_u64(pk, rk_verdict_name((rk_verdict)v), get(&st->decisions[v]));
    pack_kv_u64(pk, "degraded", get(&st->degraded));
    pack_kv_u64(pk, "replayed", get(&st->replayed));

    pack_cstr(pk, "errors");
    msgpack_pack_map(pk, RK_WERR__COUNT - 1);
    for (int c = RK_WERR_NONE + 1; c < RK_WERR__COUNT; c++)
        pack_kv_u64(pk, rk_wire_err_name((rk_wire_err)c), get(&st->errors[c]));
    pack_kv_u64(pk, "arith_errors", get(&st->arith_errors));

    pack_cstr(pk, "reloads");
    msgpack_pack_map(pk, 5);
    pack_kv_u64(pk, "ok", get(&st->reloads_ok));
    pack_kv_u64(pk, "failed", get(&st->reloads_failed));
    pack_cstr(pk, "last_ok_ms");
    if (last_ok_ms)
        msgpack_pack_int64(pk, last_ok_ms);
    else
        msgpack_pack_nil(pk);
    pack_cstr(pk, "last_error");
    if (last_error[0])
        pack_cstr(pk, last_error);
    else
        msgpack_pack_nil(pk);
    pack_cstr(pk, "last_error_ms");
    if (last_error_ms)
        msgpack_pack_int64(pk, last_error_ms);
    else
        msgpack_pack_nil(pk);

    pack_cstr(pk, "store");
    pack_store(pk, store);
    pack_cstr(pk, "decision_log");
    pack_declog(pk, declog);

    pack_cstr(pk, "rules");
    pack_hits(pk, snap, false);
    pack_cstr(pk, "shadow_rules");
    pack_hits(pk, snap, true);
    return 0;
}
