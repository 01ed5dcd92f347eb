/* Dynamic lists in the `lists` database.
 *
 * Layout:
 *   key    u8 name length ++ list name ++ keyed hash of the member (16 bytes).
 *          List names are configuration, not customer data, so they stay
 *          readable (stats can count entries per list); the name prefix keeps
 *          each list's members together.
 *   value  {i64 added_at, i64 expires_at} wall ms; expires_at 0 = never.
 * An entry past expires_at is treated as absent by every read and deleted by
 * the sweeper. Adds and removes go through rk_store_op (re-run safe). */
#include "state/dlist.h"

#include <string.h>

#include "lib/err.h"
#include "state/store_int.h"
#include "state/window.h"

#define KEY_MAX (1 + RK_DLIST_NAME_MAX + RK_HASH_LEN)

typedef struct dl_entry {
    int64_t added_at;   /* wall ms */
    int64_t expires_at; /* wall ms; 0 = never */
} dl_entry;

/* Builds the key of (list, digest). Returns its length, or 0 for a bad name. */
static size_t make_key(uint8_t *key, const char *list, const uint8_t h[RK_HASH_LEN])
{
    size_t n = list ? strnlen(list, RK_DLIST_NAME_MAX + 1) : 0;
    if (n == 0 || n > RK_DLIST_NAME_MAX)
        return 0;
    key[0] = (uint8_t)n;
    memcpy(key + 1, list, n);
    memcpy(key + 1 + n, h, RK_HASH_LEN);
    return 1 + n + RK_HASH_LEN;
}

static bool expired(const dl_entry *e, int64_t now)
{
    return e->expires_at != 0 && e->expires_at <= now;
}

/* Reads the live entry for key. RK_ENOTFOUND when absent or expired. */
static int lookup(rk_store_worker *w, uint8_t *key, size_t klen, dl_entry *out)
{
    MDB_val k = {klen, key}, v;
    int rc = mdb_get(w->txn, w->s->db_lists, &k, &v);
    if (rc == MDB_NOTFOUND)
        return RK_ENOTFOUND;
    if (rc != 0)
        return rk_store_mdb_fail(w->s, rc, "reading a list entry");
    if (v.mv_size != sizeof *out)
        return RK_ECORRUPT;
    memcpy(out, v.mv_data, sizeof *out);
    return expired(out, w->now_ms) ? RK_ENOTFOUND : 0;
}

typedef struct add_arg {
    uint8_t key[KEY_MAX];  /* list key */
    size_t klen;           /* its length */
    int64_t ttl_ms;        /* 0 = never expires */
} add_arg;

static int add_op(rk_store_worker *w, void *arg)
{
    add_arg *a = arg;
    dl_entry e = {w->now_ms, a->ttl_ms ? rk_sat_add(w->now_ms, a->ttl_ms) : 0};
    MDB_val k = {a->klen, a->key}, v = {sizeof e, &e};
    return rk_store_put(w, w->s->db_lists, &k, &v, "adding a list entry");
}

int rk_dlist_add_hash(rk_store_worker *w, const char *list, const uint8_t h[RK_HASH_LEN],
                      int64_t ttl_ms)
{
    add_arg a = {.ttl_ms = ttl_ms};
    if (ttl_ms < 0 || !(a.klen = make_key(a.key, list, h)))
        return RK_EINVAL;
    return rk_store_op(w, add_op, &a, sizeof a);
}

int rk_dlist_add(rk_store_worker *w, const char *list, const rk_value *v, int64_t ttl_ms)
{
    uint8_t h[RK_HASH_LEN];
    if (rk_keyhash_value(w->s->kh, v, h) != 0)
        return RK_EINVAL;
    return rk_dlist_add_hash(w, list, h, ttl_ms);
}

typedef struct del_arg {
    uint8_t key[KEY_MAX];  /* list key */
    size_t klen;           /* its length */
} del_arg;

static int del_op(rk_store_worker *w, void *arg)
{
    del_arg *a = arg;
    dl_entry e;
    int rc = lookup(w, a->key, a->klen, &e);
    if (rc != 0 && rc != RK_ENOTFOUND)
        return rc;
    bool live = rc == 0;
    MDB_val k = {a->klen, a->key};
    rc = rk_store_del(w, w->s->db_lists, &k, "removing a list entry");
    if (rc != 0 && rc != RK_ENOTFOUND)
        return rc;
    return live ? 0 : RK_ENOTFOUND;
}

int rk_dlist_remove(rk_store_worker *w, const char *list, const rk_value *v)
{
    del_arg a;
    uint8_t h[RK_HASH_LEN];
    if (rk_keyhash_value(w->s->kh, v, h) != 0 || !(a.klen = make_key(a.key, list, h)))
        return RK_EINVAL;
    return rk_store_op(w, del_op, &a, sizeof a);
}

int rk_dlist_get(rk_store_worker *w, const char *list, const rk_value *v, rk_dlist_entry *out)
{
    if (!w->txn)
        return RK_EINVAL;
    uint8_t h[RK_HASH_LEN], key[KEY_MAX];
    size_t klen;
    if (rk_keyhash_value(w->s->kh, v, h) != 0 || !(klen = make_key(key, list, h)))
        return RK_EINVAL;
    dl_entry e;
    int rc = lookup(w, key, klen, &e);
    if (rc == 0)
        *out = (rk_dlist_entry){e.added_at, e.expires_at};
    return rc;
}

int rk_dlist_has(rk_store_worker *w, const char *list, const rk_value *v, bool *out)
{
    if (!w->txn)
        return RK_EINVAL;
    if (v->type == RK_T_MISSING) {
        *out = false;
        return 0;
    }
    uint8_t h[RK_HASH_LEN], key[KEY_MAX];
    size_t klen;
    if (rk_keyhash_value(w->s->kh, v, h) != 0 || !(klen = make_key(key, list, h)))
        return RK_EINVAL;
    dl_entry e;
    int rc = lookup(w, key, klen, &e);
    if (rc != 0 && rc != RK_ENOTFOUND)
        return rc;
    *out = rc == 0;
    return 0;
}

bool rk_dlist_entry_expired(const void *v, size_t len, int64_t now_ms)
{
    dl_entry e;
    if (len != sizeof e)
        return true;
    memcpy(&e, v, sizeof e);
    return expired(&e, now_ms);
}
