/* The request decoder: one msgpack map in, an rk_request and the field slots
 * of an rk_txn out (DESIGN.md section 2, docs/protocol.md).
 *
 * Two passes over the borrowed buffer, nothing allocated. The first walks the
 * whole map with the mp.h cursor: it proves the body is exactly one
 * well-formed map with string keys, bounds the nesting of values nobody reads,
 * and notes where the value of each key riskd knows (standard fields, schema
 * extras, `v`, `op`, `explain`) starts, rejecting a known key seen twice. The
 * second pass visits only those noted values, in slot order, and type-checks
 * each one into its slot. Splitting it so means `op` may come anywhere in the
 * map yet the txn is written only for a score request, and errors come out in
 * a fixed order whatever the key order: structure, `v`, `op`, `id`,
 * `explain`, then the fields in slot order (so `id`, `account`, `amount` are
 * reported missing in that order).
 *
 * Strings in the results point into the buffer and live as long as it does.
 * Messages name the field and what was expected; bytes echoed from the
 * request are cut short and escaped so a message is always printable. */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"
#include "proto/mp.h"
#include "proto/proto.h"

/* Longest standard string field other than id and account, in bytes.
 * Schema string extras have no limit of their own beyond the body size. */
#define STR_FIELD_LONG_MAX 1024

/* Indices of the keys the first pass notes: the field slots first (standard,
 * then schema extras), then the three protocol keys. */
enum {
    K_V = RK_F__STD + RK_SCHEMA_MAX,
    K_OP,
    K_EXPLAIN,
    K__COUNT,
};

typedef struct dec {
    const uint8_t *buf;      /* the request body, borrowed */
    size_t len;              /* its length */
    const rk_schema *schema; /* extra fields; NULL when none are declared */
    int nschema;             /* schema entries in use, clamped to RK_SCHEMA_MAX */
    size_t at[K__COUNT];     /* 1 + offset of each known key's value; 0: key absent */
    rk_proto_err *err;       /* where failures are described */
} dec;

__attribute__((format(printf, 3, 4))) static int fail(dec *d, rk_wire_err code,
                                                      const char *fmt, ...)
{
    va_list ap;
    d->err->code = code;
    va_start(ap, fmt);
    vsnprintf(d->err->msg, sizeof d->err->msg, fmt, ap);
    va_end(ap);
    return RK_EPARSE;
}

/* Failure of the mp.h reader at byte offset pos. */
static int fail_mp(dec *d, int rc, size_t pos)
{
    if (rc == RK_ECORRUPT)
        return fail(d, RK_WERR_BAD_REQUEST, "invalid msgpack byte 0x%02x at byte %zu",
                    d->buf[pos], pos);
    return fail(d, RK_WERR_BAD_REQUEST, "truncated msgpack at byte %zu", pos);
}

/* The keys with a fixed meaning, in note-index order: the standard fields of
 * RK_FIELD_MAP, then the protocol keys. This runs for every key of every
 * request; with the lengths known at compile time a miss costs a byte
 * compare, where rk_field_find's strlen of every candidate was ~40% of the
 * time spent decoding a typical request. */
static const struct {
    const char *key; /* wire key */
    uint8_t len;     /* strlen(key) */
    uint8_t idx;     /* its note index */
} fixed_keys[] = {
#define XX(name, key, type, req) {key, sizeof key - 1, RK_F_##name},
    RK_FIELD_MAP(XX)
#undef XX
    {"v", 1, K_V},
    {"op", 2, K_OP},
    {"explain", 7, K_EXPLAIN},
};
#define NFIXED (sizeof fixed_keys / sizeof fixed_keys[0])

/* The fixed keys by a hash of length, first and last byte, in an open-
 * addressing table built once: a request's 15-20 keys each found in about one
 * probe instead of a scan of every fixed key (the scan was about a third of
 * decoding). */
