/* Engine statistics: what the admin `stats` op reports (docs/config.md, "Metrics").
 *
 * Counters are relaxed atomics bumped from any thread on the hot path; a
 * reader gets values that are each exact but not a consistent cut across
 * counters, which is what monitoring needs. The last reload error is text
 * guarded by a mutex (reloads are rare and off the hot path). */
#ifndef RK_STATS_H
#define RK_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

#include "engine/declog.h"
#include "engine/snapshot.h"
#include "proto/proto.h"
#include "rules/decision.h"
#include "state/store.h"

typedef struct rk_stats rk_stats;

/* Returns NULL when out of memory. Uptime counts from here. */
rk_stats *rk_stats_new(void);
void rk_stats_free(rk_stats *st);

/* One message handled by the pipeline (any op, any outcome). */
void rk_stats_count_request(rk_stats *st);
/* One score reply with this verdict; degraded: a fallback after an internal failure. */
void rk_stats_count_decision(rk_stats *st, rk_verdict v, bool degraded);
/* One retry answered with its stored decision ("replayed": true). */
void rk_stats_count_replayed(rk_stats *st);
/* One error reply with this wire code. */
void rk_stats_count_error(rk_stats *st, rk_wire_err code);
/* Division by zero / overflow results seen by the evaluator. */
void rk_stats_add_arith_errors(rk_stats *st, uint64_t n);
/* Requests received by the server and not yet answered. */
void rk_stats_add_inflight(rk_stats *st, int64_t delta);
/* Scoring threads the server runs (reported as-is). */
void rk_stats_set_workers(rk_stats *st, int n);

/* A reload that succeeded / failed; msg is the rk_diag_format text. */
void rk_stats_reload_ok(rk_stats *st);
void rk_stats_reload_failed(rk_stats *st, const char *msg);

/* Plain copies, for tests and logs. */
uint64_t rk_stats_requests(const rk_stats *st);
uint64_t rk_stats_replayed(const rk_stats *st);
uint64_t rk_stats_degraded(const rk_stats *st);
uint64_t rk_stats_errors(const rk_stats *st, rk_wire_err code);
uint64_t rk_stats_reloads_failed(const rk_stats *st);
int64_t rk_stats_inflight(const rk_stats *st);

/* Packs the whole stats map (one msgpack map; keys in docs/config.md), with the
 * rule set label and per-rule hits taken from snap, the `store` section
 * from store (NULL when the store could not be read: packed as nil) and the
 * `decision_log` section from declog (NULL when the log is disabled: nil).
 * Returns 0 (the packer's buffer records overflow itself). */
int rk_stats_pack(rk_stats *st, const rk_snapshot *snap, const rk_store_stats *store,
                  const rk_declog_stats *declog, msgpack_packer *pk);

#endif
