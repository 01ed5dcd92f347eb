/* YAML documents as riskd's rule loader reads them: libyaml's document API
 * plus what a loader needs on top of it to speak to people — a position for
 * every node, strict readings of scalars (an int is a plain decimal, a bool is
 * true or false), and mapping checks that catch what libyaml lets through
 * (duplicate keys) or cannot know (unknown keys, with "did you mean").
 *
 * Positions are 1-based lines and columns, columns counted in characters as
 * libyaml counts them. Node pointers are valid until rk_yn_free. */
#ifndef RK_YAMLNODE_H
#define RK_YAMLNODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "lib/diag.h"

typedef struct rk_yn_doc {
    yaml_document_t doc; /* the parsed document; valid after a successful rk_yn_parse */
    const char *file;    /* path shown in diagnostics (borrowed) */
    const char *text;    /* the source (borrowed), to place block scalars' text */
    size_t len;          /* its length in bytes */
} rk_yn_doc;

/* Parses text (len bytes) as a stream holding at most one YAML document.
 * Returns 0 (then rk_yn_free d), RK_EPARSE with diag at the offending spot
 * ("invalid YAML: ..." or a second document), or RK_ENOMEM. */
int rk_yn_parse(rk_yn_doc *d, const char *file, const char *text, size_t len, rk_diag *diag);
void rk_yn_free(rk_yn_doc *d);

/* The root node; NULL for an empty document. */
yaml_node_t *rk_yn_root(rk_yn_doc *d);
/* Child node by libyaml index (sequence items, mapping pairs). */
yaml_node_t *rk_yn_node(rk_yn_doc *d, int index);
/* The value stored under key in a mapping, or NULL; *keynode (when keynode
 * is not NULL) gets the key's node, to point diagnostics at the key. */
yaml_node_t *rk_yn_get(rk_yn_doc *d, const yaml_node_t *map, const char *key,
                       yaml_node_t **keynode);

static inline int rk_yn_line(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }
static inline int rk_yn_col(const yaml_node_t *n) { return (int)n->start_mark.column + 1; }

/* Sets diag to "file:line:col: message" at node n and returns code, so that
 * callers can `return rk_yn_fail(...)`. */
int rk_yn_fail(const rk_yn_doc *d, const yaml_node_t *n, rk_diag *diag, int code,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A scalar's text (NUL-terminated by libyaml), or NULL for other nodes. */
const char *rk_yn_str(const yaml_node_t *n);
/* Whether n is a plain null: empty, `~` or `null`. */
bool rk_yn_is_null(const yaml_node_t *n);
/* Whether n is null, `{}` or `[]`: a key written but with nothing in it. */
bool rk_yn_is_empty(const yaml_node_t *n);
/* Strict scalar readings; false (out untouched) unless n is a plain scalar of
 * that form. Ints: optional sign and decimal digits within int64. Numbers:
 * ints or decimal floats, finite. Bools: true/false (also True, TRUE...). */
bool rk_yn_int(const yaml_node_t *n, int64_t *out);
bool rk_yn_number(const yaml_node_t *n, double *out);
bool rk_yn_bool(const yaml_node_t *n, bool *out);
/* "a mapping", "a sequence" or "text", for "must be" messages. */
const char *rk_yn_kind(const yaml_node_t *n);

/* Where a scalar's text starts in the file, and the column its continuation
 * lines start at, as rk_expr_env wants them. Plain scalars start at the node;
 * quoted ones one column after the quote; block scalars (`|`, `>`) on the
 * line after the indicator, at the content's indentation. Exact for plain
 * and literal scalars; after an escape sequence in a double-quoted scalar, or
 * past the first line of a folded or multi-line flow scalar (which libyaml
 * joins with spaces), columns are approximate. */
void rk_yn_text_pos(const rk_yn_doc *d, const yaml_node_t *n, int *line, int *col,
                    int *cont_col);

/* Checks that the keys of map (a mapping node) are scalars, each written once and
 * each one of keys[0..nkeys) ("unknown key 'rulez' (did you mean 'rules'?)").
 * Returns 0 or RK_EPARSE with diag set at the first offending key. */
int rk_yn_check_keys(rk_yn_doc *d, const yaml_node_t *map, const char *const *keys,
                     size_t nkeys, rk_diag *diag);

#endif
