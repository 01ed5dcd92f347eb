/* The engine object: configuration, the state store, the published snapshot
 * and statistics.
 *
 * Loading happens here and only here, in rk_engine_open and rk_engine_reload,
 * both off the hot path. A reload compiles the new rule set without holding
 * any lock the workers use, then publishes it through the snapshot cell (a
 * pointer swap under a mutex workers touch once per reload). A failed reload
 * changes nothing but the counters and the remembered error. The reload mutex
 * only keeps two reloads (SIGHUP and the admin op, say) from interleaving their
 * logs and counters.
 *
 * The store is opened after the first rule set has loaded (a typo in the rules
 * is reported without touching the data directory) and closed after every
 * worker is gone. Counter definitions live in the rule set (its
 * rk_counters), so a reload swaps them together with the rules: a counter
 * whose definition changed has a new identity hash and starts from zero,
 * one that did not change keeps reading the same records.
 *
 * The decision log, when enabled, opens last (it keys its pseudonyms with the
 * installation secret the store creates) and closes first, after every worker
 * is gone, so everything the workers queued is written before the store
 * closes and the process exits. */
#include "engine/engine.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "proto/proto.h"
#include "rules/ruleset.h"

struct rk_engine {
    char *rules_path;          /* owned copy of the configured rule file path */
    rk_store *store;           /* the state store; owned */
    rk_declog *declog;         /* the decision log; owned; NULL when disabled */
    int64_t (*clock_ms)(void); /* wall clock for the store's TTLs */
    size_t max_body;           /* request body limit, bytes */
    rk_verdict fallback;       /* degraded decision */
    rk_snapshot_cell *cell;    /* the published snapshot */
    rk_stats *stats;           /* owned */
    pthread_mutex_t reload_lock; /* serialises rk_engine_reload */
};

static int load_snapshot(const char *path, rk_snapshot **out, rk_diag *diag)
{
    rk_ruleset *rs = NULL;
    int rc = rk_ruleset_load(path, &rs, diag);
    if (rc < 0)
        return rc;
    rc = rk_snapshot_new(rs, out);
    if (rc < 0)
        rk_diag_set(diag, path, 0, 0, "%s", rk_strerror(rc));
    return rc;
}

void rk_engine_config_default(rk_engine_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_body = RK_MAX_BODY_DEFAULT;
    c->fallback = RK_REVIEW;
    rk_store_config_default(&c->store);
    rk_declog_config_default(&c->declog);
}

/* The decision log in cfg's data directory (or where cfg->declog.dir says). */
static int open_declog(const rk_engine_config *cfg, rk_declog **out, rk_diag *diag)
{
    char dir[PATH_MAX];
    rk_declog_config dc = cfg->declog;
    if (!dc.dir) {
        size_t n = strlen(cfg->store.dir);
        while (n > 1 && cfg->store.dir[n - 1] == '/')
            n--;
        if ((size_t)snprintf(dir, sizeof dir, "%.*s/%s", (int)n, cfg->store.dir, RK_DECLOG_DIR) >=
            sizeof dir) {
            rk_diag_set(diag, cfg->store.dir, 0, 0, "data directory path too long");
            return RK_EINVAL;
        }
        dc.dir = dir;
    }
    int rc = rk_declog_open(&dc, cfg->store.dir, out);
    if (rc < 0)
        rk_diag_set(diag, dc.dir, 0, 0, "cannot open the decision log: %s%s", rk_strerror(rc),
                    rc == RK_ENOMEM ? "" : " (the log says why)");
    return rc;
}

