/* The request path, as straight-line calls in the order of DESIGN.md section 1:
 * size check, decode, state, model, rules, decide, encode, then record and
 * commit. rk_pipeline_run is the one place that shows it; everything else in
 * this file is a helper for a single step or for the non-score ops.
 *
 * State. A score request runs as one write transaction on the worker's store
 * handle: the retry check by id comes first (a retry is answered with the
 * stored reply plus "replayed": true and changes nothing), then the velocity
 * counters are updated and read into their slots, dynamic lists are looked up
 * from inside the rules (ctx.dyn_has), and the decision is recorded with its
 * reply bytes before the commit, so counters and decision become durable
 * together; in strict mode the commit returns only once an fsync covers it,
 * so nothing is answered before it is durable. Any storage failure aborts the
 * transaction (nothing of the request is kept) and answers the configured
 * fallback decision with "degraded": true, as the protocol promises.
 *
 * Ownership and lifetimes: the worker owns all scratch (allocated once in
 * rk_worker_new) and a reference to the snapshot it scores with. The snapshot
 * is refreshed between requests only, so a request finishes on the rule set it
 * started with, and the reason-id pointers into it stay valid while the reply
 * is sent. Decoded strings borrow the caller's message buffer, which outlives
 * the transaction (the store may re-run its operations on a map growth and
 * reads their arguments again). Every reply, error or not, is written into the
 * worker's reply buffer and counted in stats exactly once. */
#include "engine/pipeline.h"

#include <stdio.h>
#include <stdlib.h>

#include "engine/admin.h"
#include "engine/snapshot.h"
#include "engine/stats.h"
#include "lib/arena.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "rules/ruleset.h"
#include "state/counters.h"
#include "state/dlist.h"
#include "state/recent.h"

#define ARENA_CAP (64 * 1024) /* lower()/upper() results of one request */
/* Room for the largest reply: a score reply naming every rule of the largest
 * rule set twice (reasons and shadow) with an explanation naming every
 * feature, or the stats map with a hit count per rule, plus the fixed keys.
 * Rule ids and feature names are at most RK_NAME_MAX bytes. */
#define REPLY_CAP                                                                                 \
    (2 * RK_MAX_RULES * (RK_NAME_MAX + 16) + RK_FEATURES_MAX * (RK_NAME_MAX + 48) + 16 * 1024)
#define DEGRADED_LOG_NS 1000000000 /* at most one "degraded" log line per second per worker */

struct rk_worker {
    rk_engine *engine;                 /* for admin ops */
    rk_snapshot_cell *cell;            /* where reloads publish; checked per request */
    rk_stats *stats;                   /* the engine's counters */
    size_t max_body;                   /* request body limit, bytes */
    rk_verdict fallback;               /* answered with degraded: true after an internal failure */
    rk_snapshot *snap;                 /* held reference; the rule set of the current request */
    rk_arena arena;                    /* per-request scratch, reset on entry */
    rk_eval_ctx ctx;                   /* evaluation stack and arith error tally */
    rk_request req;                    /* decoded envelope of the current request */
    rk_proto_err perr;                 /* decoding failure of the current request */
    rk_txn txn;                        /* decoded fields, then counters and model score */
    rk_decision dec;                   /* outcome of the rules */
    const char *reasons[RK_MAX_RULES]; /* ids of matched live rules, into snap */
    const char *shadow[RK_MAX_RULES];  /* ids of matched shadow rules, into snap */
    rk_outbuf out;                     /* packs into reply_mem; must not move (packer points at it) */
    uint8_t *reply_mem;                /* REPLY_CAP bytes */
    rk_store_worker *sw;               /* this thread's handle on the state store */
    bool when[RK_COUNTERS_MAX];        /* the counters' `when:` filters for the current request */
    int state_err;                     /* a store failure met while the rules ran (dyn_has), or 0 */
    int64_t degraded_logged_ns;        /* when this worker last logged a degraded answer */
    float x[RK_FEATURES_MAX];          /* the current request's feature vector */
    int nx;                            /* entries of x computed for it; 0: none */
    bool decided;                      /* the last reply is a fresh decision, from dec */
    bool has_model_score;              /* the model scored the current request */
    double model_score;                /* its probability, also in the model.score slot */
    double contrib[RK_FEATURES_MAX + 1]; /* explain: every model feature's contribution, bias */
    rk_model_contrib top[RK_FEATURES_MAX]; /* explain: the largest, as feature vector indices */
    rk_reply_contrib explain[RK_FEATURES_MAX]; /* explain: what the reply lists */
    int nexplain;                      /* entries in explain; -1: no explanation */
    double explain_bias;               /* explain: the bias */
    rk_declog *declog;                 /* the engine's decision log; NULL when it is off */
};

