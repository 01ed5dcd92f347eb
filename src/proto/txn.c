/* The standard field table and schema look-ups. Field and schema look-ups are
 * linear scans with a length check first: there are at most ~80 names, and the
 * comparison is cheaper than hashing for keys this short. */
#include "proto/txn.h"

#include <string.h>

static const struct {
    const char *key; /* wire key */
    size_t len;      /* strlen(key), so look-ups compare lengths first */
    rk_type type;    /* value type */
    int required;    /* required in a score request */
} fields[RK_F__STD] = {
#define XX(name, key, type, req) {key, sizeof key - 1, type, req},
    RK_FIELD_MAP(XX)
#undef XX
};

const char *rk_field_name(int f)
{
    return f >= 0 && f < RK_F__STD ? fields[f].key : NULL;
}

rk_type rk_field_type(int f)
{
    return f >= 0 && f < RK_F__STD ? fields[f].type : RK_T_MISSING;
}

int rk_field_required(int f)
{
    return f >= 0 && f < RK_F__STD ? fields[f].required : 0;
}

int rk_field_find(const char *key, size_t len)
{
    for (int f = 0; f < RK_F__STD; f++)
        if (fields[f].len == len && memcmp(fields[f].key, key, len) == 0)
            return f;
    return -1;
}

int rk_schema_find(const rk_schema *schema, const char *key, size_t len)
{
    if (!schema || len >= RK_NAME_MAX)
        return -1;
    for (int i = 0; i < schema->n; i++)
        if (memcmp(schema->f[i].name, key, len) == 0 && schema->f[i].name[len] == '\0' &&
            strlen(schema->f[i].name) == len)
            return RK_F__STD + i;
    return -1;
}
