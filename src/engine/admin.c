/* The admin ops' replies.
 *
 * A failed reload is not a malformed request, so it does not use the error
 * reply of the wire protocol: it answers `ok: false` with the loader's
 * `file:line:col: message` under code bad_request (the rule file, the input
 * riskd was asked to read, is what is wrong), so riskctl can print it as is.
 * Nothing is counted in errors.* for it; reloads.failed is.
 *
 * The state ops (dynamic lists, feedback, backup) read their arguments from
 * the request body with the msgpack cursor, check all of them before touching
 * the store, and then run as one write transaction on the admin thread's
 * store worker: a failure anywhere aborts it, so an op either happens whole or
 * not at all. Argument errors name the field (`field 'list': unknown dynamic
 * list 'blocked_crads' (did you mean 'blocked_cards'?)`); storage errors are
 * logged by the store and answered `internal` without detail. Dynamic list
 * names are checked against the rule set now serving, so an operator cannot
 * fill a list no rule reads. These ops are rare and off the hot path; they
 * may take their time (a backup copies the whole store). */
#include "engine/admin.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/stats.h"
#include "lib/diag.h"
#include "lib/duration.h"
#include "lib/err.h"
#include "lib/log.h"
#include "proto/mp.h"
#include "state/counters.h"
#include "state/dlist.h"
#include "state/keyhash.h"
#include "state/recent.h"

#define VALUE_MAX 1024   /* longest list member, bytes (the longest string field) */
#define DIR_MAX 4000     /* longest backup directory path */

void rk_admin_reload(rk_engine *e, rk_outbuf *out)
{
    rk_diag diag;
    msgpack_packer *pk = &out->pk;
    if (rk_engine_reload(e, &diag) == 0) {
        char label[256];
        rk_engine_label(e, label, sizeof label);
        msgpack_pack_map(pk, 2);
        rk_outbuf_str(out, "ok");
        msgpack_pack_true(pk);
        rk_outbuf_str(out, "ruleset");
        rk_outbuf_str(out, label);
        return;
    }
    char text[sizeof diag.file + sizeof diag.msg + 32];
    rk_diag_format(&diag, text, sizeof text);
    msgpack_pack_map(pk, 2);
    rk_outbuf_str(out, "ok");
    msgpack_pack_false(pk);
    rk_outbuf_str(out, "error");
    msgpack_pack_map(pk, 2);
    rk_outbuf_str(out, "code");
    rk_outbuf_str(out, rk_wire_err_name(RK_WERR_BAD_REQUEST));
    rk_outbuf_str(out, "message");
    rk_outbuf_str(out, text);
}

void rk_admin_stats(rk_engine *e, const rk_snapshot *snap, rk_outbuf *out)
{
    rk_store_stats st;
    bool have = rk_store_stats_get(rk_engine_store(e), &st) == 0;
    rk_declog_stats dl;
    rk_declog *log = rk_engine_declog(e);
    if (log)
        rk_declog_stats_get(log, &dl);
    rk_stats_pack(rk_engine_stats(e), snap, have ? &st : NULL, log ? &dl : NULL, &out->pk);
}

uint64_t rk_admin_list_tag(const char *list)
{
    /* The prefix keeps list tags apart from counter identities, which hash
     * a different text. */
    char text[16 + RK_DLIST_NAME_MAX + 1];
    int n = snprintf(text, sizeof text, "add_on_fraud:%s", list);
    return rk_hash64(text, n < (int)sizeof text ? (size_t)n : sizeof text - 1);
}

/* ---- arguments --------------------------------------------------------------- */