/* Dynamic list membership for the evaluator, inside the request's
 * transaction. A failure makes the test unknown and, once the rules are done,
 * the whole request degraded: the transaction cannot be trusted any more. */
static int dyn_has(void *ud, int list, const rk_value *v)
{
    rk_worker *w = ud;
    const rk_dynlist_info *d = rk_ruleset_dynlist(rk_snapshot_ruleset(w->snap), list);
    bool present = false;
    int rc = d ? rk_dlist_has(w->sw, d->name, v, &present) : RK_EINVAL;
    if (rc < 0) {
        w->state_err = rc;
        return rc;
    }
    return present;
}

int rk_worker_new(rk_engine *e, rk_worker **out)
{
    rk_worker *w = calloc(1, sizeof *w);
    if (!w)
        return RK_ENOMEM;
    w->engine = e;
    w->cell = rk_engine_snapshots(e);
    w->stats = rk_engine_stats(e);
    w->max_body = rk_engine_max_body(e);
    w->fallback = rk_engine_fallback(e);
    w->declog = rk_engine_declog(e);
    w->reply_mem = malloc(REPLY_CAP);
    if (!w->reply_mem || rk_arena_init(&w->arena, ARENA_CAP) < 0 ||
        rk_store_worker_new(rk_engine_store(e), &w->sw) < 0) {
        rk_worker_free(w);
        return RK_ENOMEM;
    }
    w->ctx.arena = &w->arena;
    w->ctx.dyn_has = dyn_has;
    w->ctx.dyn_ud = w;
    rk_outbuf_init(&w->out, w->reply_mem, REPLY_CAP);
    w->snap = rk_snapshot_cell_acquire(w->cell);
    *out = w;
    return 0;
}

void rk_worker_free(rk_worker *w)
{
    if (!w)
        return;
    rk_snapshot_release(w->snap);
    rk_store_worker_free(w->sw);
    rk_arena_free(&w->arena);
    free(w->reply_mem);
    free(w);
}

static size_t finish(rk_worker *w, const uint8_t **reply)
{
    *reply = w->out.buf;
    return w->out.len;
}

/* The decision log (DESIGN.md section 6): every score reply, with the request
 * as received, is queued for the log's writer thread, which does the rest
 * off the hot path. Copies and returns; never blocks (declog.h). */
static void log_decision(rk_worker *w, const rk_ruleset *rs)
{
    rk_declog_append(w->declog, w->req.body, w->req.body_len, w->out.buf, w->out.len,
                     rk_ruleset_label(rs), rk_engine_now_ms(w->engine));
}

/* An error reply (DESIGN.md section 2), echoing the id when it was read. */
static size_t error_reply(rk_worker *w, rk_wire_err code, const char *msg, const uint8_t **reply)
{
    rk_outbuf_reset(&w->out);
    rk_stats_count_error(w->stats, code);
    /* Cannot overflow: the id is at most RK_STR_FIELD_MAX bytes and the
     * message a few hundred. */
    rk_proto_encode_error(&w->out, w->req.id, w->req.id_len, code, msg);
    return finish(w, reply);
}

/* decide: the decision as the reply names it. Reason ids point into the
 * snapshot's rule set, which the worker holds until its next request. */
static void decide(rk_worker *w, const rk_ruleset *rs, rk_reply *r)
{
    const rk_decision *d = &w->dec;
    for (int i = 0; i < d->nreasons; i++)
        w->reasons[i] = rk_ruleset_rule_id(rs, d->reasons[i]);
    for (int i = 0; i < d->nshadow; i++)
        w->shadow[i] = rk_ruleset_rule_id(rs, d->shadow[i]);
    *r = (rk_reply){
        .id = w->req.id,
        .id_len = w->req.id_len,
        .decision = rk_verdict_name(d->verdict),
        .score = d->score,
        .has_model_score = w->has_model_score,
        .model_score = w->model_score,
        .reasons = w->reasons,
        .nreasons = d->nreasons,
        .shadow = w->shadow,
        .nshadow = d->nshadow,
        .shadow_decision = d->has_shadow_rules ? rk_verdict_name(d->shadow_verdict) : NULL,
        .ruleset = rk_ruleset_label(rs),
        .has_explain = w->nexplain >= 0,
        .explain_bias = w->explain_bias,
        .contribs = w->explain,
        .ncontribs = w->nexplain,
    };
}

