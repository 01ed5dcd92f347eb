/* Wire protocol v1 (docs/protocol.md): decoding requests and encoding replies.
 *
 * Decoding reads straight from the message buffer: strings in the result borrow
 * it, nothing is allocated, and every type is checked. A malformed request gets
 * an error whose message names the field and what was expected. Encoding writes
 * into a caller-owned fixed buffer through msgpack-c's packer. */
#ifndef RK_PROTO_H
#define RK_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "proto/txn.h"

#define RK_PROTO_VERSION 1
#define RK_MAX_BODY_DEFAULT (64 * 1024)
#define RK_MAX_DEPTH 32 /* nesting limit for values under keys riskd does not use */

/* Wire error codes: enum name, wire text. One table for the enum, the name
 * lookup, stats and docs. */
#define RK_WIRE_ERR_MAP(XX)             \
    XX(BAD_REQUEST, "bad_request")      \
    XX(TOO_LARGE, "too_large")          \
    XX(UNSUPPORTED, "unsupported")      \
    XX(OVERLOADED, "overloaded")        \
    XX(INTERNAL, "internal")

typedef enum rk_wire_err {
    RK_WERR_NONE,
#define XX(name, text) RK_WERR_##name,
    RK_WIRE_ERR_MAP(XX)
#undef XX
    RK_WERR__COUNT,
} rk_wire_err;

/* "bad_request", ...; "none" for RK_WERR_NONE. */
const char *rk_wire_err_name(rk_wire_err e);

/* Operations: enum name, wire `op` value, whether admin-only. Arguments and
 * replies: docs/protocol.md, "Operations". */
#define RK_OP_MAP(XX)               \
    XX(SCORE, "score", 0)           \
    XX(PING, "ping", 0)             \
    XX(RELOAD, "reload", 1)         \
    XX(STATS, "stats", 1)           \
    XX(LIST_ADD, "list_add", 1)     \
    XX(LIST_RM, "list_rm", 1)       \
    XX(LIST_GET, "list_get", 1)     \
    XX(FEEDBACK, "feedback", 1)     \
    XX(BACKUP, "backup", 1)

typedef enum rk_op {
#define XX(name, text, admin) RK_OP_##name,
    RK_OP_MAP(XX)
#undef XX
    RK_OP__COUNT,
} rk_op;

const char *rk_op_name(rk_op op);
bool rk_op_is_admin(rk_op op);

/* Copies request bytes (s, n) into dst (cap bytes) for an error message:
 * printable ASCII as is, other bytes (and the quote and backslash) as \xNN, at
 * most 40 source bytes, then "...". Returns dst, NUL-terminated. */
const char *rk_proto_printable(char *dst, size_t cap, const uint8_t *s, size_t n);

/* A decoding failure: the wire code and a message naming the field. */
typedef struct rk_proto_err {
    rk_wire_err code;
    char msg[256];
} rk_proto_err;

/* A decoded request. Everything borrowed points into the message buffer. */
typedef struct rk_request {
    rk_op op;
    const char *id;      /* `id` when present and a string, else NULL (echoed in errors too) */
    uint32_t id_len;
    bool explain;        /* `explain: true` asked for feature contributions */
    const uint8_t *body; /* the whole msgpack map, for admin ops that read more keys */
    size_t body_len;
} rk_request;

/* Decodes one request body. For a score request every field slot of txn is
 * set: present fields to their value, absent ones to missing; extra keys are
 * typed by schema (NULL: none declared) and keys nobody declared are skipped
 * (nested up to RK_MAX_DEPTH). For other ops txn is left untouched.
 *
 * Returns 0, or RK_EPARSE with err filled (code bad_request or unsupported);
 * req->id is set whenever it could be read, even on failure. The size limit is
 * the caller's (code too_large), checked before decoding. */
int rk_proto_decode(const uint8_t *buf, size_t len, const rk_schema *schema, rk_request *req,
                    rk_txn *txn, rk_proto_err *err);

/* A fixed output buffer. Writes past cap set `overflow` and are dropped. */
typedef struct rk_outbuf {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool overflow;
    msgpack_packer pk; /* packs into this buffer; use for ad-hoc replies (stats) */
} rk_outbuf;

void rk_outbuf_init(rk_outbuf *out, uint8_t *mem, size_t cap);
static inline void rk_outbuf_reset(rk_outbuf *out) { out->len = 0; out->overflow = false; }
/* Packs a NUL-terminated string. */
void rk_outbuf_str(rk_outbuf *out, const char *s);

/* One feature of an explanation (`explain: true`). */
typedef struct rk_reply_contrib {
    const char *feature;  /* the feature's name */
    double value;         /* its value as the model read it; NaN: missing (nil) */
    double contribution;  /* what it added to the margin (log-odds) */
} rk_reply_contrib;

/* The content of a score reply (DESIGN.md section 2). */
typedef struct rk_reply {
    const char *id;              /* echoed */
    uint32_t id_len;
    const char *decision;        /* "allow" | "review" | "block" */
    double score;                /* sum of matched live rule scores */
    bool has_model_score;        /* false: `model_score` is nil */
    double model_score;
    const char *const *reasons;  /* ids of matched live rules, file order */
    int nreasons;
    const char *const *shadow;   /* ids of matched shadow rules; omitted when none */
    int nshadow;
    const char *shadow_decision; /* NULL: omitted (the rule set has no shadow rule) */
    const char *ruleset;         /* "name@version" */
    int64_t took_us;
    bool degraded;               /* fallback decision after an internal failure */
    bool replayed;               /* a retried id answered from the stored decision */
    bool has_explain;            /* `explain` present: asked for, and a model scored */
    double explain_bias;         /* the margin of a case the model knows nothing about */
    const rk_reply_contrib *contribs; /* largest |contribution| first */
    int ncontribs;
} rk_reply;

/* Each returns 0, or RK_ETOOBIG when the reply did not fit. */
int rk_proto_encode_reply(rk_outbuf *out, const rk_reply *r);
/* Where rk_proto_encode_reply put the id's bytes (id_len of them): the id is
 * the first key of the map, so the offset depends on its length alone. */
size_t rk_proto_reply_id_at(size_t id_len);
int rk_proto_encode_error(rk_outbuf *out, const char *id, uint32_t id_len, rk_wire_err code,
                          const char *msg);
/* {"ok": true} */
int rk_proto_encode_ok(rk_outbuf *out);

#endif
