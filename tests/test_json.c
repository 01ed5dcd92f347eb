/* Tests of the JSON <-> msgpack conversion (src/proto/json.c): round trips,
 * how numbers are typed each way, string escapes and UTF-8, exact error
 * messages with line and column, the nesting limit, and the printer's
 * treatment of the msgpack types JSON lacks (bin, ext, non-string keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/err.h"
#include "proto/json.h"

static msgpack_sbuffer sb;
static char err[256];

static int setup(void **state)
{
    msgpack_sbuffer_init(&sb);
    err[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

static int to_mp(const char *json)
{
    msgpack_sbuffer_clear(&sb);
    return rk_json_to_msgpack(json, strlen(json), &sb, err, sizeof err);
}

/* JSON -> msgpack -> JSON (one line) gives want. */
static void round_trip(const char *json, const char *want)
{
    char *text = NULL;
    if (to_mp(json) != 0)
        fail_msg("%s: %s", json, err);
    assert_int_equal(rk_msgpack_to_json((const uint8_t *)sb.data, sb.size, 0, &text), 0);
    if (strcmp(text, want) != 0)
        fail_msg("%s printed as %s, want %s", json, text, want);
    free(text);
}

/* JSON text converts to exactly these msgpack bytes. */
static void packs_as(const char *json, const char *bytes, size_t n)
{
    if (to_mp(json) != 0)
        fail_msg("%s: %s", json, err);
    assert_int_equal(sb.size, n);
    assert_memory_equal(sb.data, bytes, n);
}

static void fails_with(const char *json, size_t len, const char *msg)
{
    msgpack_sbuffer_clear(&sb);
    msgpack_sbuffer_write(&sb, "keep", 4);
    int rc = rk_json_to_msgpack(json, len, &sb, err, sizeof err);
    if (rc != RK_EPARSE || strcmp(err, msg) != 0)
        fail_msg("%s: rc %d, '%s', want '%s'", json, rc, err, msg);
    /* nothing appended on failure */
    assert_int_equal(sb.size, 4);
}

#define FAILS(json, msg) fails_with(json, sizeof(json) - 1, msg)

/* msgpack bytes print as want, with the given indent. */
static void prints_as(const char *bytes, size_t n, int indent, const char *want)
{
    char *text = NULL;
    assert_int_equal(rk_msgpack_to_json((const uint8_t *)bytes, n, indent, &text), 0);
    if (strcmp(text, want) != 0)
        fail_msg("printed %s, want %s", text, want);
    free(text);
}

#define PRINTS(bytes, indent, want) prints_as(bytes, sizeof(bytes) - 1, indent, want)

static void test_round_trips(void **state)
{
    round_trip("{\"id\": \"t1\", \"amount\": 1999, \"score\": 60.0, \"ok\": true}",
               "{\"id\":\"t1\",\"amount\":1999,\"score\":60.0,\"ok\":true}");
    round_trip(" [1, -1, 0, -0, 0.5, 1e2, 1E-2, 2.5e+3, null, false, [], {}] ",
               "[1,-1,0,0,0.5,100.0,0.01,2500.0,null,false,[],{}]");
    round_trip("[18446744073709551615, 9223372036854775807, -9223372036854775808]",
               "[18446744073709551615,9223372036854775807,-9223372036854775808]");
    round_trip("[0.1, 1.7976931348623157e308, 5e-324, 1e20, 123456789012345680000.0, -2.5]",
               "[0.1,1.7976931348623157e+308,5e-324,1e+20,1.2345678901234568e+20,-2.5]");
    round_trip("\"\"", "\"\"");
    round_trip("{\"a\":{\"b\":{\"c\":[[[]]]}}}", "{\"a\":{\"b\":{\"c\":[[[]]]}}}");
    round_trip("\n\t 42 \r\n", "42");
    /* a container of more than 15 and more than 65535 elements gets the
     * wider header, slid in front of its elements */
    char big[4 * 70000 + 3];
    size_t o = 0;
    big[o++] = '[';
    for (int i = 0; i < 70000; i++)
        o += (size_t)sprintf(big + o, i ? ",%d" : "%d", i % 10);
    big[o++] = ']';
    big[o] = '\0';
    assert_int_equal(to_mp(big), 0);
    assert_int_equal((uint8_t)sb.data[0], 0xdd);
    assert_int_equal(sb.size, 5 + 70000);
    char *text = NULL;
    assert_int_equal(rk_msgpack_to_json((const uint8_t *)sb.data, sb.size, 0, &text), 0);
    assert_string_equal(text, big);
    free(text);
}

/* Integers stay integers in their smallest encoding; anything with a
 * fraction or an exponent is a float64. */
