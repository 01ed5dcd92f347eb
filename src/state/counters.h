/* Velocity counters: definitions, compiled counter sets, and the per-request
 * update-and-read.
 *
 * A rule set's `counters:` section becomes an array of rk_counter_def, which
 * rk_counters_new turns into an immutable rk_counters (shareable by every
 * worker, freed with the rule set snapshot). Per request, rk_counters_apply
 * updates and reads all of them in the worker's transaction and writes one
 * rk_value per counter:
 *   - RK_T_INT: the aggregate over the window, including this request;
 *   - RK_T_MISSING: a `by` field is missing (nothing was updated).
 *
 * A definition's identity (name, key fields, window, aggregate, aggregate
 * field, feedback label) is hashed and stored with its state, so changing any
 * of them starts the counter from zero instead of reading old state under a
 * new meaning; the old state is swept once idle. All counters with the same
 * key fields share one record per entity (crecord.h). */
#ifndef RK_STATE_COUNTERS_H
#define RK_STATE_COUNTERS_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/diag.h"
#include "lib/value.h"
#include "proto/txn.h"
#include "state/recent.h"
#include "state/store.h"

#define RK_COUNTER_BY_MAX 4   /* fields in a compound key */
#define RK_COUNTERS_MAX 64    /* counters in one set */

typedef enum rk_agg {
    RK_AGG_COUNT,    /* number of events */
    RK_AGG_SUM,      /* sum of an int field, saturating at the int64 limits */
    RK_AGG_DISTINCT, /* distinct values of a field: exact up to 64, then HyperLogLog */
} rk_agg;

typedef struct rk_counter_def {
    char name[RK_NAME_MAX];                  /* counter name, as used in rules */
    int nby;                                 /* key fields, 1..RK_COUNTER_BY_MAX */
    int by_slot[RK_COUNTER_BY_MAX];          /* txn slots of the key fields */
    char by_name[RK_COUNTER_BY_MAX][RK_NAME_MAX]; /* their names (identity; slots move between rule sets) */
    int64_t window_ms;                       /* 30 s .. 90 d */
    int agg;                                 /* an rk_agg */
    int field_slot;                          /* RK_AGG_SUM / RK_AGG_DISTINCT: txn slot of the field; else -1 */
    char field_name[RK_NAME_MAX];            /* its name (identity); "" for count */
    int feedback;                            /* RK_LABEL_NONE: fed by requests; RK_LABEL_FRAUD/LEGIT: fed by confirmed labels */
    uint64_t filter_id;                      /* hash of the `when:` text, 0 for none (identity: an edited filter starts fresh) */
} rk_counter_def;

typedef struct rk_counters rk_counters;

/* Validates and compiles n definitions (n may be 0). Returns 0 and sets *out,
 * or RK_EINVAL / RK_ERANGE (window) / RK_EEXISTS (duplicate name) /
 * RK_ETOOBIG (n > RK_COUNTERS_MAX) with diag->msg naming the counter
 * (diag may be NULL; file/line are left for the caller to fill). RK_ENOMEM. */
int rk_counters_new(const rk_counter_def *defs, int n, rk_counters **out, rk_diag *diag);
void rk_counters_free(rk_counters *c);

int rk_counters_count(const rk_counters *c);
const rk_counter_def *rk_counters_def(const rk_counters *c, int i);
/* The identity hash stored with counter i's state. */
uint64_t rk_counters_id(const rk_counters *c, int i);

/* Updates and reads every counter of c for one request, in w's transaction.
 *   txn   the request's values (key and aggregate fields by slot);
 *   ts    its event time in ms (the caller substitutes the server clock when
 *         the request has none);
 *   when  one flag per counter, the result of its `when:` filter (NULL = all
 *         true); a false flag reads the counter without counting this request;
 *   out   c's count values, one per counter, in definition order.
 * Feedback-fed counters are only read here; their keys are remembered and
 * stored by rk_recent_record so a later label can count them.
 * A sum whose field is missing or not an int, or a distinct whose field is
 * missing, counts nothing and returns the current value. An event older than
 * the record's window (relative to the newest event it has seen) changes
 * nothing; the value is then the window ending at that newest event.
 * txn, when and out must stay valid until commit/abort. Returns 0, RK_EINVAL
 * (no transaction), RK_ESTORE, RK_ECORRUPT (undecodable record). */
int rk_counters_apply(rk_store_worker *w, const rk_counters *c, const rk_txn *txn, int64_t ts,
                      const bool *when, rk_value *out);

/* Feeds a confirmed label to c's feedback counters, from what
 * rk_recent_feedback returned (fb, in the same transaction): each remembered key
 * whose counter is still defined identically in c and is fed by fb->label is
 * counted at the transaction's original event time; if the transaction
 * previously carried the other label, counters fed by that label have its
 * contribution taken back (count and sum; a distinct cannot forget a value).
 * Nothing happens when the label is unchanged. *napplied (may be NULL) gets the
 * number of counter updates. Returns 0, RK_EINVAL, RK_ESTORE, RK_ECORRUPT. */
int rk_counters_feedback(rk_store_worker *w, const rk_counters *c, const rk_feedback_info *fb,
                         int *napplied);

#endif
