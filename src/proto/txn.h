/* A transaction as the engine sees it: one value per slot.
 *
 * Slot layout, fixed for the lifetime of one compiled rule set:
 *   [0, RK_F__STD)                 the standard wire fields of RK_FIELD_MAP
 *   [RK_F__STD, +schema->n)        extra fields the rule set declares in `schema:`
 *   then counters and `model.score`, assigned by the rule compiler
 * The decoder fills the field slots; the pipeline fills counters and the model
 * score; the rule evaluator only reads. Strings borrow the request buffer. */
#ifndef RK_TXN_H
#define RK_TXN_H

#include <stddef.h>

#include "lib/value.h"

/* The standard request fields (DESIGN.md section 2): enum name, wire key, type,
 * whether required. One table feeds the decoder, the rule compiler and the docs. */
#define RK_FIELD_MAP(XX)                              \
    XX(ID, "id", RK_T_STR, 1)                         \
    XX(ACCOUNT, "account", RK_T_STR, 1)               \
    XX(AMOUNT, "amount", RK_T_INT, 1)                 \
    XX(TS, "ts", RK_T_INT, 0)                         \
    XX(CURRENCY, "currency", RK_T_STR, 0)             \
    XX(TYPE, "type", RK_T_STR, 0)                     \
    XX(CHANNEL, "channel", RK_T_STR, 0)               \
    XX(METHOD, "method", RK_T_STR, 0)                 \
    XX(CARD, "card", RK_T_STR, 0)                     \
    XX(DEVICE, "device", RK_T_STR, 0)                 \
    XX(IP, "ip", RK_T_STR, 0)                         \
    XX(EMAIL, "email", RK_T_STR, 0)                   \
    XX(MERCHANT, "merchant", RK_T_STR, 0)             \
    XX(COUNTRY, "country", RK_T_STR, 0)               \
    XX(IP_COUNTRY, "ip_country", RK_T_STR, 0)         \
    XX(CARD_COUNTRY, "card_country", RK_T_STR, 0)     \
    XX(MCC, "mcc", RK_T_INT, 0)

enum {
#define XX(name, key, type, req) RK_F_##name,
    RK_FIELD_MAP(XX)
#undef XX
    RK_F__STD, /* number of standard fields */
};

#define RK_MAX_SLOTS 256      /* fields + schema extras + counters + model.score */
#define RK_SCHEMA_MAX 64      /* extra fields a rule set may declare */
#define RK_STR_FIELD_MAX 128  /* longest id / account / standard string field, bytes */
#define RK_NAME_MAX 64        /* longest field, counter, list or rule name */

/* Wire key of standard field f ("id", "amount", ...); NULL when out of range. */
const char *rk_field_name(int f);
/* Type of standard field f. */
rk_type rk_field_type(int f);
/* Whether standard field f is required in a score request. */
int rk_field_required(int f);
/* Standard field index of a wire key, or -1. */
int rk_field_find(const char *key, size_t len);

/* Extra request fields declared by a rule set's `schema:`. Slot of entry i is
 * RK_F__STD + i. Immutable once the rule set is compiled. */
typedef struct rk_schema {
    int n; /* entries used */
    struct {
        char name[RK_NAME_MAX]; /* wire key */
        rk_type type;           /* RK_T_INT, RK_T_FLOAT, RK_T_STR or RK_T_BOOL */
    } f[RK_SCHEMA_MAX];
} rk_schema;

/* Slot of the extra field named by (key, len), or -1. schema may be NULL. */
int rk_schema_find(const rk_schema *schema, const char *key, size_t len);

/* The values of one transaction, indexed by slot. */
typedef struct rk_txn {
    rk_value v[RK_MAX_SLOTS];
} rk_txn;

#endif
