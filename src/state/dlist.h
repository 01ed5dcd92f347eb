/* Dynamic lists: named sets of values maintained at run time (admin ops,
 * `riskctl list`), kept in the store so they survive restarts and take effect
 * for the next request.
 *
 * Members are stored as keyed hashes of their text (the same digest as a
 * single-field counter key, so a feedback action can add a transaction's
 * hashed card to a list without the raw value), each with an optional expiry.
 * An expired entry reads as absent at once and is deleted by the sweeper.
 * Every call runs inside the worker's transaction (rk_store_begin .. commit);
 * expiry is judged against rk_store_worker_now. */
#ifndef RK_STATE_DLIST_H
#define RK_STATE_DLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/value.h"
#include "state/keyhash.h"
#include "state/store.h"

#define RK_DLIST_NAME_MAX 64 /* longest list name, bytes */

typedef struct rk_dlist_entry {
    int64_t added_at;   /* wall ms when (last) added */
    int64_t expires_at; /* wall ms when it expires; 0 = never */
} rk_dlist_entry;

/* Adds (or refreshes: a second add resets the expiry) a member. ttl_ms 0 means
 * no expiry. RK_EINVAL (bad name, missing value, negative ttl, no txn),
 * RK_ESTORE. */
int rk_dlist_add(rk_store_worker *w, const char *list, const rk_value *v, int64_t ttl_ms);
/* The same, for a member given as its digest (from an rk_fbkey). */
int rk_dlist_add_hash(rk_store_worker *w, const char *list, const uint8_t h[RK_HASH_LEN],
                      int64_t ttl_ms);
/* Removes a member. RK_ENOTFOUND when absent (or already expired). */
int rk_dlist_remove(rk_store_worker *w, const char *list, const rk_value *v);
/* Reads a member's entry. RK_ENOTFOUND when absent or expired. */
int rk_dlist_get(rk_store_worker *w, const char *list, const rk_value *v, rk_dlist_entry *out);
/* Membership test for the request path: *out = present and unexpired. A
 * missing value gives false with 0 returned (the rule evaluator maps a missing
 * operand to unknown itself). RK_EINVAL, RK_ESTORE. */
int rk_dlist_has(rk_store_worker *w, const char *list, const rk_value *v, bool *out);

#endif
