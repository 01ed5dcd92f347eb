/* rk_strerror: the text of each RK_E* code, generated from RK_ERRNO_MAP. */
#include "lib/err.h"

const char *rk_strerror(int code)
{
    switch (code) {
    case RK_OK:
        return "success";
#define XX(name, c, text) \
    case RK_E##name:      \
        return text;
        RK_ERRNO_MAP(XX)
#undef XX
    }
    return "unknown error";
}
