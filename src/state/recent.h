/* Decided transactions: retry de-duplication and feedback labels.
 *
 * Every decided request is recorded under the keyed hash of its id with its
 * reply bytes, verdict and event time, and the hashed keys of the
 * feedback-fed counters it touched. A retry of the same id within
 * dedupe_ttl_ms gets the stored reply back and changes nothing; a confirmed
 * label (fraud or legit) can be attached while the record is kept
 * (recent_ttl_ms). */
#ifndef RK_STATE_RECENT_H
#define RK_STATE_RECENT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/value.h"
#include "state/keyhash.h"
#include "state/store.h"

#define RK_REPLY_MAX (64 * 1024) /* largest reply kept for replay, bytes */
#define RK_FBKEY_MAX 32          /* feedback keys kept per decided transaction */

typedef enum rk_label {
    RK_LABEL_NONE,  /* no confirmed label (or: a counter fed by requests) */
    RK_LABEL_FRAUD, /* confirmed fraud (chargeback, analyst) */
    RK_LABEL_LEGIT, /* confirmed legitimate */
} rk_label;

/* "none", "fraud", "legit"; rk_label_from_name returns -1 when unknown. */
const char *rk_label_name(int label);
int rk_label_from_name(const char *name);

/* One hashed entity remembered with a decided transaction. */
typedef struct rk_fbkey {
    uint64_t tag;               /* counter identity (rk_counters_id) or a caller tag */
    uint8_t key[RK_HASH_LEN];   /* keyed hash of the entity */
    uint64_t vhash;             /* distinct counters: the counted value's hash prefix */
    int64_t num;                /* sum counters: the summed value; else 0 */
    uint32_t flags;             /* RK_FBKEY_* */
    uint32_t pad;               /* zero */
} rk_fbkey;

#define RK_FBKEY_HAS_VHASH 1u /* vhash is meaningful */

typedef struct rk_replay {
    const uint8_t *reply; /* the stored reply bytes (worker scratch; valid until the next rk_recent_* call on w) */
    uint32_t reply_len;   /* their length */
    int verdict;          /* as given to rk_recent_record */
    int label;            /* an rk_label */
    int64_t ts;           /* the original request's event time */
    int64_t decided_at;   /* wall time it was recorded */
} rk_replay;

/* Looks up id in w's transaction. 0 with *out filled when it was decided
 * within dedupe_ttl_ms of rk_store_worker_now (a retry: answer out->reply, update
 * nothing); RK_ENOTFOUND otherwise; RK_EINVAL, RK_ESTORE, RK_ECORRUPT. */
int rk_recent_check(rk_store_worker *w, const char *id, size_t len, rk_replay *out);

/* Adds a hashed entity to the next rk_recent_record on w (e.g. for a rule
 * set's "add card to @list on fraud" action): tag is the caller's. Keys from
 * rk_counters_apply are added automatically. RK_ETOOBIG past RK_FBKEY_MAX. */
int rk_recent_add_key(rk_store_worker *w, uint64_t tag, const uint8_t key[RK_HASH_LEN]);
/* rk_recent_add_key for a value's keyed digest, the digest rk_dlist_add files a
 * member under (so a fraud label can add it to a list later). A missing value
 * adds nothing and returns 0. RK_ETOOBIG as above. */
int rk_recent_add_value(rk_store_worker *w, uint64_t tag, const rk_value *v);

#define RK_RECENT_NO_ID UINT32_MAX /* id_at: the reply does not hold the id */

/* Records the decision of id: verdict (the caller's code), its event time ts,
 * the reply bytes (reply_len <= RK_REPLY_MAX, else RK_ETOOBIG) and the keys
 * gathered in this transaction. The reply holds the id's bytes at offset
 * id_at (RK_EINVAL if not) or, with RK_RECENT_NO_ID, nowhere: they are not
 * stored, and rk_recent_check puts them back from the retry's own id.
 * Overwrites an expired record of the same id. reply must stay valid until
 * commit/abort. RK_EINVAL, RK_ESTORE. */
int rk_recent_record(rk_store_worker *w, const char *id, size_t len, int verdict, int64_t ts,
                     const void *reply, size_t reply_len, size_t id_at);

typedef struct rk_feedback_info {
    int label;                 /* the label now recorded */
    int prev_label;            /* the label before (RK_LABEL_NONE if none) */
    int verdict;               /* the decision that was given */
    int64_t ts;                /* the transaction's event time */
    int nkeys;                 /* entries in keys */
    const rk_fbkey *keys;      /* worker scratch; valid until the next rk_recent_* call on w */
} rk_feedback_info;

/* Records a confirmed label (RK_LABEL_FRAUD or RK_LABEL_LEGIT) for decided
 * transaction id, in w's transaction, and returns what the caller needs to
 * feed counters (rk_counters_feedback) and list actions. RK_ENOTFOUND when the
 * id is unknown or past recent_ttl_ms; RK_EINVAL; RK_ESTORE; RK_ECORRUPT. */
int rk_recent_feedback(rk_store_worker *w, const char *id, size_t len, int label,
                       rk_feedback_info *out);

#endif
