/* Offline replay: the request path run in-process, in event time, against a
 * private temporary state store — what `riskctl backtest` is made of.
 *
 * An rk_replayer is an rk_engine on one rule file plus one worker, whose state
 * store lives in a fresh directory of its own (counters start empty), or in a
 * copy of a backup made by `riskctl backup` (counters, lists and recent
 * decisions as they were). Requests go through rk_pipeline_run, the very code
 * riskd serves with, so a backtest cannot drift from production. The engine's
 * wall clock is replaced by the event time the caller passes with each
 * request, so retry windows and list expiry follow the log, not the machine.
 *
 * Single-threaded by contract: a replayer is used by one thread, and the
 * event clock is per thread, shared by every replayer of that thread (a
 * baseline and a candidate fed the same record see the same time). */
#ifndef RK_REPLAY_H
#define RK_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/diag.h"
#include "proto/proto.h"
#include "rules/decision.h"
#include "rules/ruleset.h"

#define RK_REPLAY_BATCH_DEFAULT 1000 /* requests per store commit in a private store */
#define RK_REPLAY_CACHE_RECORDS ((size_t)4 << 20) /* a private store keeps this many records in
                                                     memory before writing the rest in place */

typedef struct rk_replayer rk_replayer;

typedef struct rk_replayer_config {
    const char *rules_path; /* the rule file to replay through (required) */
    const char *state_dir;  /* a backup directory (data.mdb + secret) to start from; NULL: empty */
    const char *tmp_parent; /* where the private store's directory is made; NULL: $TMPDIR or /tmp */
    int batch;              /* requests per store commit (rk_store_config.batch); 0: the default */
} rk_replayer_config;

/* What a reply says, as far as a backtest needs it. */
typedef enum rk_replay_kind {
    RK_REPLAY_DECISION, /* a score reply: verdict and the rest are set */
    RK_REPLAY_ERROR,    /* an error reply: error is set */
    RK_REPLAY_OTHER,    /* any other map (a ping's {"ok": true}) */
} rk_replay_kind;

typedef struct rk_replay_outcome {
    rk_replay_kind kind;          /* which of the three */
    rk_verdict verdict;           /* DECISION: the decision */
    rk_wire_err error;            /* ERROR: its code; RK_WERR__COUNT for one this build lacks */
    double score;                 /* DECISION: summed rule score */
    bool has_model_score;         /* model_score was a number, not nil */
    double model_score;           /* the model's probability when has_model_score */
    bool has_shadow_verdict;      /* the reply carried shadow_decision */
    rk_verdict shadow_verdict;    /* what shadow rules would have decided */
    bool degraded;                /* the fallback after an internal failure */
    bool replayed;                /* a retried id answered from the stored decision */
    int nreasons;                 /* matched live rules named by the reply */
    int nshadow;                  /* matched shadow rules named by the reply */
    int unknown_ids;              /* rule ids in reasons/shadow that the rule set does not have */
    uint16_t reasons[RK_MAX_RULES]; /* their rule indexes (rk_ruleset_rule_id), file order */
    uint16_t shadow[RK_MAX_RULES];  /* the same for shadow rules */
} rk_replay_outcome;

/* Reads a reply (the msgpack map riskd answers, or a decision-log record's
 * `resp`) into *out. With rs, the ids in reasons and shadow are resolved to
 * rs's rule indexes (ids it lacks are counted in unknown_ids); without,
 * only their numbers are set. Returns 0, or RK_EPARSE when buf is not one
 * well-formed map (or a known key holds the wrong type). */
int rk_replay_parse_reply(const uint8_t *buf, size_t len, const rk_ruleset *rs,
                          rk_replay_outcome *out);

/* Makes the private store directory (mkdtemp; filled from cfg->state_dir when
 * set), loads the rule file and opens the engine and its worker, with periodic
 * durability, no sweeper and commits batched. Returns 0 and sets *out; or the
 * rule loader's code with diag = `file:line:col: message`; RK_ENOTFOUND /
 * RK_EINVAL when state_dir is not a backup directory, RK_EIO, RK_ESTORE,
 * RK_ECORRUPT, RK_ENOMEM with diag naming what failed. Nothing is left on
 * disk after a failure. */
int rk_replayer_open(const rk_replayer_config *cfg, rk_replayer **out, rk_diag *diag);

/* Closes the engine and removes the private store directory. r may be NULL. */
void rk_replayer_close(rk_replayer *r);

/* The rule set requests are replayed through (valid while r lives) and its
 * "name@version". */
const rk_ruleset *rk_replayer_ruleset(const rk_replayer *r);
const char *rk_replayer_label(const rk_replayer *r);

/* Sets the event time, ms since the Unix epoch, that every replayer of this
 * thread reads as its wall clock from now on (a request without `ts` is
 * stamped with it; retry windows and list TTLs are measured against it). */
void rk_replay_set_now(int64_t now_ms);

/* Runs one request (msg, len: its msgpack body) through the pipeline, as a
 * non-admin request, and reads the reply. *out points into r's scratch and
 * *reply (may be NULL) to the reply bytes, both valid until the next call on r.
 * Returns 0, or RK_EPARSE if the reply cannot be read (a bug: riskd's own
 * replies always can). */
int rk_replayer_run(rk_replayer *r, const uint8_t *msg, size_t len,
                    const rk_replay_outcome **out, const uint8_t **reply, size_t *reply_len);

/* The model features of the request r last ran, as the pipeline computed
 * them (rk_worker_features): sets *x to rk_ruleset_nfeatures floats (NaN =
 * missing) and returns their count, 0 when it computed none. Valid until the
 * next call on r. */
int rk_replayer_features(const rk_replayer *r, const float **x);

#endif
