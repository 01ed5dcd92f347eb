/* The engine: the loaded rule set (as a snapshot), reloads and statistics.
 *
 * One rk_engine serves a whole process; it is an object passed to whoever
 * needs it (server threads, tests, riskctl), never a global. Scoring goes
 * through per-thread rk_worker scratch (pipeline.h). rk_engine_reload may run
 * concurrently with scoring from any thread; reloads are serialised among
 * themselves. */
#ifndef RK_ENGINE_H
#define RK_ENGINE_H

#include <stddef.h>

#include "engine/snapshot.h"
#include "engine/stats.h"
#include "lib/diag.h"
#include "rules/decision.h"

typedef struct rk_engine rk_engine;
typedef struct rk_worker rk_worker;

typedef struct rk_engine_config {
    const char *rules_path; /* rule file; copied, re-read on every reload */
    size_t max_body;        /* largest request body in bytes; 0: RK_MAX_BODY_DEFAULT */
    rk_verdict fallback;    /* decision answered with "degraded": true after an internal failure */
} rk_engine_config;

/* Loads and compiles the rule set. Returns 0 and sets *out, or the loader's
 * negative code with diag set (`file:line:col: message`), or RK_ENOMEM. */
int rk_engine_open(const rk_engine_config *cfg, rk_engine **out, rk_diag *diag);
/* Frees the engine. Every worker must have been freed first. e may be NULL. */
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

#endif
