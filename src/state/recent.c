/* Decided transactions, for retry de-duplication and feedback.
 *
 * Layout in the `recent` database:
 *   key    keyed hash of the transaction id (16 bytes); the id itself is
 *          never stored.
 *   value  a 32-byte header (version, verdict, label, key count, reply
 *          length, event time, decision wall time, label wall time), in
 *          version 2 where the id was cut from the reply (8 bytes), then
 *          nkeys rk_fbkey (48 bytes each), then the stored reply bytes.
 * The reply is kept so that a retry is answered byte for byte as the first
 * attempt was (the server adds "replayed": true). Replies echo the id, which
 * must not be stored: a version 2 record keeps the reply with the id's bytes
 * cut out (id_at, id_len say where they were) and a retry, which carries the
 * same id, has them put back. Nothing in the record then needs encrypting,
 * which saved ~0.6 us per decision (XChaCha20 of a 220-byte reply). Version 1
 * records, written before, hold the whole reply encrypted (rk_keyhash_seal,
 * nonce = id digest ++ decision time); they are still read, and expire with
 * recent_ttl_ms. Records older than
 * dedupe_ttl_ms are no longer replayed; older than recent_ttl_ms they are
 * swept, after which feedback for them is RK_ENOTFOUND.
 *
 * Every write here goes through rk_store_op, so it is re-run after a map
 * growth; reads hand back copies in worker scratch, never pointers into the
 * map, which would not survive that. */
#include "state/recent.h"

#include <string.h>

#include "lib/err.h"
#include "state/store_int.h"

#define RECENT_SEALED 1  /* version 1: the whole reply, encrypted */
#define RECENT_VERSION 2 /* the reply without the id's bytes */

typedef struct recent_hdr {
    uint8_t version;     /* RECENT_VERSION or RECENT_SEALED */
    uint8_t verdict;     /* the caller's verdict code */
    uint8_t label;       /* an rk_label */
    uint8_t nkeys;       /* rk_fbkey entries that follow */
    uint32_t reply_len;  /* reply bytes after the keys */
    int64_t ts;          /* event time of the request */
    int64_t decided_at;  /* wall ms at rk_recent_record */
    int64_t labeled_at;  /* wall ms of the last label; 0 if none */
} recent_hdr;

/* Follows the header in a version 2 record. */
typedef struct recent_cut {
    uint32_t id_at;  /* where the id's bytes were in the reply; RK_RECENT_NO_ID if not there */
    uint32_t id_len; /* how many */
} recent_cut;

/* A record's parts, as load() found them. */
typedef struct recent_rec {
    recent_hdr h;
    recent_cut cut;     /* version 1: nothing cut */
    size_t len;         /* the whole record */
    const uint8_t *keys; /* nkeys rk_fbkey, in w->rec */
    const uint8_t *reply; /* reply_len stored reply bytes, in w->rec */
} recent_rec;

static const char *const label_names[] = {"none", "fraud", "legit"};

const char *rk_label_name(int label)
{
    return label >= RK_LABEL_NONE && label <= RK_LABEL_LEGIT ? label_names[label] : "?";
}

int rk_label_from_name(const char *name)
{
    for (int i = RK_LABEL_NONE; i <= RK_LABEL_LEGIT; i++)
        if (strcmp(name, label_names[i]) == 0)
            return i;
    return -1;
}

static void unseal_v1(rk_store_worker *w, const uint8_t key[RK_HASH_LEN], int64_t decided_at,
                      uint8_t *p, size_t n)
{
    uint8_t nonce[RK_SEAL_NONCE_LEN];
    memcpy(nonce, key, RK_HASH_LEN);
    memcpy(nonce + RK_HASH_LEN, &decided_at, sizeof decided_at);
    rk_keyhash_seal(w->s->kh, nonce, p, n);
}

/* Reads and validates the record of id into w->rec. RK_ENOTFOUND, RK_ECORRUPT,
 * RK_ESTORE. */
