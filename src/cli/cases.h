/* Case files for `riskctl test`: reading them, not running them.
 *
 * A case file names a rule file and lists cases, each a transaction, optional
 * counter and model-score overrides, optional members of dynamic lists, and
 * the expected outcome:
 *
 *   rules: default.yaml            # relative to the case file
 *   cases:
 *     - name: large payment goes to review
 *       txn: {id: t1, account: a1, amount: 250000}
 *       counters: {acct_txn_1h: 7}
 *       lists: {blocked_cards: [tok_1, tok_2]}
 *       model_score: 0.93
 *       expect: {decision: review, reasons: [large_amount], shadow_decision: review,
 *                shadow: [], score: 40}
 *
 * Reading checks the shape (known keys, required keys, types of the expected
 * values) and turns each `txn` mapping into the msgpack map a gateway would
 * send, so that the test decodes it with the server's own decoder. What needs
 * the rule set (counter and list names, the decode itself) is checked by the
 * runner.
 * All strings in the result borrow the parsed YAML document, which the case
 * file owns. */
#ifndef RK_CLI_CASES_H
#define RK_CLI_CASES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "lib/diag.h"
#include "lib/value.h"
#include "rules/decision.h"

/* A position in the case file, 1-based. */
typedef struct rk_case_pos {
    int line; /* 1-based line */
    int col;  /* 1-based column */
} rk_case_pos;

/* A named value placed straight into a slot: a counter or the model score. */
typedef struct rk_case_override {
    const char *name;     /* counter name, or "model.score" */
    rk_case_pos at;       /* the key, for "unknown counter" */
    rk_case_pos value_at; /* the value, for type errors */
    rk_value value;       /* RK_T_INT, RK_T_FLOAT, or RK_T_MISSING for `null` */
} rk_case_override;

/* The members a case gives a dynamic list (`lists: {NAME: [A, B]}`). */
typedef struct rk_case_list {
    const char *name;      /* the list's name, without '@' */
    rk_case_pos at;        /* the key, for "unknown list" */
    const char **members;  /* each member's text as written; malloc'd */
    size_t *lens;          /* their lengths in bytes; malloc'd */
    int nmembers;          /* entries in members and lens */
} rk_case_list;

/* A top-level key of a case's `txn`, so decode errors can point at it. */
typedef struct rk_case_key {
    const char *name; /* the key text */
    rk_case_pos at;   /* where it is */
} rk_case_key;

typedef struct rk_case {
    const char *name;             /* the case's `name` */
    rk_case_pos at;               /* the case's first key: failure lines point here */
    uint8_t *txn;                 /* `txn` as msgpack (`id: NAME` added if absent); malloc'd */
    size_t txn_len;               /* its length in bytes */
    rk_case_pos txn_at;           /* the `txn` value, for decode errors naming no key */
    rk_case_key *txn_keys;        /* top-level keys of `txn`, in file order; malloc'd */
    int ntxn_keys;                /* entries in txn_keys */
    rk_case_override *counters;   /* `counters` overrides, in file order; malloc'd */
    int ncounters;                /* entries in counters */
    rk_case_list *lists;          /* `lists`: dynamic lists' members, in file order; malloc'd */
    int nlists;                   /* entries in lists */
    bool has_model_score;         /* `model_score` given */
    rk_case_override model_score; /* its value, named "model.score" */

    rk_verdict decision;          /* expect.decision (required) */
    bool has_reasons;             /* expect.reasons given */
    const char **reasons;         /* expected live rule ids, in order; malloc'd */
    int nreasons;                 /* entries in reasons */
    bool has_shadow;              /* expect.shadow given */
    const char **shadow;          /* expected shadow rule ids, in order; malloc'd */
    int nshadow;                  /* entries in shadow */
    bool has_shadow_decision;     /* expect.shadow_decision given */
    rk_verdict shadow_decision;   /* its value */
    bool has_score;               /* expect.score given */
    double score;                 /* its value; compared with a 1e-9 tolerance */
} rk_case;

typedef struct rk_case_file {
    const char *path;     /* the case file as the user named it (borrowed) */
    char *rules;          /* the rule file, resolved against the case file's directory; malloc'd */
    rk_case_pos rules_at; /* the `rules` value */
    rk_case *cases;       /* in file order; malloc'd */
    int ncases;           /* entries in cases */
    yaml_document_t doc;  /* the parsed file; owns every borrowed string above */
    bool has_doc;         /* doc was loaded and must be deleted */
} rk_case_file;

/* Reads the case file at path (which must outlive the result). Returns 0 and
 * sets *out, or a negative code with diag set to `path:line:col: message`:
 * RK_EIO (unreadable), RK_EPARSE (not YAML), RK_EINVAL (not a case file: an
 * unknown or missing key, a wrong type), RK_ENOMEM. */
int rk_case_file_load(const char *path, rk_case_file **out, rk_diag *diag);
/* Frees a case file; cf may be NULL. */
void rk_case_file_free(rk_case_file *cf);

#endif