/* The configured fallback decision with degraded: true, after an internal
 * failure (rc) at any step after decoding. The transaction, if one is open,
 * is abandoned: nothing of this request is kept, so a retry is scored afresh.
 * (When only strict mode's fsync failed, the commit itself stands and a retry
 * is answered with the recorded decision.) */
static size_t degraded(rk_worker *w, const rk_ruleset *rs, int64_t t0, int rc,
                       const uint8_t **reply)
{
    rk_store_abort(w->sw);
    int64_t now = rk_clock_ns();
    if (now - w->degraded_logged_ns >= DEGRADED_LOG_NS || !w->degraded_logged_ns) {
        w->degraded_logged_ns = now;
        rk_log_error("scoring failed (%s): answered the fallback decision, degraded",
                     rk_strerror(rc));
    }
    rk_outbuf_reset(&w->out);
    rk_reply r = {
        .id = w->req.id,
        .id_len = w->req.id_len,
        .decision = rk_verdict_name(w->fallback),
        .ruleset = rk_ruleset_label(rs),
        .took_us = (now - t0) / 1000,
        .degraded = true,
    };
    rk_proto_encode_reply(&w->out, &r); /* no reasons: always fits */
    rk_stats_count_decision(w->stats, w->fallback, true);
    log_decision(w, rs);
    return finish(w, reply);
}

/* state, first part: opens the transaction and looks the id up. Returns 1
 * for a retry (*rp filled), 0 for a new request, or a negative code. */
static int state_begin(rk_worker *w, rk_replay *rp)
{
    w->state_err = 0;
    int rc = rk_store_begin(w->sw, rk_engine_now_ms(w->engine));
    if (rc < 0)
        return rc;
    rc = rk_recent_check(w->sw, w->req.id, w->req.id_len, rp);
    return rc == 0 ? 1 : rc == RK_ENOTFOUND ? 0 : rc;
}

/* state, second part: updates and reads every counter of the rule set into
 * its slot (missing when a key field is absent). */
static int state_counters(rk_worker *w, const rk_ruleset *rs)
{
    const rk_counters *c = rk_ruleset_counters(rs);
    if (!c)
        return 0;
    rk_ruleset_counter_when(rs, &w->txn, &w->ctx, w->when);
    return rk_counters_apply(w->sw, c, &w->txn, w->txn.v[RK_F_TS].i, w->when,
                             &w->txn.v[rk_ruleset_counter_base(rs)]);
}

/* model: the feature vector from the fields and counters, the model's
 * probability into the model.score slot, and for `explain: true` the largest
 * contributions with the values they came from. Nothing here allocates or
 * fails: a feature that cannot be computed is missing (NaN), which the model
 * sends down each split's default side. */
static void model_step(rk_worker *w, const rk_ruleset *rs)
{
    w->nx = rk_ruleset_nfeatures(rs);
    if (w->nx == 0)
        return;
    rk_ruleset_features(rs, &w->txn, &w->ctx, w->x);
    if (!rk_ruleset_model(rs))
        return;
    w->model_score = rk_ruleset_model_score(rs, w->x, &w->txn);
    w->has_model_score = true;
    if (!w->req.explain)
        return;
    int n = rk_ruleset_model_explain(rs, w->x, w->contrib, w->top, &w->explain_bias);
    for (int i = 0; i < n; i++)
        w->explain[i] = (rk_reply_contrib){
            .feature = rk_ruleset_feature_name(rs, (int)w->top[i].feature),
            .value = w->x[w->top[i].feature],
            .contribution = w->top[i].value,
        };
    w->nexplain = n;
}

int rk_worker_features(const rk_worker *w, const float **x)
{
    if (x)
        *x = w->x;
    return w->nx;
}

/* Packs a single raw msgpack fragment (already encoded bytes). */
static void put_raw(rk_outbuf *out, const uint8_t *p, size_t n)
{
    if (n)
        out->pk.callback(out->pk.data, (const char *)p, n);
}

/* A retry: the stored reply with "replayed": true added to its map, after a
 * commit (in strict mode the original decision is durable before it is
 * answered again). Nothing else is written. */
