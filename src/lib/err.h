/* Error codes shared by every riskd module.
 *
 * Fallible functions return 0 on success or one of these negative codes. The
 * list is written once, here, so the enum and rk_strerror() cannot drift. */
#ifndef RK_ERR_H
#define RK_ERR_H

#define RK_ERRNO_MAP(XX)                                   \
    XX(NOMEM, -1, "out of memory")                         \
    XX(INVAL, -2, "invalid argument")                      \
    XX(IO, -3, "input/output error")                       \
    XX(PARSE, -4, "syntax error")                          \
    XX(TYPE, -5, "type error")                             \
    XX(NOTFOUND, -6, "not found")                          \
    XX(RANGE, -7, "value out of range")                    \
    XX(TOOBIG, -8, "too large")                            \
    XX(UNSUPPORTED, -9, "not supported")                   \
    XX(ZMQ, -10, "messaging error")                        \
    XX(TIMEOUT, -11, "timed out")                          \
    XX(EXISTS, -12, "already exists")                      \
    XX(STORE, -13, "storage error")                        \
    XX(CORRUPT, -14, "corrupt data")                       \
    XX(FULL, -15, "no room")

enum {
    RK_OK = 0,
#define XX(name, code, text) RK_E##name = (code),
    RK_ERRNO_MAP(XX)
#undef XX
};

/* Text for a code from RK_ERRNO_MAP (or "unknown error"); never NULL. */
const char *rk_strerror(int code);

#endif
