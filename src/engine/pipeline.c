/* The request path, as straight-line calls in the order of DESIGN.md section 1:
 * size check, decode, state, model, rules, decide, encode. rk_pipeline_run is
 * the one place that shows it; everything else in this file is a helper for a
 * single step or for the non-score ops.
 *
 * Ownership and lifetimes: the worker owns all scratch (allocated once in
 * rk_worker_new) and a reference to the snapshot it scores with. The snapshot
 * is refreshed between requests only, so a request finishes on the rule set it
 * started with, and the reason-id pointers into it stay valid while the reply
 * is sent. Decoded strings borrow the caller's message buffer. Every reply,
 * error or not, is written into the worker's reply buffer and counted in
 * stats exactly once. */
#include "engine/pipeline.h"

#include <stdio.h>
#include <stdlib.h>

#include "engine/admin.h"
#include "engine/snapshot.h"
#include "engine/stats.h"
#include "lib/arena.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "rules/ruleset.h"

#define ARENA_CAP (64 * 1024) /* lower()/upper() results of one request */
/* Room for the largest reply: a score reply naming every rule of the largest
 * rule set twice (reasons and shadow), or the stats map with a hit count per
 * rule, plus the fixed keys. Rule ids are at most RK_NAME_MAX bytes. */
#define REPLY_CAP (2 * RK_MAX_RULES * (RK_NAME_MAX + 16) + 16 * 1024)

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
};

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
    w->reply_mem = malloc(REPLY_CAP);
    if (!w->reply_mem || rk_arena_init(&w->arena, ARENA_CAP) < 0) {
        rk_worker_free(w);
        return RK_ENOMEM;
    }
    w->ctx.arena = &w->arena;
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
    rk_arena_free(&w->arena);
    free(w->reply_mem);
    free(w);
}

static size_t finish(rk_worker *w, const uint8_t **reply)
{
    *reply = w->out.buf;
    return w->out.len;
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
        .has_model_score = false, /* set by the model step once models load */
        .reasons = w->reasons,
        .nreasons = d->nreasons,
        .shadow = w->shadow,
        .nshadow = d->nshadow,
        .shadow_decision = d->has_shadow_rules ? rk_verdict_name(d->shadow_verdict) : NULL,
        .ruleset = rk_ruleset_label(rs),
    };
}

/* encode: the score reply; when it cannot be encoded (an internal failure,
 * not the client's), the configured fallback decision with degraded: true,
 * as the protocol promises, rather than dropping the request. */
static size_t encode(rk_worker *w, rk_reply *r, const uint8_t **reply)
{
    if (rk_proto_encode_reply(&w->out, r) == 0) {
        rk_snapshot_count_hits(w->snap, &w->dec);
        rk_stats_count_decision(w->stats, w->dec.verdict, false);
        return finish(w, reply);
    }
    rk_outbuf_reset(&w->out);
    r->decision = rk_verdict_name(w->fallback);
    r->score = 0;
    r->nreasons = r->nshadow = 0;
    r->shadow_decision = NULL;
    r->degraded = true;
    rk_proto_encode_reply(&w->out, r);
    rk_stats_count_decision(w->stats, w->fallback, true);
    return finish(w, reply);
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
        w->txn.v[RK_F_TS] = rk_value_int(rk_clock_wall_ms());

    /* state: one LMDB write transaction — retry de-duplication by id, velocity
     * counters, dynamic lists — fills the counter slots here (DESIGN.md
     * section 4; not built yet: rule sets declaring counters are rejected at
     * load). An internal failure in it answers via the fallback (encode). */

    /* model: feature expressions -> tree ensemble -> the model.score slot and
     * rk_reply.has_model_score (DESIGN.md section 5; not built yet). */

    /* rules: every rule over the transaction, and the verdict they give. */
    rk_ruleset_eval(rs, &w->txn, &w->ctx, &w->dec);
    if (w->ctx.arith_errors) {
        rk_stats_add_arith_errors(w->stats, w->ctx.arith_errors);
        w->ctx.arith_errors = 0;
    }

    /* decide: verdict, score and reasons as the reply names them. */
    rk_reply r;
    decide(w, rs, &r);

    /* encode */
    r.took_us = (rk_clock_ns() - t0) / 1000;
    return encode(w, &r, reply);
}


size_t rk_pipeline_reject(rk_worker *w, const uint8_t *msg, size_t len, rk_wire_err code,
                          const char *message, const uint8_t **reply)
{
    rk_stats_count_request(w->stats);
    return reject(w, msg, len, code, message, reply);
}