int rk_engine_open(const rk_engine_config *cfg, rk_engine **out, rk_diag *diag)
{
    rk_diag_clear(diag);
    if (!cfg || !cfg->rules_path) {
        rk_diag_set(diag, NULL, 0, 0, "no rule file configured");
        return RK_EINVAL;
    }
    if (!cfg->store.dir || !cfg->store.dir[0]) {
        rk_diag_set(diag, NULL, 0, 0, "no data directory configured");
        return RK_EINVAL;
    }
    rk_engine *e = calloc(1, sizeof *e);
    if (e)
        pthread_mutex_init(&e->reload_lock, NULL);
    if (!e || !(e->rules_path = strdup(cfg->rules_path)) || !(e->stats = rk_stats_new())) {
        rk_engine_close(e);
        rk_diag_set(diag, cfg->rules_path, 0, 0, "%s", rk_strerror(RK_ENOMEM));
        return RK_ENOMEM;
    }
    e->max_body = cfg->max_body ? cfg->max_body : RK_MAX_BODY_DEFAULT;
    e->fallback = cfg->fallback;
    e->clock_ms = cfg->clock_ms ? cfg->clock_ms : rk_clock_wall_ms;

    /* The rule set first: a typo in it is reported before the data directory
     * is touched. */
    rk_snapshot *first = NULL;
    int rc = load_snapshot(e->rules_path, &first, diag);
    if (rc == 0) {
        rc = rk_snapshot_cell_new(first, &e->cell);
        if (rc < 0) {
            rk_snapshot_release(first);
            rk_diag_set(diag, e->rules_path, 0, 0, "%s", rk_strerror(rc));
        }
    }
    if (rc == 0 && (rc = rk_store_open(&cfg->store, &e->store)) < 0)
        rk_diag_set(diag, cfg->store.dir, 0, 0, "cannot open the state store: %s%s",
                    rk_strerror(rc), rc == RK_ENOMEM ? "" : " (the log says why)");
    if (rc == 0 && cfg->declog.enabled)
        rc = open_declog(cfg, &e->declog, diag);
    if (rc < 0) {
        rk_engine_close(e);
        return rc;
    }
    *out = e;
    return 0;
}

void rk_engine_close(rk_engine *e)
{
    if (!e)
        return;
    rk_declog_close(e->declog);
    rk_snapshot_cell_free(e->cell);
    rk_store_close(e->store);
    rk_stats_free(e->stats);
    pthread_mutex_destroy(&e->reload_lock);
    free(e->rules_path);
    free(e);
}

int rk_engine_reload(rk_engine *e, rk_diag *diag)
{
    rk_diag local;
    if (!diag)
        diag = &local;
    rk_diag_clear(diag);
    pthread_mutex_lock(&e->reload_lock);
    rk_snapshot *next = NULL;
    int rc = load_snapshot(e->rules_path, &next, diag);
    if (rc < 0) {
        char text[sizeof diag->file + sizeof diag->msg + 32];
        rk_diag_format(diag, text, sizeof text);
        rk_stats_reload_failed(e->stats, text);
        rk_log_error("reload failed, still serving the previous rule set: %s", text);
    } else {
        char before[256];
        rk_engine_label(e, before, sizeof before);
        /* `before` is copied: publishing drops the cell's reference to the old
         * snapshot. `after` stays valid, the cell holds the new one. */
        const char *after = rk_snapshot_label(next);
        rk_log_info("reload ok: ruleset %s (was %s)", after, before);
        rk_snapshot_cell_publish(e->cell, next);
        rk_stats_reload_ok(e->stats);
    }
    pthread_mutex_unlock(&e->reload_lock);
    return rc;
}

void rk_engine_label(rk_engine *e, char *buf, size_t size)
{
    rk_snapshot *s = rk_snapshot_cell_acquire(e->cell);
    snprintf(buf, size, "%s", rk_snapshot_label(s));
    rk_snapshot_release(s);
}

rk_stats *rk_engine_stats(rk_engine *e)
{
    return e->stats;
}

rk_snapshot_cell *rk_engine_snapshots(rk_engine *e)
{
    return e->cell;
}

size_t rk_engine_max_body(const rk_engine *e)
{
    return e->max_body;
}

rk_verdict rk_engine_fallback(const rk_engine *e)
{
    return e->fallback;
}

rk_store *rk_engine_store(rk_engine *e)
{
    return e->store;
}

rk_declog *rk_engine_declog(rk_engine *e)
{
    return e->declog;
}

int64_t rk_engine_now_ms(const rk_engine *e)
{
    return e->clock_ms();
}
