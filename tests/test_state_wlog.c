/* The write-ahead log's files (state/wlog.c) and their checksum
 * (lib/crc32c.c): entries come back in order and intact across a reopen, a
 * torn or corrupted tail ends the replay there, a full segment rolls over to
 * the next, trims delete only segments wholly below the mark (never the one
 * being written), a copy replays like the original, and a reset starts
 * empty. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/crc32c.h"
#include "lib/err.h"
#include "lib/log.h"
#include "state/store.h"
#include "state/wlog.h"

static char dir[64], aux[80];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    rk_log_set_level(RK_LOG_ERROR + 1); /* torn tails are warned about, on purpose */
    snprintf(dir, sizeof dir, "/tmp/rk_wlog_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(aux, sizeof aux, "%s.copy", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    nftw(aux, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* Entry i's payload: len(i) bytes derived from i, so a mix-up shows. */
static size_t len_of(uint64_t i)
{
    return 1 + (size_t)(i * 37 % 1500);
}

static void fill(uint64_t i, uint8_t *p, size_t len)
{
    for (size_t k = 0; k < len; k++)
        p[k] = (uint8_t)(i * 131 + k);
}

typedef struct seen {
    uint64_t first, n; /* sequences expected: first, first + 1, ... */
    size_t big;        /* payloads are this many bytes instead of len_of (0: len_of) */
    int bad;           /* entries that differed from what was appended */
} seen;

static int check_one(void *ctx, uint64_t seq, const uint8_t *p, size_t len)
{
    seen *s = ctx;
    static uint8_t want[1 << 20];
    size_t wl = s->big ? s->big : len_of(seq);
    if (seq != s->first + s->n || len != wl) {
        s->bad++;
    } else {
        fill(seq, want, wl);
        s->bad += memcmp(want, p, len) != 0;
    }
    s->n++;
    return 0;
}

static void append_range(rk_wlog *l, uint64_t from, uint64_t to, size_t big)
{
    static uint8_t buf[1 << 20];
    for (uint64_t i = from; i < to; i++) {
        size_t len = big ? big : len_of(i);
        fill(i, buf, len);
        assert_int_equal(rk_wlog_append(l, i, buf, len), 0);
    }
}

/* Opens the log in d and replays it: entries from first on. */
static seen replay_dir(const char *d, uint64_t first, size_t big, rk_wlog **keep)
{
    rk_wlog *l;
    assert_int_equal(rk_wlog_open(d, &l), 0);
    seen s = {.first = first, .big = big};
    uint64_t entries, last;
    assert_int_equal(rk_wlog_replay(l, check_one, &s, &entries, &last), 0);
    assert_int_equal(entries, s.n);
    assert_int_equal(s.bad, 0);
    if (s.n)
        assert_int_equal(last, first + s.n - 1);
    if (keep)
        *keep = l;
    else
        rk_wlog_close(l, false);
    return s;
}

static int count_segments(const char *d)
{
    DIR *dp = opendir(d);
    assert_non_null(dp);
    int n = 0;
    for (struct dirent *e; (e = readdir(dp)) != NULL;)
        n += rk_store_is_log_file(e->d_name);
    closedir(dp);
    return n;
}

static void test_crc32c(void **state)
{
    (void)state;
    assert_int_equal(rk_crc32c(0, "123456789", 9), 0xE3069283u); /* the standard check value */
    assert_int_equal(rk_crc32c(0, "", 0), 0);
    uint8_t buf[1000];
    fill(7, buf, sizeof buf);
    /* in pieces, at odd boundaries, the same as at once */
    uint32_t whole = rk_crc32c(0, buf, sizeof buf);
    assert_int_equal(rk_crc32c(rk_crc32c(0, buf, 13), buf + 13, sizeof buf - 13), whole);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(rk_store_is_log_file("wal-00000001.log"));
    assert_true(rk_store_is_log_file("wal-0000abcd.log"));
    assert_false(rk_store_is_log_file("wal-1.log"));
    assert_false(rk_store_is_log_file("wal-00000001.log.tmp"));
    assert_false(rk_store_is_log_file("data.mdb"));
    assert_false(rk_store_is_log_file("wal-0000000g.log"));
}

static void test_append_replay_reset(void **state)
{
    (void)state;
    rk_wlog *l;
    assert_int_equal(rk_wlog_open(dir, &l), 0);
    seen s = {0};
    uint64_t entries, last;
    assert_int_equal(rk_wlog_replay(l, check_one, &s, &entries, &last), 0);
    assert_int_equal(entries, 0); /* a new directory: nothing */
    assert_int_equal(rk_wlog_reset(l), 0);
    append_range(l, 1, 501, 0);
    assert_int_equal(rk_wlog_sync(l), 0);
    uint64_t n, bytes;
    rk_wlog_size(l, &n, &bytes);
    assert_int_equal(n, 500);
    assert_true(bytes > 500 * 16);
    rk_wlog_close(l, false); /* as a crash leaves it */

    replay_dir(dir, 1, 0, &l);
    /* after a reset the log is empty and takes later sequences */
    assert_int_equal(rk_wlog_reset(l), 0);
    append_range(l, 501, 511, 0);
    rk_wlog_close(l, false);
    assert_int_equal(replay_dir(dir, 501, 0, NULL).n, 10);
    /* dropped at a clean close: no file left */
    assert_int_equal(rk_wlog_open(dir, &l), 0);
    rk_wlog_close(l, true);
    assert_int_equal(count_segments(dir), 0);
}

/* Damages the file of the only segment in dir at byte off (from its end
 * when negative) by flipping it, or truncates it there with cut. */
static void damage(off_t off, bool cut)
{
    DIR *dp = opendir(dir);
    char path[600] = "";
    for (struct dirent *e; (e = readdir(dp)) != NULL;)
        if (rk_store_is_log_file(e->d_name))
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    closedir(dp);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    if (cut) {
        assert_int_equal(ftruncate(fd, off), 0);
    } else {
        uint8_t b;
        assert_int_equal(pread(fd, &b, 1, off), 1);
        b ^= 0x40;
        assert_int_equal(pwrite(fd, &b, 1, off), 1);
    }
    close(fd);
}

static void test_torn_tail(void **state)
{
    (void)state;
    rk_wlog *l;
    assert_int_equal(rk_wlog_open(dir, &l), 0);
    assert_int_equal(rk_wlog_reset(l), 0);
    append_range(l, 1, 101, 0);
    uint64_t n, bytes;
    rk_wlog_size(l, &n, &bytes);
    rk_wlog_close(l, false);
    /* a flipped byte in the last entry's payload: the 99 before it replay */
    off_t end = (off_t)(16 + bytes);
    damage(end - (off_t)((16 + len_of(100) + 7) & ~(size_t)7) + 16, false);
    assert_int_equal(replay_dir(dir, 1, 0, NULL).n, 99);
    /* cut in the middle of entry 50's header or payload: 49 replay */
    size_t at = 16;
    for (uint64_t i = 1; i < 50; i++)
        at += (16 + len_of(i) + 7) & ~(size_t)7;
    damage((off_t)at + 10, true);
    assert_int_equal(replay_dir(dir, 1, 0, NULL).n, 49);
}

/* 1 MiB entries: 31 fit a 32 MiB segment, so 80 fill three. */
static void test_roll_trim_copy(void **state)
{
    (void)state;
    const size_t big = 1 << 20;
    rk_wlog *l;
    assert_int_equal(rk_wlog_open(dir, &l), 0);
    assert_int_equal(rk_wlog_reset(l), 0);
    rk_wlog_prepare(l); /* the spare the first roll takes */
    append_range(l, 1, 81, big);
    assert_int_equal(rk_wlog_sync(l), 0);
    assert_int_equal(count_segments(dir), 3);
    /* nothing below 10 is wholly in one segment: nothing goes */
    assert_int_equal(rk_wlog_trim(l, 10), 0);
    /* the first segment holds 1..31 */
    assert_int_equal(rk_wlog_trim(l, 40), 1);
    assert_int_equal(count_segments(dir), 2);
    /* held for a copy: a trim deletes nothing, and the copy replays what
     * the log held */
    assert_int_equal(mkdir(aux, 0700), 0);
    rk_wlog_hold(l);
    assert_int_equal(rk_wlog_trim(l, UINT64_MAX), 0);
    assert_int_equal(count_segments(dir), 2);
    assert_int_equal(rk_wlog_copy(l, aux), 0);
    rk_wlog_unhold(l);
    /* never the segment being written, whatever the mark */
    assert_int_equal(rk_wlog_trim(l, UINT64_MAX), 1);
    assert_int_equal(count_segments(dir), 1);
    rk_wlog_close(l, false);
    assert_int_equal(replay_dir(dir, 63, big, NULL).n, 18);
    assert_int_equal(replay_dir(aux, 32, big, NULL).n, 49);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_append_replay_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roll_trim_copy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
