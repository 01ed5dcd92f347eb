/* Names of value types, as rule files and diagnostics spell them. */
#include "lib/value.h"

#include <string.h>

static const char *const type_names[] = {"missing", "int", "float", "str", "bool"};

const char *rk_type_name(rk_type t)
{
    return (unsigned)t < 5 ? type_names[t] : "?";
}

int rk_type_from_name(const char *name)
{
    for (int i = RK_T_INT; i <= RK_T_BOOL; i++)
        if (strcmp(name, type_names[i]) == 0)
            return i;
    return -1;
}
