/* Sets for `in`: an open-addressing hash table (linear probing, power-of-two
 * capacity, at most 70% full) over the members' texts, which are stored back
 * to back in one buffer. Built at load time, read-only afterwards: lookups
 * neither allocate nor write, so any number of workers may share a list.
 *
 * Integers are members in their decimal text, and rk_list_has_int formats its
 * argument into a stack buffer and looks that text up. So that a member
 * written with leading zeros (MCC "0742", as card networks print it) still
 * matches the int 742, such a member also gets an alias entry under its
 * canonical text; aliases answer rk_list_has_int only, so `"742" in @list`
 * stays false unless "742" itself was added. */
#include "rules/list.h"

#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

#define EMPTY UINT32_MAX /* off of a free table entry */
#define INT_TEXT_MAX 21  /* "-9223372036854775808" plus one */

typedef struct entry {
    uint64_t hash;      /* of the text: compared first, reused when the table grows */
    uint32_t off;       /* offset of the text in the list's buffer; EMPTY when free */
    uint32_t len : 31;  /* bytes of text */
    uint32_t alias : 1; /* canonical text of an int member written otherwise */
} entry;

struct rk_list {
    entry *tab;      /* cap entries */
    size_t cap;      /* a power of two, or 0 before the first add */
    size_t used;     /* occupied entries, aliases included */
    size_t n;        /* members (aliases excluded) */
    size_t nonint;   /* members that are not the decimal text of an int64 */
    char *text;      /* member and alias texts, back to back */
    size_t text_len; /* bytes of text used */
    size_t text_cap; /* bytes of text allocated */
};

/* FNV-1a: short keys (country codes, tokens, ids), no allocation, good spread. */
static uint64_t hash(const char *s, size_t len)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

/* The entry holding (s, len), or the free entry where it would go; NULL while
 * the table is unallocated. The table is never full, so probing ends. */
static entry *find(const rk_list *l, const char *s, size_t len, uint64_t h)
{
    if (!l->cap)
        return NULL;
    size_t mask = l->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        entry *e = &l->tab[i];
        if (e->off == EMPTY ||
            (e->hash == h && e->len == len && (len == 0 || memcmp(l->text + e->off, s, len) == 0)))
            return e;
    }
}

static int rehash(rk_list *l, size_t cap)
{
    entry *tab = malloc(cap * sizeof *tab);
    if (!tab)
        return RK_ENOMEM;
    for (size_t i = 0; i < cap; i++)
        tab[i].off = EMPTY;
    for (size_t i = 0; i < l->cap; i++) {
        if (l->tab[i].off == EMPTY)
            continue;
        size_t j = l->tab[i].hash & (cap - 1);
        while (tab[j].off != EMPTY)
            j = (j + 1) & (cap - 1);
        tab[j] = l->tab[i];
    }
    free(l->tab);
    l->tab = tab;
    l->cap = cap;
    return 0;
}

/* Adds (s, len) as a member or an alias. Returns 1 when it became a member
 * (new, or an alias promoted), 0 when nothing changed, or RK_ENOMEM. */
static int insert(rk_list *l, const char *s, size_t len, bool alias)
{
    uint64_t h = hash(s, len);
    entry *e = find(l, s, len, h);
    if (e && e->off != EMPTY) {
        if (!e->alias || alias)
            return 0;
        e->alias = 0;
        l->n++;
        return 1;
    }
    if (len > INT32_MAX || l->text_len + len > EMPTY - 1)
        return RK_ENOMEM; /* offsets and lengths are 32-bit */
    if ((l->used + 1) * 10 > l->cap * 7) {
        int rc = rehash(l, l->cap ? l->cap * 2 : 8);
        if (rc)
            return rc;
        e = find(l, s, len, h);
    }
    if (l->text_len + len > l->text_cap) {
        size_t cap = l->text_cap ? l->text_cap * 2 : 64;
        while (cap < l->text_len + len)
            cap *= 2;
        char *text = realloc(l->text, cap);
        if (!text)
            return RK_ENOMEM;
        l->text = text;
        l->text_cap = cap;
    }
    if (len)
        memcpy(l->text + l->text_len, s, len);
    *e = (entry){.hash = h, .off = (uint32_t)l->text_len, .len = (uint32_t)len, .alias = alias};
    l->text_len += len;
    l->used++;
    l->n += !alias;
    return !alias;
}

/* Decimal text of v into buf (INT_TEXT_MAX bytes, not terminated); returns its length. */
static size_t format_int(int64_t v, char *buf)
{
    char digits[20];
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    size_t n = 0, o = 0;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        buf[o++] = '-';
    while (n)
        buf[o++] = digits[--n];
    return o;
}

/* Whether s is ["-"] digits within int64 range (leading zeros allowed). */
static bool parse_int(const char *s, size_t len, int64_t *out)
{
    size_t i = len > 0 && s[0] == '-';
    if (i == len)
        return false;
    uint64_t u = 0, limit = i ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (u > (limit - d) / 10)
            return false;
        u = u * 10 + d;
    }
    *out = s[0] == '-' ? (int64_t)(0 - u) : (int64_t)u;
    return true;
}

rk_list *rk_list_new(void)
{
    return calloc(1, sizeof(rk_list));
}

void rk_list_free(rk_list *l)
{
    if (!l)
        return;
    free(l->tab);
    free(l->text);
    free(l);
}

int rk_list_add(rk_list *l, const char *s, size_t len)
{
    if (!l || (!s && len))
        return RK_EINVAL;
    int rc = insert(l, s ? s : "", len, false);
    if (rc <= 0)
        return rc;
    int64_t v;
    if (!parse_int(s, len, &v)) {
        l->nonint++;
        return 0;
    }
    char buf[INT_TEXT_MAX];
    size_t n = format_int(v, buf);
    if (n != len || memcmp(buf, s, n) != 0)
        rc = insert(l, buf, n, true);
    return rc < 0 ? rc : 0;
}

int rk_list_add_int(rk_list *l, int64_t v)
{
    char buf[INT_TEXT_MAX];
    return rk_list_add(l, buf, format_int(v, buf));
}

bool rk_list_has(const rk_list *l, const char *s, size_t len)
{
    if (!l || (!s && len))
        return false;
    const entry *e = find(l, s, len, hash(s, len));
    return e && e->off != EMPTY && !e->alias;
}

bool rk_list_has_int(const rk_list *l, int64_t v)
{
    if (!l)
        return false;
    char buf[INT_TEXT_MAX];
    size_t n = format_int(v, buf);
    const entry *e = find(l, buf, n, hash(buf, n));
    return e && e->off != EMPTY;
}

size_t rk_list_size(const rk_list *l)
{
    return l ? l->n : 0;
}

bool rk_list_all_int(const rk_list *l)
{
    return !l || l->nonint == 0;
}
