/* A set of values for `in` tests: inline `[...]` sets and named `@lists`.
 *
 * Members are stored as their text (strings as-is, integers in decimal), in an
 * open-addressing hash table built at load time and read-only afterwards, so
 * lookups are allocation-free and safe from any number of threads. */
#ifndef RK_LIST_H
#define RK_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rk_list rk_list;

rk_list *rk_list_new(void);
void rk_list_free(rk_list *l);
/* Adds a member (duplicates are ignored). Returns 0 or RK_ENOMEM. Load time only. */
int rk_list_add(rk_list *l, const char *s, size_t len);
/* Adds an integer member, stored as its decimal text. */
int rk_list_add_int(rk_list *l, int64_t v);
bool rk_list_has(const rk_list *l, const char *s, size_t len);
bool rk_list_has_int(const rk_list *l, int64_t v);
size_t rk_list_size(const rk_list *l);
/* Whether every member is the decimal text of an int64 (an empty list counts). */
bool rk_list_all_int(const rk_list *l);

#endif
