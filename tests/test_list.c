/* Tests for rk_list: membership of strings and integers, duplicates, the
 * integer view (all_int, leading-zero members such as MCC "0742"), empty and
 * binary members, growth through many rehashes, and NULL handling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/err.h"
#include "rules/list.h"

static bool has(const rk_list *l, const char *s) { return rk_list_has(l, s, strlen(s)); }

static void test_strings(void **state)
{
    rk_list *l = rk_list_new();
    assert_non_null(l);
    assert_int_equal(rk_list_size(l), 0);
    assert_false(has(l, "KP"));
    assert_int_equal(rk_list_add(l, "KP", 2), 0);
    assert_int_equal(rk_list_add(l, "IR", 2), 0);
    assert_int_equal(rk_list_add(l, "KP", 2), 0); /* duplicates are ignored */
    assert_int_equal(rk_list_size(l), 2);
    assert_true(has(l, "KP"));
    assert_true(has(l, "IR"));
    assert_false(has(l, "kp"));
    assert_false(has(l, "K"));
    assert_false(has(l, "KPX"));
    assert_false(has(l, ""));
    assert_true(rk_list_has(l, "KPX", 2)); /* (s, len), not NUL-terminated */
    assert_false(rk_list_all_int(l));
    rk_list_free(l);
}

static void test_empty_and_binary_members(void **state)
{
    rk_list *l = rk_list_new();
    assert_int_equal(rk_list_add(l, "", 0), 0);
    assert_int_equal(rk_list_add(l, "a\0b", 3), 0);
    assert_true(has(l, ""));
    assert_true(rk_list_has(l, "a\0b", 3));
    assert_false(rk_list_has(l, "a\0c", 3));
    assert_false(has(l, "a"));
    assert_int_equal(rk_list_size(l), 2);
    assert_int_equal(rk_list_add(l, NULL, 0), 0); /* the empty string again */
    assert_int_equal(rk_list_size(l), 2);
    assert_int_equal(rk_list_add(l, NULL, 3), RK_EINVAL);
    assert_false(rk_list_has(l, NULL, 3));
    rk_list_free(l);
}

static void test_integers(void **state)
{
    rk_list *l = rk_list_new();
    assert_true(rk_list_all_int(l)); /* an empty list counts */
    assert_int_equal(rk_list_add_int(l, 5967), 0);
    assert_int_equal(rk_list_add_int(l, -1), 0);
    assert_int_equal(rk_list_add_int(l, 0), 0);
    assert_int_equal(rk_list_add_int(l, INT64_MIN), 0);
    assert_int_equal(rk_list_add_int(l, INT64_MAX), 0);
    assert_int_equal(rk_list_add(l, "5967", 4), 0); /* the same member as text */
    assert_int_equal(rk_list_size(l), 5);
    assert_true(rk_list_all_int(l));
    assert_true(rk_list_has_int(l, 5967));
    assert_true(rk_list_has_int(l, -1));
    assert_true(rk_list_has_int(l, 0));
    assert_true(rk_list_has_int(l, INT64_MIN));
    assert_true(rk_list_has_int(l, INT64_MAX));
    assert_false(rk_list_has_int(l, 1));
    assert_false(rk_list_has_int(l, 59670));
    assert_true(has(l, "-9223372036854775808"));
    assert_true(has(l, "5967")); /* integers are members as their decimal text */
    rk_list_free(l);
}

/* Members written with leading zeros match as integers, and only as integers. */
static void test_leading_zeros(void **state)
{
    rk_list *l = rk_list_new();
    assert_int_equal(rk_list_add(l, "0742", 4), 0);
    assert_int_equal(rk_list_add(l, "0763", 4), 0);
    assert_int_equal(rk_list_add(l, "-007", 4), 0);
    assert_int_equal(rk_list_add(l, "000", 3), 0);
    assert_int_equal(rk_list_size(l), 4);
    assert_true(rk_list_all_int(l));
    assert_true(rk_list_has_int(l, 742));
    assert_true(rk_list_has_int(l, 763));
    assert_true(rk_list_has_int(l, -7));
    assert_true(rk_list_has_int(l, 0));
    assert_true(has(l, "0742"));
    assert_false(has(l, "742")); /* the alias is no string member */
    assert_false(has(l, "0"));
    /* adding the canonical text makes it a member; sizes count members only */
    assert_int_equal(rk_list_add(l, "742", 3), 0);
    assert_true(has(l, "742"));
    assert_int_equal(rk_list_size(l), 5);
    assert_int_equal(rk_list_add_int(l, 763), 0);
    assert_int_equal(rk_list_size(l), 6);
    assert_int_equal(rk_list_add(l, "0742", 4), 0);
    assert_int_equal(rk_list_size(l), 6);
    rk_list_free(l);
}

static void test_all_int(void **state)
{
    static const struct {
        const char *text;
        bool is_int;
    } cases[] = {
        {"0", true},   {"-0", true},  {"42", true},  {"-42", true}, {"9223372036854775807", true},
        {"-9223372036854775808", true}, {"00000000000000000000001", true},
        {"9223372036854775808", false}, {"-9223372036854775809", false}, {"", false},
        {"-", false},  {"+1", false}, {"1.0", false}, {" 1", false}, {"1 ", false},
        {"1e3", false}, {"0x10", false}, {"--1", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rk_list *l = rk_list_new();
        assert_int_equal(rk_list_add(l, cases[i].text, strlen(cases[i].text)), 0);
        if (rk_list_all_int(l) != cases[i].is_int)
            fail_msg("'%s': all_int %d", cases[i].text, !cases[i].is_int);
        rk_list_free(l);
    }
    rk_list *l = rk_list_new();
    rk_list_add_int(l, 1);
    rk_list_add(l, "x", 1);
    assert_false(rk_list_all_int(l));
    assert_true(rk_list_has_int(l, 1));
    rk_list_free(l);
}

/* Many members: every one found after many rehashes, nothing else found. */
static void test_growth(void **state)
{
    rk_list *l = rk_list_new();
    enum { N = 50000 };
    char buf[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(buf, sizeof buf, "card-%d", i * 7);
        assert_int_equal(rk_list_add(l, buf, (size_t)n), 0);
        assert_int_equal(rk_list_add_int(l, (int64_t)i * 1000003), 0);
    }
    assert_int_equal(rk_list_size(l), 2 * N);
    for (int i = 0; i < N; i++) {
        int n = snprintf(buf, sizeof buf, "card-%d", i * 7);
        assert_true(rk_list_has(l, buf, (size_t)n));
        n = snprintf(buf, sizeof buf, "card-%d", i * 7 + 1);
        assert_false(rk_list_has(l, buf, (size_t)n));
        assert_true(rk_list_has_int(l, (int64_t)i * 1000003));
        assert_false(rk_list_has_int(l, (int64_t)i * 1000003 + 1));
    }
    rk_list_free(l);
}

static void test_null(void **state)
{
    assert_false(rk_list_has(NULL, "x", 1));
    assert_false(rk_list_has_int(NULL, 1));
    assert_int_equal(rk_list_size(NULL), 0);
    assert_true(rk_list_all_int(NULL));
    assert_int_equal(rk_list_add(NULL, "x", 1), RK_EINVAL);
    rk_list_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings),       cmocka_unit_test(test_empty_and_binary_members),
        cmocka_unit_test(test_integers),      cmocka_unit_test(test_leading_zeros),
        cmocka_unit_test(test_all_int),       cmocka_unit_test(test_growth),
        cmocka_unit_test(test_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
