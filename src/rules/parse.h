/* The rule language's recursive-descent parser and its syntax tree (internal
 * to src/rules).
 *
 * The tree lives in an rk_pool that the compiler frees when it is done; the
 * compiler annotates nodes in place (types, slots, lists) and folds constant
 * subtrees into literal nodes. Every node remembers two offsets: where its
 * text starts (for "argument N" and "expected a bool" errors) and its own
 * token (the operator, name or literal: for everything else). */
#ifndef RK_PARSE_H
#define RK_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/value.h"
#include "rules/lex.h"
#include "rules/list.h"

/* Nesting the grammar allows: parentheses, call arguments, `not` and unary
 * minus each count one level. Keeps the parser's C recursion bounded. */
#define RK_PARSE_MAX_DEPTH 64
/* Height of the tree: long `a or b or ...` chains are loops in the parser but
 * left-deep trees for the compiler, whose recursion this bounds. */
#define RK_PARSE_MAX_HEIGHT 1000

typedef enum rk_node_kind {
    RK_N_LIT,  /* a literal, or a subtree folded into one */
    RK_N_NAME, /* a field, counter or model.score */
    RK_N_CALL, /* a built-in function applied to args */
    RK_N_NEG,  /* unary minus of a */
    RK_N_NOT,  /* `not a` */
    RK_N_CONV, /* int a as a float: inserted by the compiler */
    RK_N_BIN,  /* a op b: arithmetic or comparison, op an rk_tok */
    RK_N_AND,  /* a and b */
    RK_N_OR,   /* a or b */
    RK_N_IN,   /* a in set (op 1: `not in`); the set is inline (args) or @name */
} rk_node_kind;

typedef struct rk_node rk_node;
struct rk_node {
    uint8_t kind;       /* an rk_node_kind */
    uint8_t op;         /* RK_N_BIN: the operator's rk_tok; RK_N_IN: 1 for `not in` */
    uint8_t type;       /* static type: set by the parser for literals, else by the compiler */
    uint16_t height;    /* 1 + the tallest child's height */
    uint32_t pos;       /* offset of the node's first token */
    uint32_t tok;       /* offset of its own token: operator, name, literal, `not` of `not in` */
    const char *name;   /* RK_N_NAME, RK_N_CALL: the name; RK_N_IN over @list: the list name */
    uint32_t name_len;  /* bytes of name */
    uint32_t list_pos;  /* RK_N_IN over @list: offset of the '@' */
    rk_node *a, *b;     /* operands; unary nodes and `in` use a only */
    rk_node *args;      /* RK_N_CALL arguments, RK_N_IN inline set members; linked by next */
    rk_node *next;      /* the following argument or set member */
    int nargs;          /* length of the args chain */
    rk_value v;         /* RK_N_LIT: the value; strings point into the pool */
    int slot;           /* RK_N_NAME: slot, set by the compiler */
    int func;           /* RK_N_CALL: index into rk_funcs, set by the compiler */
    const rk_list *list; /* RK_N_IN: the set to test, set by the compiler; NULL for a dynamic list */
    int dyn_index;      /* RK_N_IN over a dynamic @list: its rk_named_list.dyn_index */
};

/* Bump allocation in malloc'd chunks, freed all at once. */
typedef struct rk_pool {
    struct rk_pool_chunk *head; /* most recent chunk; each links to the previous */
} rk_pool;

/* n bytes aligned to 8, or NULL when out of memory. */
void *rk_pool_alloc(rk_pool *p, size_t n);
/* Frees every chunk; the pool is empty and reusable afterwards. */
void rk_pool_free(rk_pool *p);
/* A zeroed node of the given kind, or NULL when out of memory. */
rk_node *rk_node_new(rk_pool *p, rk_node_kind kind, uint32_t pos, uint32_t tok);

/* Parses the whole of src->text into a tree allocated from pool. Returns 0 and
 * sets *out, or RK_EPARSE (syntax, nesting) / RK_ENOMEM with src->diag set. */
int rk_parse(const rk_src *src, rk_pool *pool, rk_node **out);

/* Writes the tree as an S-expression, `(and (>= amount 100000) (!= country
 * card_country))`, into buf (truncated to size). For tests. Returns buf. */
char *rk_node_dump(const rk_node *n, char *buf, size_t size);

#endif