static size_t replayed(rk_worker *w, const rk_ruleset *rs, int64_t t0, const rk_replay *rp,
                       const uint8_t **reply)
{
    const uint8_t *p = rp->reply;
    size_t n = rp->reply_len, hdr;
    uint32_t nkeys;
    if (n >= 1 && (p[0] & 0xf0) == 0x80) {
        nkeys = p[0] & 0x0f;
        hdr = 1;
    } else if (n >= 3 && p[0] == 0xde) {
        nkeys = (uint32_t)p[1] << 8 | p[2];
        hdr = 3;
    } else {
        return degraded(w, rs, t0, RK_ECORRUPT, reply); /* we only ever store maps */
    }
    rk_outbuf_reset(&w->out);
    msgpack_pack_map(&w->out.pk, nkeys + 1);
    put_raw(&w->out, p + hdr, n - hdr);
    rk_outbuf_str(&w->out, "replayed");
    msgpack_pack_true(&w->out.pk);
    int rc = w->out.overflow ? RK_ETOOBIG : rk_store_commit(w->sw);
    if (rc < 0)
        return degraded(w, rs, t0, rc, reply);
    rk_stats_count_replayed(w->stats);
    log_decision(w, rs);
    return finish(w, reply);
}

/* record + commit: remembers, hashed, the values dynamic lists add on
 * confirmed fraud, records the decision and its reply for retries and
 * feedback, and commits. */
static int state_commit(rk_worker *w, const rk_ruleset *rs)
{
    int n = rk_ruleset_ndynlists(rs);
    for (int i = 0; i < n; i++) {
        const rk_dynlist_info *d = rk_ruleset_dynlist(rs, i);
        if (d->fraud_slot < 0)
            continue;
        int rc = rk_recent_add_value(w->sw, rk_admin_list_tag(d->name), &w->txn.v[d->fraud_slot]);
        if (rc == RK_ETOOBIG)
            break; /* more feedback keys than a record keeps: this one cannot be listed later */
        if (rc < 0)
            return rc;
    }
    int rc = rk_recent_record(w->sw, w->req.id, w->req.id_len, (int)w->dec.verdict,
                              w->txn.v[RK_F_TS].i, w->out.buf, w->out.len,
                              rk_proto_reply_id_at(w->req.id_len));
    return rc < 0 ? rc : rk_store_commit(w->sw);
}

/* Ops other than score: ping anywhere, admin ops on the admin endpoint only. */
static size_t run_op(rk_worker *w, bool admin, const uint8_t **reply)
{
    rk_op op = w->req.op;
    if (rk_op_is_admin(op) && !admin) {
        char msg[128];
        snprintf(msg, sizeof msg, "op '%s' is only accepted on the admin endpoint",
                 rk_op_name(op));
        return error_reply(w, RK_WERR_UNSUPPORTED, msg, reply);
    }
    switch (op) {
    case RK_OP_PING:
        rk_proto_encode_ok(&w->out);
        break;
    case RK_OP_RELOAD:
        rk_admin_reload(w->engine, &w->out);
        break;
    case RK_OP_STATS:
        /* The newest rule set's counters, even if a reload happened since this
         * worker last scored. */
        w->snap = rk_snapshot_cell_refresh(w->cell, w->snap);
        rk_admin_stats(w->engine, w->snap, &w->out);
        break;
    case RK_OP_LIST_ADD:
    case RK_OP_LIST_RM:
    case RK_OP_LIST_GET:
    case RK_OP_FEEDBACK:
    case RK_OP_BACKUP:
        if (rk_admin_state_op(w->engine, w->sw, rk_snapshot_ruleset(w->snap), &w->req, &w->out,
                              &w->perr) < 0)
            return error_reply(w, w->perr.code, w->perr.msg, reply);
        break;
    default: {
        char msg[128];
        snprintf(msg, sizeof msg, "op '%s' is not supported", rk_op_name(op));
        return error_reply(w, RK_WERR_UNSUPPORTED, msg, reply);
    }
    }
    if (w->out.overflow)
        return error_reply(w, RK_WERR_INTERNAL, "reply too large", reply);
    return finish(w, reply);
}

/* A refused request's error reply. Decoding at most max_body bytes bounds the
 * work spent on it; the decoder sets the id whenever it gets that far, even
 * when the (possibly truncated) body fails, so DEALER clients can match it. */