#define KEY_SLOTS 64 /* a power of two, well above NFIXED */
_Static_assert(NFIXED * 2 <= KEY_SLOTS, "the fixed-key table must stay sparse");
static uint8_t key_slot[KEY_SLOTS]; /* index in fixed_keys + 1; 0: empty */
static pthread_once_t key_slots_once = PTHREAD_ONCE_INIT;

static unsigned key_hash(const char *s, size_t n)
{
    return ((unsigned)n * 31u + (unsigned char)s[0] * 7u + (unsigned char)s[n - 1]) &
           (KEY_SLOTS - 1);
}

static void build_key_slots(void)
{
    for (size_t i = 0; i < NFIXED; i++) {
        unsigned h = key_hash(fixed_keys[i].key, fixed_keys[i].len);
        while (key_slot[h])
            h = (h + 1) & (KEY_SLOTS - 1);
        key_slot[h] = (uint8_t)(i + 1);
    }
}

/* The note index of a key, or -1 for a key riskd does not read. */
static int key_index(const dec *d, const rk_mp_item *k)
{
    const char *s = (const char *)k->raw.p;
    if (k->raw.len > 0) { /* no fixed key is empty */
        pthread_once(&key_slots_once, build_key_slots);
        for (unsigned h = key_hash(s, k->raw.len); key_slot[h]; h = (h + 1) & (KEY_SLOTS - 1)) {
            const size_t i = key_slot[h] - 1u;
            if (fixed_keys[i].len == k->raw.len && memcmp(fixed_keys[i].key, s, k->raw.len) == 0)
                return fixed_keys[i].idx;
        }
    }
    if (d->nschema > 0)
        return rk_schema_find(d->schema, s, k->raw.len);
    return -1;
}

static const char *key_name(const dec *d, int idx)
{
    if (idx < RK_F__STD)
        return fixed_keys[idx].key;
    if (idx < K_V)
        return d->schema->f[idx - RK_F__STD].name;
    return fixed_keys[RK_F__STD + idx - K_V].key;
}

/* Pass one: the body is one map with string keys and nothing after it;
 * note where each known key's value starts. */
static int scan(dec *d)
{
    rk_mp r;
    rk_mp_item m;
    int rc;
    if (d->len == 0)
        return fail(d, RK_WERR_BAD_REQUEST, "empty request body");
    rk_mp_init(&r, d->buf, d->len);
    if ((rc = rk_mp_read(&r, &m)) < 0)
        return fail_mp(d, rc, r.pos);
    if (m.type != RK_MP_MAP)
        return fail(d, RK_WERR_BAD_REQUEST, "request body must be a msgpack map, got %s",
                    rk_mp_type_name(m.type));
    for (uint32_t i = 0; i < m.n; i++) {
        rk_mp_item k;
        char q[200];
        if ((rc = rk_mp_read(&r, &k)) < 0)
            return fail_mp(d, rc, r.pos);
        if (k.type != RK_MP_STR)
            return fail(d, RK_WERR_BAD_REQUEST, "map keys must be strings, got %s",
                        rk_mp_type_name(k.type));
        int idx = key_index(d, &k);
        if (idx >= 0 && d->at[idx])
            return fail(d, RK_WERR_BAD_REQUEST, "duplicate key '%s'", key_name(d, idx));
        size_t vpos = r.pos;
        rc = rk_mp_skip(&r, RK_MAX_DEPTH);
        if (rc == RK_ERANGE)
            return fail(d, RK_WERR_BAD_REQUEST, "key '%s': nesting deeper than %d levels",
                        rk_proto_printable(q, sizeof q, k.raw.p, k.raw.len), RK_MAX_DEPTH);
        if (rc < 0)
            return fail_mp(d, rc, r.pos);
        if (idx >= 0)
            d->at[idx] = vpos + 1;
    }
    if (r.pos != d->len)
        return fail(d, RK_WERR_BAD_REQUEST, "trailing bytes after the request map");
    return 0;
}

