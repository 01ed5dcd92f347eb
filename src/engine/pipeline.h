/* The request path (DESIGN.md section 1): one message in, one reply out.
 *
 * A worker is one thread's scratch space for it: the decoded transaction, the
 * evaluation context and its arena, the model's feature vector and
 * explanation scratch, the decision, the reply buffer, the reason-id arrays
 * and its handle on the state store (rk_store_worker), all allocated by
 * rk_worker_new so that scoring allocates nothing afterwards. A worker is
 * used by one thread at a time and holds a reference to the snapshot it last
 * scored with. */
#ifndef RK_PIPELINE_H
#define RK_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "proto/proto.h"

/* Returns 0 and sets *out, or RK_ENOMEM. */
int rk_worker_new(rk_engine *e, rk_worker **out);
/* Releases the worker's snapshot and scratch. w may be NULL. */
void rk_worker_free(rk_worker *w);

/* Runs one request (msg, len: the msgpack body) and returns the length of the
 * reply, which *reply points to; valid until the next call on this worker.
 * Always produces a reply: a score reply (a retry's stored one with
 * "replayed": true, or the fallback with "degraded": true after a storage
 * failure), an error reply, or an op's reply. A score request commits its
 * state before this returns; in strict durability that includes waiting for
 * the fsync. admin: the message came from the admin endpoint, where admin ops
 * (reload, stats, list_add/rm/get, feedback, backup) are accepted as well as
 * score and ping. */
size_t rk_pipeline_run(rk_worker *w, const uint8_t *msg, size_t len, bool admin,
                       const uint8_t **reply);

/* The feature vector of the request this worker last ran: sets *x (when x is
 * not NULL) to rk_ruleset_nfeatures floats, named by rk_ruleset_feature_name
 * of the rule set that scored it (NaN = missing), and returns their count; 0
 * when that request computed none (no `model:` features, not a score
 * request, a retry answered from the store, or a failure before the model
 * step). Valid until the next call on this worker. For `riskctl backtest
 * --emit-features`: what the model saw is what training gets. */
int rk_worker_features(const rk_worker *w, const float **x);

/* What the last rk_pipeline_run decided, when its reply is a fresh decision
 * (not an error, a degraded fallback, a replayed retry or another op): the
 * decision, and the model score the reply carries; NULL otherwise. Valid
 * until the next request. Lets an in-process caller (the backtest) skip
 * reading the reply back. */
const rk_decision *rk_worker_decision(const rk_worker *w, bool *has_model_score,
                                      double *model_score);

/* An error reply for a request the server refuses without running it
 * (overloaded, malformed envelope), counted in stats like any other. The id
 * is echoed when the body's first max_body bytes yield one. Same lifetime as
 * rk_pipeline_run's reply. */
size_t rk_pipeline_reject(rk_worker *w, const uint8_t *msg, size_t len, rk_wire_err code,
                          const char *message, const uint8_t **reply);

#endif