static size_t reject(rk_worker *w, const uint8_t *msg, size_t len, rk_wire_err code,
                     const char *message, const uint8_t **reply)
{
    w->req.id = NULL;
    w->req.id_len = 0;
    if (msg && len > 0)
        rk_proto_decode(msg, len < w->max_body ? len : w->max_body, NULL, &w->req, &w->txn,
                        &w->perr);
    return error_reply(w, code, message, reply);
}

size_t rk_pipeline_run(rk_worker *w, const uint8_t *msg, size_t len, bool admin,
                       const uint8_t **reply)
{
    rk_outbuf_reset(&w->out);
    rk_arena_reset(&w->arena);
    w->req.id = NULL;
    w->req.id_len = 0;
    w->nx = 0;
    w->decided = false;
    w->has_model_score = false;
    w->nexplain = -1;
    rk_stats_count_request(w->stats);
    /* The hot path's only synchronisation: one atomic load, and a mutex only
     * in the first request after a reload. */
    w->snap = rk_snapshot_cell_refresh(w->cell, w->snap);
    const rk_ruleset *rs = rk_snapshot_ruleset(w->snap);
    int64_t t0 = rk_clock_ns();

    /* size check: before touching the body. */
    if (len > w->max_body) {
        char text[128];
        snprintf(text, sizeof text, "request body is %zu bytes; the limit is %zu", len,
                 w->max_body);
        return reject(w, msg, len, RK_WERR_TOO_LARGE, text, reply);
    }

    /* decode: msgpack map -> rk_txn, typed by this rule set's schema. */
    if (rk_proto_decode(msg, len, rk_ruleset_schema(rs), &w->req, &w->txn, &w->perr) < 0)
        return error_reply(w, w->perr.code, w->perr.msg, reply);
    if (w->req.op != RK_OP_SCORE)
        return run_op(w, admin, reply);
    if (w->txn.v[RK_F_TS].type == RK_T_MISSING)
        w->txn.v[RK_F_TS] = rk_value_int(rk_engine_now_ms(w->engine));

    /* state: one write transaction — retry de-duplication by id, then the
     * velocity counters into their slots (DESIGN.md section 4). Dynamic lists
     * are read by the rules below, inside the same transaction. */
    rk_replay rp;
    int rc = state_begin(w, &rp);
    if (rc == 1)
        return replayed(w, rs, t0, &rp, reply);
    if (rc == 0)
        rc = state_counters(w, rs);
    if (rc < 0)
        return degraded(w, rs, t0, rc, reply);

    /* model: feature expressions -> tree ensemble -> the model.score slot
     * (DESIGN.md section 5), and the explanation when asked for. */
    model_step(w, rs);

    /* rules: every rule over the transaction, and the verdict they give. */
    rk_ruleset_eval(rs, &w->txn, &w->ctx, &w->dec);
    if (w->ctx.arith_errors) {
        rk_stats_add_arith_errors(w->stats, w->ctx.arith_errors);
        w->ctx.arith_errors = 0;
    }
    if (w->state_err)
        return degraded(w, rs, t0, w->state_err, reply);

    /* decide: verdict, score and reasons as the reply names them. */
    rk_reply r;
    decide(w, rs, &r);

    /* encode */
    r.took_us = (rk_clock_ns() - t0) / 1000;
    if (rk_proto_encode_reply(&w->out, &r) < 0)
        return degraded(w, rs, t0, RK_ETOOBIG, reply);

    /* record + commit: the decision (with its reply, for retries) and the
     * counter updates are committed together before the reply is sent (in
     * strict durability: made durable). */
    if ((rc = state_commit(w, rs)) < 0)
        return degraded(w, rs, t0, rc, reply);
    rk_snapshot_count_hits(w->snap, &w->dec);
    rk_stats_count_decision(w->stats, w->dec.verdict, false);
    log_decision(w, rs);
    w->decided = true;
    return finish(w, reply);
}

const rk_decision *rk_worker_decision(const rk_worker *w, bool *has_model_score,
                                      double *model_score)
{
    if (!w->decided)
        return NULL;
    *has_model_score = w->has_model_score;
    *model_score = w->model_score;
    return &w->dec;
}

size_t rk_pipeline_reject(rk_worker *w, const uint8_t *msg, size_t len, rk_wire_err code,
                          const char *message, const uint8_t **reply)
{
    rk_stats_count_request(w->stats);
    return reject(w, msg, len, code, message, reply);
}