/* The first item of a noted value, or type nil when the key is absent (nil
 * and absent mean the same everywhere). The first pass proved it readable. */
static rk_mp_item noted(const dec *d, int idx)
{
    rk_mp_item it = {.type = RK_MP_NIL};
    if (d->at[idx]) {
        rk_mp r = {.buf = d->buf, .len = d->len, .pos = d->at[idx] - 1};
        if (rk_mp_read(&r, &it) < 0)
            it.type = RK_MP_NIL;
    }
    return it;
}

static rk_type slot_type(const dec *d, int slot)
{
    return slot < RK_F__STD ? rk_field_type(slot) : d->schema->f[slot - RK_F__STD].type;
}

static uint32_t slot_str_max(int slot)
{
    if (slot == RK_F_ID || slot == RK_F_ACCOUNT)
        return RK_STR_FIELD_MAX;
    return slot < RK_F__STD ? STR_FIELD_LONG_MAX : UINT32_MAX;
}

/* Type-checks the value of field slot into *out: missing when absent or nil,
 * an error when a required field is missing or any field is mistyped. */
static int decode_field(dec *d, int slot, bool required, rk_value *out)
{
    const char *name = key_name(d, slot);
    rk_mp_item it = noted(d, slot);
    int64_t i;
    double f;
    int rc;

    if (it.type == RK_MP_NIL) {
        if (required)
            return fail(d, RK_WERR_BAD_REQUEST, "field '%s' is required", name);
        *out = rk_value_missing();
        return 0;
    }
    switch (slot_type(d, slot)) {
    case RK_T_INT: {
        /* The contract makes amount, and only amount, non-negative. */
        const char *what = slot == RK_F_AMOUNT ? "a non-negative integer" : "an integer";
        rc = rk_mp_int64(&it, &i);
        if (rc == RK_ERANGE)
            return fail(d, RK_WERR_BAD_REQUEST,
                        "field '%s': integer %" PRIu64 " is out of range (max %" PRId64 ")",
                        name, it.u, INT64_MAX);
        if (rc < 0)
            return fail(d, RK_WERR_BAD_REQUEST, "field '%s': expected %s, got %s", name, what,
                        rk_mp_type_name(it.type));
        if (slot == RK_F_AMOUNT && i < 0)
            return fail(d, RK_WERR_BAD_REQUEST, "field '%s': expected %s, got %" PRId64, name,
                        what, i);
        *out = rk_value_int(i);
        return 0;
    }
    case RK_T_FLOAT:
        if (rk_mp_double(&it, &f) < 0)
            return fail(d, RK_WERR_BAD_REQUEST, "field '%s': expected a number, got %s", name,
                        rk_mp_type_name(it.type));
        *out = rk_value_float(f);
        return 0;
    case RK_T_STR:
        if (it.type != RK_MP_STR)
            return fail(d, RK_WERR_BAD_REQUEST, "field '%s': expected a string, got %s", name,
                        rk_mp_type_name(it.type));
        if (it.raw.len > slot_str_max(slot))
            return fail(d, RK_WERR_BAD_REQUEST, "field '%s': longer than %" PRIu32 " bytes",
                        name, slot_str_max(slot));
        *out = rk_value_str((const char *)it.raw.p, it.raw.len);
        return 0;
    case RK_T_BOOL:
        if (it.type != RK_MP_BOOL)
            return fail(d, RK_WERR_BAD_REQUEST, "field '%s': expected true or false, got %s",
                        name, rk_mp_type_name(it.type));
        *out = rk_value_bool(it.b);
        return 0;
    default:
        return fail(d, RK_WERR_INTERNAL, "field '%s': schema declares no usable type", name);
    }
}