static int load(rk_store_worker *w, const uint8_t key[RK_HASH_LEN], recent_rec *r)
{
    MDB_val k = {RK_HASH_LEN, (void *)key}, v;
    int rc = rk_store_get(w, RK_CUR_RECENT, &k, &v, "reading a decided transaction");
    if (rc != 0)
        return rc;
    if (v.mv_size < sizeof r->h || v.mv_size > RK_REC_MAX + RK_REPLY_MAX)
        return RK_ECORRUPT;
    memcpy(w->rec, v.mv_data, v.mv_size);
    memcpy(&r->h, w->rec, sizeof r->h);
    size_t at = sizeof r->h;
    r->cut = (recent_cut){RK_RECENT_NO_ID, 0};
    if (r->h.version == RECENT_VERSION) {
        if (v.mv_size < at + sizeof r->cut)
            return RK_ECORRUPT;
        memcpy(&r->cut, w->rec + at, sizeof r->cut);
        at += sizeof r->cut;
    } else if (r->h.version != RECENT_SEALED) {
        return RK_ECORRUPT;
    }
    if (r->h.nkeys > RK_FBKEY_MAX ||
        v.mv_size != at + r->h.nkeys * sizeof(rk_fbkey) + r->h.reply_len ||
        (r->cut.id_at != RK_RECENT_NO_ID &&
         (r->cut.id_at > r->h.reply_len || r->cut.id_len > RK_REPLY_MAX - r->h.reply_len)))
        return RK_ECORRUPT;
    r->len = v.mv_size;
    r->keys = w->rec + at;
    r->reply = r->keys + r->h.nkeys * sizeof(rk_fbkey);
    return 0;
}

int rk_recent_check(rk_store_worker *w, const char *id, size_t len, rk_replay *out)
{
    if (!w->txn)
        return RK_EINVAL;
    uint8_t key[RK_HASH_LEN];
    rk_keyhash_bytes(w->s->kh, id, len, key);
    recent_rec r;
    int rc = load(w, key, &r);
    if (rc != 0)
        return rc;
    const recent_hdr h = r.h;
    if (w->now_ms - h.decided_at >= w->s->cfg.dedupe_ttl_ms)
        return RK_ENOTFOUND; /* too old to be a retry: decide it afresh */
    if (h.version == RECENT_SEALED) {
        memcpy(w->reply, r.reply, h.reply_len);
        unseal_v1(w, key, h.decided_at, w->reply, h.reply_len);
    } else if (r.cut.id_at == RK_RECENT_NO_ID) {
        memcpy(w->reply, r.reply, h.reply_len);
    } else {
        /* the id that hashed to this key is the one that was cut out */
        if (r.cut.id_len != len)
            return RK_ECORRUPT;
        memcpy(w->reply, r.reply, r.cut.id_at);
        memcpy(w->reply + r.cut.id_at, id, len);
        memcpy(w->reply + r.cut.id_at + len, r.reply + r.cut.id_at, h.reply_len - r.cut.id_at);
    }
    uint32_t reply_len = h.reply_len + (r.cut.id_at == RK_RECENT_NO_ID ? 0 : r.cut.id_len);
    *out = (rk_replay){.reply = w->reply,
                       .reply_len = reply_len,
                       .verdict = h.verdict,
                       .label = h.label,
                       .ts = h.ts,
                       .decided_at = h.decided_at};
    return 0;
}

typedef struct addkey_arg {
    uint64_t tag;              /* caller's tag */
    uint8_t key[RK_HASH_LEN];  /* hashed entity */
} addkey_arg;

static int addkey_op(rk_store_worker *w, void *arg)
{
    addkey_arg *a = arg;
    if (w->nfb >= RK_FBKEY_MAX)
        return RK_ETOOBIG;
    rk_fbkey *k = &w->fb[w->nfb++];
    memset(k, 0, sizeof *k);
    k->tag = a->tag;
    memcpy(k->key, a->key, RK_HASH_LEN);
    return 0;
}

int rk_recent_add_key(rk_store_worker *w, uint64_t tag, const uint8_t key[RK_HASH_LEN])
{
    addkey_arg a = {.tag = tag};
    memcpy(a.key, key, RK_HASH_LEN);
    return rk_store_op(w, addkey_op, &a, sizeof a);
}

int rk_recent_add_value(rk_store_worker *w, uint64_t tag, const rk_value *v)
{
    if (v->type == RK_T_MISSING)
        return 0;
    uint8_t key[RK_HASH_LEN];
    if (rk_keyhash_value(w->s->kh, v, key) != 0)
        return RK_EINVAL;
    return rk_recent_add_key(w, tag, key);
}

typedef struct record_arg {
    const char *id;     /* transaction id (caller's buffer) */
    size_t len;         /* its length */
    int verdict;        /* caller's code */
    int64_t ts;         /* event time */
    const void *reply;  /* reply bytes (caller's buffer) */
    size_t reply_len;   /* their length */
    size_t id_at;       /* where the id's bytes are in reply, or RK_RECENT_NO_ID */
} record_arg;

