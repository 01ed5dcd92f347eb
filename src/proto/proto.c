/* Names of the protocol's enumerations: wire error codes and operations, each
 * generated from its X-macro table in proto.h so that the enum, the wire text
 * and the admin flag cannot drift apart; and the quoting of request text in
 * error messages, shared by the decoder and the admin ops. */
#include "proto/proto.h"

#include <string.h>

static const char *const wire_err_names[RK_WERR__COUNT] = {
    [RK_WERR_NONE] = "none",
#define XX(name, text) [RK_WERR_##name] = text,
    RK_WIRE_ERR_MAP(XX)
#undef XX
};

static const struct {
    const char *name; /* the wire `op` value */
    bool admin;       /* accepted only on the admin endpoint */
} ops[RK_OP__COUNT] = {
#define XX(name, text, adm) [RK_OP_##name] = {text, adm},
    RK_OP_MAP(XX)
#undef XX
};

/* An out-of-range code is a bug in the caller; naming it "internal" keeps the
 * wire honest rather than sending garbage. */
const char *rk_wire_err_name(rk_wire_err e)
{
    return (unsigned)e < RK_WERR__COUNT ? wire_err_names[e] : "internal";
}

const char *rk_op_name(rk_op op)
{
    return (unsigned)op < RK_OP__COUNT ? ops[op].name : NULL;
}

bool rk_op_is_admin(rk_op op)
{
    return (unsigned)op < RK_OP__COUNT && ops[op].admin;
}

/* Client-controlled text must not be able to break a log line or a
 * terminal: everything outside printable ASCII is escaped. */
const char *rk_proto_printable(char *dst, size_t cap, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t i;
    for (i = 0; i < n && i < 40 && o + 5 < cap; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    if (i < n && o + 4 < cap) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
    return dst;
}
