/* libFuzzer target for the JSON <-> msgpack conversion, both directions on
 * every input:
 *   - as JSON text: when it converts, printing the msgpack back (one line and
 *     pretty) and converting that again must give the very same bytes, and a
 *     failure must leave the buffer as it was with a "line L, column C: "
 *     message;
 *   - as msgpack: when it prints, the JSON must convert back without error
 *     (the printer never writes what the parser refuses).
 *
 *   build/fuzz_json -max_len=4096 tests/fuzz/corpus/json */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* JSON text -> msgpack, appended after a marker byte to test "nothing is
 * appended on failure". Returns the rk_json_to_msgpack code. */
static int convert(const char *text, size_t len, msgpack_sbuffer *sb)
{
    char err[128];
    msgpack_sbuffer_init(sb);
    msgpack_sbuffer_write(sb, "@", 1);
    int rc = rk_json_to_msgpack(text, len, sb, err, sizeof err);
    if (rc == RK_EPARSE) {
        check(sb->size == 1);
        check(strncmp(err, "line ", 5) == 0 && strstr(err, ", column ") != NULL);
    } else {
        check(rc == 0 || rc == RK_ENOMEM);
    }
    return rc;
}

/* Prints the msgpack after the marker with this indent, converts it back and
 * checks the bytes are the same. */
static void round_trip(const msgpack_sbuffer *sb, int indent)
{
    char *text = NULL;
    int rc = rk_msgpack_to_json((const uint8_t *)sb->data + 1, sb->size - 1, indent, &text);
    if (rc == RK_ENOMEM)
        return;
    check(rc == 0 && text != NULL);
    msgpack_sbuffer again;
    rc = convert(text, strlen(text), &again);
    check(rc == 0 || rc == RK_ENOMEM);
    if (rc == 0)
        check(again.size == sb->size && memcmp(again.data, sb->data, sb->size) == 0);
    msgpack_sbuffer_destroy(&again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_sbuffer sb;
    if (convert((const char *)data, size, &sb) == 0) {
        round_trip(&sb, 0);
        round_trip(&sb, 2);
    }
    msgpack_sbuffer_destroy(&sb);

    char *text = NULL;
    int rc = rk_msgpack_to_json(data, size, size % 3, &text);
    check(rc == 0 || rc == RK_EPARSE || rc == RK_ENOMEM);
    if (rc == 0) {
        check(convert(text, strlen(text), &sb) != RK_EPARSE);
        msgpack_sbuffer_destroy(&sb);
    } else {
        check(text == NULL);
    }
    free(text);
    return 0;
}