/* `v`: absent, nil or 1. Another integer is a version we do not speak. */
static int check_version(dec *d)
{
    rk_mp_item it = noted(d, K_V);
    int64_t v;
    if (it.type == RK_MP_NIL)
        return 0;
    if (it.type == RK_MP_UINT && it.u > INT64_MAX)
        return fail(d, RK_WERR_UNSUPPORTED,
                    "unsupported protocol version %" PRIu64 " (this server speaks %d)", it.u,
                    RK_PROTO_VERSION);
    if (rk_mp_int64(&it, &v) < 0)
        return fail(d, RK_WERR_BAD_REQUEST, "field 'v': expected an integer, got %s",
                    rk_mp_type_name(it.type));
    if (v != RK_PROTO_VERSION)
        return fail(d, RK_WERR_UNSUPPORTED,
                    "unsupported protocol version %" PRId64 " (this server speaks %d)", v,
                    RK_PROTO_VERSION);
    return 0;
}

/* `op`: absent or nil means score; otherwise one of RK_OP_MAP by name. */
static int read_op(dec *d, rk_op *op)
{
    rk_mp_item it = noted(d, K_OP);
    char q[200];
    *op = RK_OP_SCORE;
    if (it.type == RK_MP_NIL)
        return 0;
    if (it.type != RK_MP_STR)
        return fail(d, RK_WERR_BAD_REQUEST, "field 'op': expected a string, got %s",
                    rk_mp_type_name(it.type));
    for (int o = 0; o < RK_OP__COUNT; o++) {
        if (rk_mp_str_eq(&it, rk_op_name((rk_op)o))) {
            *op = (rk_op)o;
            return 0;
        }
    }
    return fail(d, RK_WERR_UNSUPPORTED, "unknown op '%s'",
                rk_proto_printable(q, sizeof q, it.raw.p, it.raw.len));
}

/* req->id, when the id key was seen and holds an acceptable id. Called even
 * when decoding failed, so that the error reply can echo it. */
static void echo_id(const dec *d, rk_request *req)
{
    rk_mp_item it = noted(d, RK_F_ID);
    if (it.type == RK_MP_STR && it.raw.len <= RK_STR_FIELD_MAX) {
        req->id = (const char *)it.raw.p;
        req->id_len = it.raw.len;
    }
}

static int decode(dec *d, rk_request *req, rk_txn *txn)
{
    rk_value v;
    int rc;
    if ((rc = check_version(d)) < 0 || (rc = read_op(d, &req->op)) < 0)
        return rc;
    /* Every op may carry an id (echoed in replies); only score needs one. */
    if ((rc = decode_field(d, RK_F_ID, false, &v)) < 0)
        return rc;
    rk_mp_item ex = noted(d, K_EXPLAIN);
    if (ex.type != RK_MP_NIL && ex.type != RK_MP_BOOL)
        return fail(d, RK_WERR_BAD_REQUEST, "field 'explain': expected true or false, got %s",
                    rk_mp_type_name(ex.type));
    req->explain = ex.type == RK_MP_BOOL && ex.b;
    if (req->op != RK_OP_SCORE)
        return 0;
    for (int slot = 0; slot < RK_F__STD + d->nschema; slot++)
        if ((rc = decode_field(d, slot, rk_field_required(slot), &txn->v[slot])) < 0)
            return rc;
    return 0;
}

int rk_proto_decode(const uint8_t *buf, size_t len, const rk_schema *schema, rk_request *req,
                    rk_txn *txn, rk_proto_err *err)
{
    dec d = {.buf = buf, .len = len, .schema = schema, .err = err};
    if (schema)
        d.nschema = schema->n < 0 ? 0 : schema->n > RK_SCHEMA_MAX ? RK_SCHEMA_MAX : schema->n;
    *req = (rk_request){.op = RK_OP_SCORE, .body = buf, .body_len = len};
    err->code = RK_WERR_NONE;
    err->msg[0] = '\0';

    int rc = scan(&d);
    echo_id(&d, req);
    if (rc == 0)
        rc = decode(&d, req, txn);
    return rc;
}