static void test_number_typing(void **state)
{
    packs_as("1999", "\xcd\x07\xcf", 3);
    packs_as("5", "\x05", 1);
    packs_as("-1", "\xff", 1);
    packs_as("-0", "\x00", 1);
    packs_as("-200", "\xd1\xff\x38", 3);
    packs_as("4294967296", "\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 9);
    packs_as("18446744073709551615", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9);
    packs_as("-9223372036854775808", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9);
    packs_as("100.0", "\xcb\x40\x59\x00\x00\x00\x00\x00\x00", 9);
    packs_as("1e2", "\xcb\x40\x59\x00\x00\x00\x00\x00\x00", 9);
    packs_as("-0.0", "\xcb\x80\x00\x00\x00\x00\x00\x00\x00", 9);
    packs_as("1e-400", "\xcb\x00\x00\x00\x00\x00\x00\x00\x00", 9); /* underflow: 0 */
    FAILS("18446744073709551616", "line 1, column 1: integer out of range (it must fit in 64 bits)");
    FAILS("[-9223372036854775809]",
          "line 1, column 2: integer out of range (it must fit in 64 bits)");
    FAILS("1e400", "line 1, column 1: number out of range for a float64");
    FAILS("-1e999", "line 1, column 1: number out of range for a float64");
}

/* Floats print in the shortest form that reads back to the same value,
 * always with a '.' or an exponent. */
static void test_float_printing(void **state)
{
    PRINTS("\xcb\x40\x4e\x00\x00\x00\x00\x00\x00", 0, "60.0");
    PRINTS("\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a", 0, "0.1");
    PRINTS("\xcb\x3f\xd5\x55\x55\x55\x55\x55\x55", 0, "0.3333333333333333");
    PRINTS("\xcb\x80\x00\x00\x00\x00\x00\x00\x00", 0, "-0.0");
    PRINTS("\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", 0, "null"); /* +inf */
    PRINTS("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 0, "null"); /* NaN */
    PRINTS("\xca\x3d\xcc\xcc\xcd", 0, "0.1");                  /* float32 0.1f */
    PRINTS("\xca\x42\xc8\x00\x00", 0, "100.0");                /* float32 */
    PRINTS("\xca\x3f\xc0\x00\x00", 0, "1.5");
    PRINTS("\xcb\x44\x15\xaf\x1d\x78\xb5\x8c\x40", 0, "1e+20");
    PRINTS("\xcb\x3e\x84\x21\xf5\xf4\x0d\x83\x76", 0, "1.5e-07");
    round_trip("[1e15, 1e16, 0.0001, 0.00001, 123.456, 1999.99, 9.999999999999999e22]",
               "[1000000000000000.0,1e+16,0.0001,1e-05,123.456,1999.99,1e+23]");
    /* and they read back as floats */
    assert_int_equal(to_mp("1e+20"), 0);
    assert_int_equal((uint8_t)sb.data[0], 0xcb);
}

static void test_strings(void **state)
{
    packs_as("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\xa8\"\\/\b\f\n\r\t", 9);
    packs_as("\"\\u0041\\u00e9\\u4E2D\"", "\xa6" "A\xc3\xa9\xe4\xb8\xad", 7);
    packs_as("\"\\ud83d\\ude00\"", "\xa4\xf0\x9f\x98\x80", 5); /* surrogate pair */
    packs_as("\"\\u0000\"", "\xa1\x00", 2);
    packs_as("\"h\xc3\xa9\xf0\x9f\x98\x80\"", "\xa7h\xc3\xa9\xf0\x9f\x98\x80", 8);
    /* printing escapes what JSON requires and passes UTF-8 through */
    round_trip("\"a\\\"b\\\\c\\/d\\u0001\\u001f\\n\\t\\u007f\\u00e9\"",
               "\"a\\\"b\\\\c/d\\u0001\\u001f\\n\\t\x7f\xc3\xa9\"");
    /* invalid UTF-8 from msgpack prints as U+FFFD */
    PRINTS("\xa3" "a\xff" "b", 0, "\"a\\ufffdb\"");
    PRINTS("\xa2\xc3(", 0, "\"\\ufffd(\"");
    PRINTS("\xa3\xed\xa0\x80", 0, "\"\\ufffd\\ufffd\\ufffd\""); /* a UTF-8 encoded surrogate */

    FAILS("\"abc", "line 1, column 1: unterminated string");
    FAILS("[\"a\\qb\"]", "line 1, column 4: invalid escape in a string: expected one of "
                          "\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX");
    FAILS("\"\\u12G4\"", "line 1, column 2: expected 4 hex digits after \\u");
    FAILS("\"\\u12\"", "line 1, column 2: expected 4 hex digits after \\u");
    FAILS("\"\\ud800\"", "line 1, column 2: unpaired surrogate \\uD800 (expected a "
                         "\\uDC00-\\uDFFF escape after it)");
    FAILS("\"\\ud800\\u0041\"", "line 1, column 2: unpaired surrogate \\uD800 (expected a "
                                "\\uDC00-\\uDFFF escape after it)");
    FAILS("\"x\\udc00\"", "line 1, column 3: unpaired surrogate \\uDC00 (a low surrogate must "
                          "follow a high one)");
    FAILS("\"a\tb\"", "line 1, column 3: control character U+0009 in a string (escape it)");
    FAILS("\"a\nb\"", "line 1, column 3: control character U+000A in a string (escape it)");
    FAILS("\"\xc0\x80\"", "line 1, column 2: invalid UTF-8 byte 0xc0 in a string");
    FAILS("\"\xed\xa0\x80\"", "line 1, column 2: invalid UTF-8 byte 0xed in a string");
    FAILS("\"\xf4\x90\x80\x80\"", "line 1, column 2: invalid UTF-8 byte 0xf4 in a string");
    FAILS("\"\xe4\xb8\"", "line 1, column 2: invalid UTF-8 byte 0xe4 in a string");
}

static void test_errors(void **state)
{
    FAILS("", "line 1, column 1: expected a value, got end of input");
    FAILS("   ", "line 1, column 4: expected a value, got end of input");
    FAILS("{\"a\": 1,}", "line 1, column 9: expected a string key, got '}'");
    FAILS("{\"a\" 1}", "line 1, column 6: expected ':' after the key, got '1'");
    FAILS("{1: 2}", "line 1, column 2: expected a string key or '}', got '1'");
    FAILS("[1 2]", "line 1, column 4: expected ',' or ']', got '2'");
    FAILS("[1,]", "line 1, column 4: expected a value, got ']'");
    FAILS("{\"a\": 1", "line 1, column 8: expected ',' or '}', got end of input");
    FAILS("{\n  \"id\": \"t1\",\n  \"amount\": tru\n}",
          "line 3, column 13: expected a value, got 't'");
    FAILS("{\"id\": 'x'}", "line 1, column 8: expected a value, got '''");
    FAILS("01", "line 1, column 2: expected end of input after the value, got '1'");
    FAILS("{} {}", "line 1, column 4: expected end of input after the value, got '{'");
    FAILS("1.", "line 1, column 3: expected a digit after '.', got end of input");
    FAILS(".5", "line 1, column 1: expected a value, got '.'");
    FAILS("-", "line 1, column 2: expected a digit, got end of input");
    FAILS("-x", "line 1, column 2: expected a digit, got 'x'");
    FAILS("1e", "line 1, column 3: expected a digit in the exponent, got end of input");
    FAILS("1e+", "line 1, column 4: expected a digit in the exponent, got end of input");
    FAILS("+1", "line 1, column 1: expected a value, got '+'");
    FAILS("NaN", "line 1, column 1: expected a value, got 'N'");
    FAILS("\xef\xbb\xbf{}", "line 1, column 1: expected a value, got '\xef\xbb\xbf'");
    FAILS("[\x01]", "line 1, column 2: expected a value, got byte 0x01");
    /* columns count characters, not bytes */
    FAILS("[\"\xc3\xa9\xe4\xb8\xad\", x]", "line 1, column 8: expected a value, got 'x'");
    /* a NUL inside the given length is just a bad character */
    fails_with("[1]\0", 4, "line 1, column 4: expected end of input after the value, got byte 0x00");
    fails_with("[1,\0]", 5, "line 1, column 4: expected a value, got byte 0x00");
    /* an error message buffer of any size is fine */
    char small[8];
    assert_int_equal(rk_json_to_msgpack("[", 1, &sb, small, sizeof small), RK_EPARSE);
    assert_string_equal(small, "line 1,");
    assert_int_equal(rk_json_to_msgpack("[", 1, &sb, NULL, 0), RK_EPARSE);
}

static void test_depth_limit(void **state)
{
    char deep[2 * 65 + 1];
    for (int levels = 63; levels <= 65; levels++) {
        memset(deep, '[', (size_t)levels);
        memset(deep + levels, ']', (size_t)levels);
        deep[2 * levels] = '\0';
        if (levels <= 64) {
            assert_int_equal(to_mp(deep), 0);
            char *text = NULL;
            assert_int_equal(rk_msgpack_to_json((const uint8_t *)sb.data, sb.size, 0, &text),
                             0);
            assert_string_equal(text, deep);
            free(text);
        } else {
            fails_with(deep, strlen(deep), "line 1, column 65: nesting deeper than 64 levels");
        }
    }
    /* objects count too, and a megabyte of '[' fails fast */
    size_t n = 1 << 20;
    char *b = malloc(n);
    memset(b, '[', n);
    fails_with(b, n, "line 1, column 65: nesting deeper than 64 levels");
    for (size_t i = 0; i + 6 <= n; i += 6)
        memcpy(b + i, "{\"a\": ", 6);
    fails_with(b, n, "line 1, column 385: nesting deeper than 64 levels");
    /* the printer refuses what the parser would */
    memset(b, 0x91, 65);
    b[65] = (char)0xc0;
    char *text = (char *)1;
    assert_int_equal(rk_msgpack_to_json((const uint8_t *)b, 66, 0, &text), RK_EPARSE);
    assert_null(text);
    assert_int_equal(rk_msgpack_to_json((const uint8_t *)b + 1, 65, 0, &text), 0);
    free(text);
    free(b);
}

static void test_printer_types(void **state)
{
    /* bin as base64, every padding case */
    PRINTS("\xc4\x00", 0, "\"\"");
    PRINTS("\xc4\x01" "f", 0, "\"Zg==\"");
    PRINTS("\xc4\x02" "fo", 0, "\"Zm8=\"");
    PRINTS("\xc4\x03" "foo", 0, "\"Zm9v\"");
    PRINTS("\xc4\x04" "\xfb\xff\xfe\x00", 0, "\"+//+AA==\"");
    /* ext as null */
    PRINTS("\x92\xd4\x01\x02\xc7\x00\x05", 0, "[null,null]");
    /* non-string keys become the string of their JSON text */
    PRINTS("\x84\x01\xc3\xc0\x02\x92\x01\x02\x03\xa1k\x04", 0,
           "{\"1\":true,\"null\":2,\"[1,2]\":3,\"k\":4}");
    PRINTS("\x81\xa1\x22\xa1\x5c", 0, "{\"\\\"\":\"\\\\\"}");
    /* keys of keys print bare inside the key's string: escaping never compounds */
    PRINTS("\x81\x81\x81\x01\xa1q\x03\x04", 0, "{\"{{1:\\\"q\\\"}:3}\":4}");
    /* one value is printed; what follows it is the caller's */
    PRINTS("\x01\x02", 0, "1");
    /* malformed input */
    char *text = (char *)1;
    assert_int_equal(rk_msgpack_to_json((const uint8_t *)"\x92\x01", 2, 0, &text), RK_EPARSE);
    assert_null(text);
    assert_int_equal(rk_msgpack_to_json((const uint8_t *)"\xc1", 1, 0, &text), RK_EPARSE);
    assert_int_equal(rk_msgpack_to_json((const uint8_t *)"", 0, 0, &text), RK_EPARSE);
    assert_int_equal(rk_msgpack_to_json((const uint8_t *)"\xa5" "ab", 3, 0, &text), RK_EPARSE);
    assert_int_equal(rk_msgpack_to_json((const uint8_t *)"\x81\xa1k", 3, 0, &text), RK_EPARSE);
}

static void test_pretty(void **state)
{
    assert_int_equal(to_mp("{\"id\":\"t1\",\"reasons\":[\"a\",\"b\"],\"e\":[],\"o\":{},"
                           "\"m\":{\"x\":null}}"),
                     0);
    char *text = NULL;
    assert_int_equal(rk_msgpack_to_json((const uint8_t *)sb.data, sb.size, 2, &text), 0);
    assert_string_equal(text, "{\n"
                              "  \"id\": \"t1\",\n"
                              "  \"reasons\": [\n"
                              "    \"a\",\n"
                              "    \"b\"\n"
                              "  ],\n"
                              "  \"e\": [],\n"
                              "  \"o\": {},\n"
                              "  \"m\": {\n"
                              "    \"x\": null\n"
                              "  }\n"
                              "}");
    free(text);
    /* pretty output parses back to the same msgpack */
    size_t size = sb.size;
    char *copy = malloc(size);
    memcpy(copy, sb.data, size);
    assert_int_equal(rk_msgpack_to_json((const uint8_t *)copy, size, 4, &text), 0);
    assert_int_equal(to_mp(text), 0);
    assert_int_equal(sb.size, size);
    assert_memory_equal(sb.data, copy, size);
    free(text);
    free(copy);
    /* appending: the sbuffer keeps what it had */
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(rk_json_to_msgpack("1", 1, &sb, err, sizeof err), 0);
    assert_int_equal(rk_json_to_msgpack("[2]", 3, &sb, err, sizeof err), 0);
    assert_int_equal(sb.size, 3);
    assert_memory_equal(sb.data, "\x01\x91\x02", 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_number_typing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_float_printing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_printer_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pretty, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