static int fail(rk_proto_err *err, rk_wire_err code, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(rk_proto_err *err, rk_wire_err code, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
    return rc;
}

/* A bad argument: the sender's mistake. */
#define bad(err, ...) fail(err, RK_WERR_BAD_REQUEST, RK_EINVAL, __VA_ARGS__)

/* A storage failure: the store has logged what LMDB said. */
static int store_failed(rk_proto_err *err, const char *what, int rc)
{
    return fail(err, RK_WERR_INTERNAL, rc < 0 ? rc : RK_ESTORE,
                "%s failed: %s (details in riskd's log)", what, rk_strerror(rc));
}

/* Request text quoted for a message (proto.h: cut at 40 bytes, escaped). */
typedef struct quoted {
    char s[200]; /* the text */
} quoted;

static quoted quote(const void *p, size_t n)
{
    quoted q;
    rk_proto_printable(q.s, sizeof q.s, p, n);
    return q;
}

/* Looks up key in the request map. Returns 1 with *it set, 0 when absent (nil
 * counts as absent, as for every optional wire field). */
static int arg(const rk_request *req, const char *key, rk_mp_item *it)
{
    if (rk_mp_map_find(req->body, req->body_len, key, it, NULL) != 0)
        return 0;
    return it->type != RK_MP_NIL;
}

/* A required string argument, copied NUL-terminated into buf (cap bytes). */
static int arg_str(const rk_request *req, const char *key, char *buf, size_t cap,
                   rk_proto_err *err)
{
    rk_mp_item it;
    if (!arg(req, key, &it))
        return bad(err, "field '%s' is required", key);
    if (it.type != RK_MP_STR)
        return bad(err, "field '%s': expected a string, got %s", key, rk_mp_type_name(it.type));
    if (it.raw.len == 0)
        return bad(err, "field '%s': must not be empty", key);
    if (memchr(it.raw.p, '\0', it.raw.len))
        return bad(err, "field '%s': must not contain a NUL byte", key);
    if (it.raw.len >= cap)
        return bad(err, "field '%s': longer than %zu bytes", key, cap - 1);
    memcpy(buf, it.raw.p, it.raw.len);
    buf[it.raw.len] = '\0';
    return 0;
}

/* `list`: the name of a dynamic list of the rule set now serving. */
static int arg_list(const rk_request *req, const rk_ruleset *rs, char *name, rk_proto_err *err)
{
    int rc = arg_str(req, "list", name, RK_DLIST_NAME_MAX + 1, err);
    if (rc < 0)
        return rc;
    if (rk_ruleset_dynlist_find(rs, name) >= 0)
        return 0;
    int n = rk_ruleset_ndynlists(rs);
    quoted shown = quote(name, strlen(name));
    if (n == 0)
        return bad(err,
                   "field 'list': unknown dynamic list '%s' (rule set %s has no dynamic lists)",
                   shown.s, rk_ruleset_label(rs));
    const char *cands[64];
    int nc = 0;
    for (int i = 0; i < n && nc < 64; i++)
        cands[nc++] = rk_ruleset_dynlist(rs, i)->name;
    const char *hint = rk_suggest(name, cands, (size_t)nc);
    if (hint)
        return bad(err, "field 'list': unknown dynamic list '%s' (did you mean '%s'?)", shown.s,
                   hint);
    return bad(err, "field 'list': unknown dynamic list '%s' (rule set %s has: %s%s)", shown.s,
               rk_ruleset_label(rs), cands[0], n > 1 ? ", ..." : "");
}

/* `value`: a list member, a string or an integer (5411 and "5411" are the
 * same member, as in static lists). Borrows the request body. */
static int arg_value(const rk_request *req, rk_value *v, rk_proto_err *err)
{
    rk_mp_item it;
    int64_t i;
    if (!arg(req, "value", &it))
        return bad(err, "field 'value' is required");
    if (it.type == RK_MP_STR) {
        if (it.raw.len == 0)
            return bad(err, "field 'value': must not be empty");
        if (it.raw.len > VALUE_MAX)
            return bad(err, "field 'value': longer than %d bytes", VALUE_MAX);
        *v = rk_value_str((const char *)it.raw.p, it.raw.len);
        return 0;
    }
    if ((it.type == RK_MP_UINT || it.type == RK_MP_INT) && rk_mp_int64(&it, &i) == 0) {
        *v = rk_value_int(i);
        return 0;
    }
    return bad(err, "field 'value': expected a string or an integer, got %s",
               rk_mp_type_name(it.type));
}

/* `ttl`: optional; a duration string ("30d") or milliseconds; absent or 0 =
 * the entry never expires. */
static int arg_ttl(const rk_request *req, int64_t *ttl, rk_proto_err *err)
{
    rk_mp_item it;
    *ttl = 0;
    if (!arg(req, "ttl", &it))
        return 0;
    if (it.type == RK_MP_STR) {
        if (rk_duration_parse((const char *)it.raw.p, it.raw.len, ttl) == 0)
            return 0;
        return bad(err, "field 'ttl': expected a duration such as \"30d\" (units ms, s, m, h, d), "
                        "got '%s'",
                   quote(it.raw.p, it.raw.len).s);
    }
    if (it.type == RK_MP_UINT && rk_mp_int64(&it, ttl) == 0)
        return 0;
    return bad(err, "field 'ttl': expected a duration string or milliseconds >= 0, got %s",
               it.type == RK_MP_INT ? "a negative number" : rk_mp_type_name(it.type));
}

/* ---- the ops ------------------------------------------------------------------ */

static void pack_kv_str(rk_outbuf *out, const char *key, const char *val)
{
    rk_outbuf_str(out, key);
    rk_outbuf_str(out, val);
}

static void pack_kv_ms(rk_outbuf *out, const char *key, int64_t ms)
{
    rk_outbuf_str(out, key);
    if (ms)
        msgpack_pack_int64(&out->pk, ms);
    else
        msgpack_pack_nil(&out->pk);
}

static void pack_value(rk_outbuf *out, const rk_value *v)
{
    if (v->type == RK_T_INT)
        msgpack_pack_int64(&out->pk, v->i);
    else {
        msgpack_pack_str(&out->pk, v->len);
        msgpack_pack_str_body(&out->pk, v->s, v->len);
    }
}

/* Commits sw's transaction, or reports the failure (the store has dropped it). */
static int commit(rk_store_worker *sw, const char *what, rk_proto_err *err)
{
    int rc = rk_store_commit(sw);
    return rc < 0 ? store_failed(err, what, rc) : 0;
}

/* Aborts sw's transaction and reports rc. */
static int abort_with(rk_store_worker *sw, const char *what, int rc, rk_proto_err *err)
{
    rk_store_abort(sw);
    return store_failed(err, what, rc);
}

static int list_add(rk_engine *e, rk_store_worker *sw, const rk_ruleset *rs,
                    const rk_request *req, rk_outbuf *out, rk_proto_err *err)
{
    char name[RK_DLIST_NAME_MAX + 1];
    rk_value v;
    int64_t ttl;
    int rc;
    if ((rc = arg_list(req, rs, name, err)) < 0 || (rc = arg_value(req, &v, err)) < 0 ||
        (rc = arg_ttl(req, &ttl, err)) < 0)
        return rc;
    if ((rc = rk_store_begin(sw, rk_engine_now_ms(e))) < 0)
        return store_failed(err, "list_add", rc);
    int64_t now = rk_store_worker_now(sw);
    if ((rc = rk_dlist_add(sw, name, &v, ttl)) < 0)
        return abort_with(sw, "list_add", rc, err);
    if ((rc = commit(sw, "list_add", err)) < 0)
        return rc;
    msgpack_pack_map(&out->pk, 3);
    rk_outbuf_str(out, "ok");
    msgpack_pack_true(&out->pk);
    pack_kv_str(out, "list", name);
    pack_kv_ms(out, "expires_ms", ttl ? (ttl > INT64_MAX - now ? INT64_MAX : now + ttl) : 0);
    return 0;
}

static int list_rm(rk_engine *e, rk_store_worker *sw, const rk_ruleset *rs,
                    const rk_request *req,
                   rk_outbuf *out, rk_proto_err *err)
{
    char name[RK_DLIST_NAME_MAX + 1];
    rk_value v;
    int rc;
    if ((rc = arg_list(req, rs, name, err)) < 0 || (rc = arg_value(req, &v, err)) < 0)
        return rc;
    if ((rc = rk_store_begin(sw, rk_engine_now_ms(e))) < 0)
        return store_failed(err, "list_rm", rc);
    rc = rk_dlist_remove(sw, name, &v);
    if (rc < 0 && rc != RK_ENOTFOUND)
        return abort_with(sw, "list_rm", rc, err);
    bool removed = rc == 0;
    if ((rc = commit(sw, "list_rm", err)) < 0)
        return rc;
    msgpack_pack_map(&out->pk, 3);
    rk_outbuf_str(out, "ok");
    msgpack_pack_true(&out->pk);
    pack_kv_str(out, "list", name);
    rk_outbuf_str(out, "removed");
    if (removed)
        msgpack_pack_true(&out->pk);
    else
        msgpack_pack_false(&out->pk);
    return 0;
}

static int list_get(rk_engine *e, rk_store_worker *sw, const rk_ruleset *rs,
                    const rk_request *req, rk_outbuf *out, rk_proto_err *err)
{
    char name[RK_DLIST_NAME_MAX + 1];
    rk_value v;
    int rc;
    if ((rc = arg_list(req, rs, name, err)) < 0 || (rc = arg_value(req, &v, err)) < 0)
        return rc;
    if ((rc = rk_store_begin(sw, rk_engine_now_ms(e))) < 0)
        return store_failed(err, "list_get", rc);
    rk_dlist_entry ent = {0, 0};
    rc = rk_dlist_get(sw, name, &v, &ent);
    if (rc < 0 && rc != RK_ENOTFOUND)
        return abort_with(sw, "list_get", rc, err);
    bool present = rc == 0;
    if ((rc = commit(sw, "list_get", err)) < 0)
        return rc;
    msgpack_pack_map(&out->pk, 5);
    pack_kv_str(out, "list", name);
    rk_outbuf_str(out, "value");
    pack_value(out, &v);
    rk_outbuf_str(out, "present");
    if (present)
        msgpack_pack_true(&out->pk);
    else
        msgpack_pack_false(&out->pk);
    pack_kv_ms(out, "added_ms", present ? ent.added_at : 0);
    pack_kv_ms(out, "expires_ms", present ? ent.expires_at : 0);
    return 0;
}

/* Adds the entities remembered for the dynamic lists that take a value on
 * confirmed fraud. Returns the number of list entries added, or a negative
 * store error. */
static int fraud_list_actions(rk_store_worker *sw, const rk_ruleset *rs,
                              const rk_feedback_info *fb)
{
    int added = 0, n = rk_ruleset_ndynlists(rs);
    for (int i = 0; i < n; i++) {
        const rk_dynlist_info *d = rk_ruleset_dynlist(rs, i);
        if (d->fraud_slot < 0)
            continue;
        uint64_t tag = rk_admin_list_tag(d->name);
        for (int k = 0; k < fb->nkeys; k++) {
            if (fb->keys[k].tag != tag)
                continue;
            int rc = rk_dlist_add_hash(sw, d->name, fb->keys[k].key, d->fraud_ttl_ms);
            if (rc < 0)
                return rc;
            added++;
        }
    }
    return added;
}

static int feedback(rk_engine *e, rk_store_worker *sw, const rk_ruleset *rs,
                    const rk_request *req, rk_outbuf *out, rk_proto_err *err)
{
    rk_mp_item it;
    if (!req->id)
        return bad(err, "field 'id' is required");
    if (!arg(req, "label", &it))
        return bad(err, "field 'label' is required");
    int label = rk_mp_str_eq(&it, "fraud") ? RK_LABEL_FRAUD
                : rk_mp_str_eq(&it, "legit") ? RK_LABEL_LEGIT
                                             : RK_LABEL_NONE;
    if (label == RK_LABEL_NONE && it.type == RK_MP_STR)
        return bad(err, "field 'label': expected \"fraud\" or \"legit\", got '%s'",
                   quote(it.raw.p, it.raw.len).s);
    if (label == RK_LABEL_NONE)
        return bad(err, "field 'label': expected \"fraud\" or \"legit\", got %s",
                   rk_mp_type_name(it.type));
    int rc;

    if ((rc = rk_store_begin(sw, rk_engine_now_ms(e))) < 0)
        return store_failed(err, "feedback", rc);
    rk_feedback_info fb;
    rc = rk_recent_feedback(sw, req->id, req->id_len, label, &fb);
    if (rc == RK_ENOTFOUND) {
        rk_store_abort(sw);
        return bad(err, "unknown transaction id '%s'", quote(req->id, req->id_len).s);
    }
    if (rc < 0)
        return abort_with(sw, "feedback", rc, err);
    int ncounters = 0, nlists = 0;
    const rk_counters *c = rk_ruleset_counters(rs);
    if (c && (rc = rk_counters_feedback(sw, c, &fb, &ncounters)) < 0)
        return abort_with(sw, "feedback", rc, err);
    /* A list entry is added when a transaction becomes fraud; a later legit
     * label does not take it out (the entity may be listed for other
     * reasons): that is `riskctl list rm`. */
    if (fb.label == RK_LABEL_FRAUD && fb.prev_label != RK_LABEL_FRAUD &&
        (nlists = fraud_list_actions(sw, rs, &fb)) < 0)
        return abort_with(sw, "feedback", nlists, err);
    if ((rc = commit(sw, "feedback", err)) < 0)
        return rc;
    msgpack_pack_map(&out->pk, 3);
    rk_outbuf_str(out, "ok");
    msgpack_pack_true(&out->pk);
    rk_outbuf_str(out, "counters_updated");
    msgpack_pack_int(&out->pk, ncounters);
    rk_outbuf_str(out, "lists_updated");
    msgpack_pack_int(&out->pk, nlists);
    return 0;
}

static int backup(rk_engine *e, const rk_request *req, rk_outbuf *out, rk_proto_err *err)
{
    char dir[DIR_MAX + 1];
    int rc = arg_str(req, "dir", dir, sizeof dir, err);
    if (rc < 0)
        return rc;
    /* riskd's working directory is nothing the sender can see. */
    if (dir[0] != '/')
        return bad(err, "field 'dir': expected an absolute path, got '%s'", dir);
    rc = rk_store_backup(rk_engine_store(e), dir);
    if (rc == RK_EEXISTS)
        return bad(err, "field 'dir': '%s' already holds a store or a secret", dir);
    if (rc < 0)
        return fail(err, RK_WERR_INTERNAL, rc,
                    "field 'dir': cannot write a backup to '%s': %s (details in riskd's log)", dir,
                    rk_strerror(rc));
    msgpack_pack_map(&out->pk, 2);
    rk_outbuf_str(out, "ok");
    msgpack_pack_true(&out->pk);
    pack_kv_str(out, "dir", dir);
    return 0;
}

int rk_admin_state_op(rk_engine *e, rk_store_worker *sw, const rk_ruleset *rs,
                      const rk_request *req, rk_outbuf *out, rk_proto_err *err)
{
    switch (req->op) {
    case RK_OP_LIST_ADD:
        return list_add(e, sw, rs, req, out, err);
    case RK_OP_LIST_RM:
        return list_rm(e, sw, rs, req, out, err);
    case RK_OP_LIST_GET:
        return list_get(e, sw, rs, req, out, err);
    case RK_OP_FEEDBACK:
        return feedback(e, sw, rs, req, out, err);
    case RK_OP_BACKUP:
        return backup(e, req, out, err);
    default:
        return fail(err, RK_WERR_UNSUPPORTED, RK_EINVAL, "op '%s' is not a state op",
                    rk_op_name(req->op));
    }
}
