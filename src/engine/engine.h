/* The engine: the state store, the loaded rule set (as a snapshot), reloads
 * and statistics.
 *
 * One rk_engine serves a whole process; it is an object passed to whoever
 * needs it (server threads, tests, riskctl), never a global. Scoring goes
 * through per-thread rk_worker scratch (pipeline.h). rk_engine_reload may run
 * concurrently with scoring from any thread; reloads are serialised among
 * themselves. */
#ifndef RK_ENGINE_H
#define RK_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/declog.h"
#include "engine/snapshot.h"
#include "engine/stats.h"
#include "lib/diag.h"
#include "rules/decision.h"
#include "state/store.h"

typedef struct rk_engine rk_engine;
typedef struct rk_worker rk_worker;

typedef struct rk_engine_config {
    const char *rules_path; /* rule file; copied, re-read on every reload */
    size_t max_body;        /* largest request body in bytes; 0: RK_MAX_BODY_DEFAULT */
    rk_verdict fallback;    /* decision answered with "degraded": true after an internal failure */
    rk_store_config store;  /* the state store; store.dir (the data directory) is required */
    int64_t (*clock_ms)(void); /* wall clock for list expiry and the retry window; NULL:
                                  rk_clock_wall_ms (tests inject their own time) */
    rk_declog_config declog;   /* the decision log; off by default (riskd turns it on),
                                  declog.dir NULL: <store.dir>/decisions */
} rk_engine_config;

/* Fills c with the defaults: no rule file, the default body limit, fallback
 * review, rk_store_config_default for the store (dir = NULL) and
 * rk_declog_config_default for the decision log (disabled). */
void rk_engine_config_default(rk_engine_config *c);

/* Loads and compiles the rule set, then opens the state store in
 * cfg->store.dir (creating it on first start). Returns 0 and sets *out, or the loader's
 * negative code with diag set (`file:line:col: message`), or the store's
 * (RK_EINVAL, RK_ECORRUPT, RK_EIO, RK_ESTORE; diag names the data directory,
 * the log has the detail), then the decision log when enabled (its
 * rk_declog_open error; diag names its directory), or RK_ENOMEM. */
int rk_engine_open(const rk_engine_config *cfg, rk_engine **out, rk_diag *diag);
/* Closes the decision log (writing everything queued) and the store
 * (flushing it) and frees the engine. Every worker must have been freed
 * first. e may be NULL. */
void rk_engine_close(rk_engine *e);

/* Loads and compiles the rule file again, off the hot path, and swaps it in
 * atomically: requests already running finish on the old snapshot. On failure
 * the old rule set keeps serving, reloads.failed is counted, the diagnostic is
 * kept for stats and logged, and the loader's negative code is returned with
 * diag set (diag may be NULL). Returns 0 on success. */
int rk_engine_reload(rk_engine *e, rk_diag *diag);

/* Copies "name@version" of the current rule set into buf (NUL-terminated). */
void rk_engine_label(rk_engine *e, char *buf, size_t size);

/* Accessors for the pipeline, the admin ops and the server. */
rk_stats *rk_engine_stats(rk_engine *e);
rk_snapshot_cell *rk_engine_snapshots(rk_engine *e);
size_t rk_engine_max_body(const rk_engine *e);
rk_verdict rk_engine_fallback(const rk_engine *e);
/* The state store, for workers (rk_store_worker_new), admin ops and stats. */
rk_store *rk_engine_store(rk_engine *e);
/* The decision log, or NULL when it is disabled (rk_declog_append accepts NULL). */
rk_declog *rk_engine_declog(rk_engine *e);
/* The engine's wall clock, ms since the Unix epoch (rk_engine_config.clock_ms). */
int64_t rk_engine_now_ms(const rk_engine *e);

#endif