static int record_op(rk_store_worker *w, void *arg)
{
    record_arg *a = arg;
    bool cut = a->id_at != RK_RECENT_NO_ID;
    recent_hdr h = {.version = RECENT_VERSION,
                    .verdict = (uint8_t)a->verdict,
                    .label = RK_LABEL_NONE,
                    .nkeys = (uint8_t)w->nfb,
                    .reply_len = (uint32_t)(a->reply_len - (cut ? a->len : 0)),
                    .ts = a->ts,
                    .decided_at = w->now_ms};
    recent_cut c = {cut ? (uint32_t)a->id_at : RK_RECENT_NO_ID, cut ? (uint32_t)a->len : 0};
    uint8_t *p = w->rec;
    memcpy(p, &h, sizeof h);
    p += sizeof h;
    memcpy(p, &c, sizeof c);
    p += sizeof c;
    memcpy(p, w->fb, (size_t)w->nfb * sizeof(rk_fbkey));
    p += (size_t)w->nfb * sizeof(rk_fbkey);
    const uint8_t *reply = a->reply;
    if (cut) {
        memcpy(p, reply, a->id_at);
        memcpy(p + a->id_at, reply + a->id_at + a->len, a->reply_len - a->id_at - a->len);
    } else if (a->reply_len) {
        memcpy(p, reply, a->reply_len);
    }
    p += h.reply_len;
    uint8_t key[RK_HASH_LEN];
    rk_keyhash_bytes(w->s->kh, a->id, a->len, key);
    MDB_val k = {RK_HASH_LEN, key}, v = {(size_t)(p - w->rec), w->rec};
    return rk_store_put_at(w, RK_CUR_RECENT, &k, &v, "recording a decision");
}

int rk_recent_record(rk_store_worker *w, const char *id, size_t len, int verdict, int64_t ts,
                     const void *reply, size_t reply_len, size_t id_at)
{
    if (verdict < 0 || verdict > 255 || (!reply && reply_len))
        return RK_EINVAL;
    if (reply_len > RK_REPLY_MAX)
        return RK_ETOOBIG;
    /* the id must really be where the caller says: it is not stored */
    if (id_at != RK_RECENT_NO_ID &&
        (id_at > reply_len || len > reply_len - id_at ||
         memcmp((const uint8_t *)reply + id_at, id, len) != 0))
        return RK_EINVAL;
    record_arg a = {id, len, verdict, ts, reply, reply_len, id_at};
    return rk_store_op(w, record_op, &a, sizeof a);
}

typedef struct feedback_arg {
    const char *id;         /* transaction id (caller's buffer) */
    size_t len;             /* its length */
    int label;              /* new label */
    rk_feedback_info *out;  /* caller's */
} feedback_arg;

static int feedback_op(rk_store_worker *w, void *arg)
{
    feedback_arg *a = arg;
    uint8_t key[RK_HASH_LEN];
    rk_keyhash_bytes(w->s->kh, a->id, a->len, key);
    recent_rec r;
    int rc = load(w, key, &r);
    if (rc != 0)
        return rc;
    recent_hdr h = r.h;
    if (w->now_ms - h.decided_at >= w->s->cfg.recent_ttl_ms)
        return RK_ENOTFOUND; /* expired; the sweeper has not got to it yet */
    int prev = h.label;
    memcpy(w->fbread, r.keys, h.nkeys * sizeof(rk_fbkey));
    if (prev != a->label) {
        h.label = (uint8_t)a->label;
        h.labeled_at = w->now_ms;
        memcpy(w->rec, &h, sizeof h);
        MDB_val k = {RK_HASH_LEN, key}, v = {r.len, w->rec};
        if ((rc = rk_store_put_at(w, RK_CUR_RECENT, &k, &v, "recording a label")) != 0)
            return rc;
    }
    *a->out = (rk_feedback_info){.label = a->label,
                                 .prev_label = prev,
                                 .verdict = h.verdict,
                                 .ts = h.ts,
                                 .nkeys = h.nkeys,
                                 .keys = w->fbread};
    return 0;
}

int rk_recent_feedback(rk_store_worker *w, const char *id, size_t len, int label,
                       rk_feedback_info *out)
{
    if (label != RK_LABEL_FRAUD && label != RK_LABEL_LEGIT)
        return RK_EINVAL;
    feedback_arg a = {id, len, label, out};
    return rk_store_op(w, feedback_op, &a, sizeof a);
}

bool rk_recent_record_expired(const void *v, size_t len, int64_t now_ms, int64_t ttl_ms)
{
    recent_hdr h;
    if (len < sizeof h)
        return true;
    memcpy(&h, v, sizeof h);
    return now_ms - h.decided_at >= ttl_ms;
}
