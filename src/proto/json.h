/* JSON <-> msgpack conversion for the command-line tools (riskctl score, log
 * dump, test cases). Not used on the request path: it allocates freely.
 *
 * JSON numbers without a fraction or exponent become msgpack integers (so
 * `"amount": 1999` arrives as an int); any other number becomes a float64.
 * msgpack floats print so that they read back as floats (60.0, not 60). */
#ifndef RK_JSON_H
#define RK_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

/* Appends the msgpack encoding of one JSON value (text, len bytes; surrounding
 * white space allowed, anything else after the value is an error) to out, a
 * buffer the caller initialised with msgpack_sbuffer_init. Returns 0, or
 * RK_EPARSE with err set to "line L, column C: what was expected" (nothing is
 * appended to out then), or RK_ENOMEM. Nesting is limited to 64 levels. */
int rk_json_to_msgpack(const char *text, size_t len, msgpack_sbuffer *out, char *err,
                       size_t errlen);

/* Renders one msgpack value (the first in buf) as JSON into *out, a
 * NUL-terminated malloc'd string the caller frees. indent > 0 pretty-prints
 * with that many spaces a level; 0 prints one line. bin values print as
 * base64 strings, ext values as null. Returns 0, RK_EPARSE for malformed or
 * truncated msgpack, or RK_ENOMEM. */
int rk_msgpack_to_json(const uint8_t *buf, size_t len, int indent, char **out);

#endif
