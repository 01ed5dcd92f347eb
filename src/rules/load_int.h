/* Inside the rule-set loader: the state shared by load.c (files, includes,
 * schema, thresholds, static lists, rules), load_state.c (what a rule file
 * declares for the state store: velocity counters and dynamic lists) and
 * load_model.c (the scoring model and its features). Nothing outside those
 * files includes this header.
 *
 * Loading runs in two phases (see load.c). Phase one walks the YAML files and
 * keeps, for everything that needs the whole rule set to be checked, its text
 * and where it was written; phase two resolves names against the complete
 * set of fields and lists and compiles every expression. Everything the
 * loader holds between the phases is freed when loading ends, whatever the
 * outcome; everything in L->rs belongs to the rule set. */
#ifndef RK_LOAD_INT_H
#define RK_LOAD_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "rules/ruleset_int.h"
#include "rules/yamlnode.h"

#define INCLUDE_DEPTH_MAX 16 /* levels of include below the top file */

/* An expression between the two phases: its text and where it sits. */
typedef struct expr_src {
    char *text;   /* copy of the YAML scalar; NULL when there is none */
    size_t len;   /* its length (it may hold NULs from escapes) */
    int file;     /* index into rs->files */
    int line;     /* where the text starts, as rk_expr_env wants it */
    int col;      /* column of its first character */
    int cont_col; /* column its continuation lines start at */
} expr_src;

/* A counter as its `counters:` entry declared it (load_state.c). */
typedef struct counter_src {
    char *name;                          /* an identifier, shorter than RK_NAME_MAX */
    rk_srcpos pos;                       /* where the name was written */
    int nby;                             /* key fields, 1..RK_COUNTER_BY_MAX */
    char *by[RK_COUNTER_BY_MAX];         /* their names, as written */
    rk_srcpos by_pos[RK_COUNTER_BY_MAX]; /* where each was written */
    int64_t window_ms;                   /* RK_WINDOW_MIN_MS..RK_WINDOW_MAX_MS */
    int agg;                             /* an rk_agg */
    char *field;                         /* `sum:` / `distinct:` field; NULL for a count */
    rk_srcpos field_pos;                 /* where it was written */
    int feedback;                        /* an rk_label: RK_LABEL_NONE unless `feedback:` */
    expr_src when;                       /* `when:` filter; text NULL when none */
} counter_src;

/* What a dynamic list's `add_on_fraud:` named, until fields are known. */
typedef struct dynlist_src {
    char *field;   /* the field, or NULL when the list has no add_on_fraud */
    rk_srcpos pos; /* where it was written */
} dynlist_src;

/* A feature declared under `model: features:`, until symbols are known. */
typedef struct feature_src {
    char *name;    /* an identifier, shorter than RK_NAME_MAX */
    rk_srcpos pos; /* where the name was written */
    expr_src expr; /* its expression */
} feature_src;

/* What the `model:` section declared (load_model.c). The model file itself is
 * loaded in phase one, into rs->model. */
typedef struct model_src {
    rk_srcpos file_pos; /* where `file:`'s path was written (valid when rs->model is set) */
    feature_src *decl;  /* declared features, in order */
    int ndecl;          /* entries used in decl */
    int cap_decl;       /* allocated entries of decl */
    int explain_top;    /* `explain_top:`; 0 when not given */
} model_src;

/* One file on the include chain. */
typedef struct chain_link {
    char *identity; /* canonical path (realpath); NULL for text loaded from memory */
    int file;       /* index into rs->files */
} chain_link;

typedef struct loader {
    rk_ruleset *rs;                          /* being built; freed by the caller on failure */
    rk_diag *diag;                           /* the first problem */
    expr_src *src;                           /* rules' conditions, parallel to rs->rules */
    int cap_rules;                           /* allocated entries of rs->rules */
    int cap_src;                             /* allocated entries of src */
    int cap_lists;                           /* allocated entries of rs->lists */
    int cap_files;                           /* allocated entries of rs->files */
    rk_srcpos schema_pos[RK_SCHEMA_MAX];     /* where each schema field was declared */
    chain_link chain[INCLUDE_DEPTH_MAX + 1]; /* the top file, then each include being loaded */
    int depth;                               /* entries used in chain */
    char **seen;                             /* identities of every file loaded so far */
    int nseen;                               /* entries used in seen */
    int cap_seen;                            /* allocated entries of seen */
    counter_src *counters;                   /* every counter declared, in load order */
    int ncounters;                           /* entries used in counters */
    int cap_counters;                        /* allocated entries of counters */
    dynlist_src *dyn;                        /* parallel to rs->dynlists */
    int ndyn;                                /* entries used in dyn */
    int cap_dyn;                             /* allocated entries of dyn */
    int cap_dynlists;                        /* allocated entries of rs->dynlists */
    model_src model;                         /* the `model:` section */
} loader;

/* One file being walked. */
typedef struct file_ctx {
    rk_yn_doc doc;   /* its YAML document */
    int file;        /* index into rs->files */
    const char *dir; /* directory that relative paths in it start from ("" = cwd) */
    bool top;        /* the top-level rule file (not an include) */
} file_ctx;

static inline rk_srcpos rk_load_pos(const file_ctx *f, const yaml_node_t *n)
{
    return (rk_srcpos){.file = f->file, .line = rk_yn_line(n), .col = rk_yn_col(n)};
}

static inline const char *rk_load_file_name(const loader *L, int file)
{
    return L->rs->files[file];
}

/* Makes room for one more element in a growable array of n used entries.
 * Returns 0 or RK_ENOMEM (the array is then untouched). */
int rk_load_grow(void **arr, int *cap, int n, size_t size);
/* An identifier ([A-Za-z_][A-Za-z0-9_]*) of exactly len bytes: what the
 * expression lexer reads as one name. */
bool rk_load_is_ident(const char *s, size_t len);
/* Whether s is a word the expression language reserves (and, or, not, in,
 * true, false): a field or counter of that name could never be read. */
bool rk_load_is_keyword(const char *s);
/* Reads a whole regular file of at most max bytes (NUL-terminated). Returns 0,
 * RK_EIO with *why set to a reason a person understands, or RK_ENOMEM. */
int rk_load_read_file(const char *path, size_t max, char **text, size_t *len, const char **why);
/* dir + "/" + rel, or rel when it is absolute or dir is "" (malloc'd; NULL
 * when out of memory): how paths in a rule file are relative to it. */
char *rk_load_join_path(const char *dir, const char *rel);
/* A phase-two problem at a remembered position: sets L->diag and returns code. */
int rk_load_fail_at(loader *L, rk_srcpos at, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Keeps the text of expression scalar n and where it starts, for phase two.
 * Returns 0 or RK_ENOMEM. */
int rk_load_keep_expr(file_ctx *f, const yaml_node_t *n, expr_src *out);
/* Compiles s (phase two) over the rule set's symbols as an expression of type
 * want (RK_T_MISSING: any type); with nvisible > 0, only the first nvisible
 * symbols may be read, the others being refused with why ("'x' cannot be
 * used here (why)") or, when msg is not NULL, with msg. Returns 0 or the
 * compiler's code with L->diag set. */
int rk_load_compile(loader *L, const expr_src *s, rk_type want, int nvisible, const char *why,
                    const char *msg, rk_expr **out);

/* ---- load_state.c ---- */

/* Phase one of a `counters:` mapping: checks each entry's keys and values and
 * keeps it in L->counters. Returns 0 or a code with L->diag set. */
int rk_load_counters(loader *L, file_ctx *f, yaml_node_t *key, yaml_node_t *val);
/* Phase one of a `{dynamic: true, ...}` list body (map), for list def, whose
 * name is already checked: marks def dynamic and appends its rs->dynlists
 * entry. Returns 0 or a code with L->diag set. */
int rk_load_dynlist(loader *L, file_ctx *f, rk_list_def *def, yaml_node_t *map);
/* Phase two, before symbols are built: resolves the fields counters and
 * dynamic lists name, then builds rs->counters (with rk_counters_new) and
 * sets rs->ncounters and rs->counter_base. */
int rk_load_state_resolve(loader *L);
/* Phase two, once rs->syms is complete: compiles counters' `when` filters
 * into rs->counter_when. */
int rk_load_state_compile(loader *L);
/* Frees what phase one kept for counters and dynamic lists. */
void rk_load_state_free(loader *L);

/* ---- load_model.c ---- */

/* Phase one of the `model:` mapping: loads the model file, keeps the declared
 * features and explain_top. Returns 0 or a code with L->diag set. */
int rk_load_model(loader *L, file_ctx *f, yaml_node_t *key, yaml_node_t *val);
/* Phase two, once rs->syms is complete (model.score included): compiles the
 * declared features, binds every other model feature to the field or counter
 * of its name, and maps the model's inputs onto the feature vector. */
int rk_load_model_compile(loader *L);
/* Frees what phase one kept for the model section. */
void rk_load_model_free(loader *L);

#endif
