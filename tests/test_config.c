/* riskd.yaml and the command line: defaults, file settings, relative paths,
 * command-line overrides, the state store settings handed to the engine, and
 * the exact `file:line:col` of every diagnostic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/diag.h"
#include "lib/err.h"
#include "lib/log.h"
#include "proto/txn.h"
#include "server/config.h"

static char tmpdir[256];

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rk_test_config_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to tmpdir/name and returns the path (static buffer). */
static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static const char *diag_text(const rk_diag *d)
{
    static char buf[2048];
    return rk_diag_format(d, buf, sizeof buf);
}

static void test_defaults(void **state)
{
    rk_config c;
    rk_config_defaults(&c);
    assert_string_equal(c.endpoint, "tcp://127.0.0.1:7700");
    assert_string_equal(c.admin_endpoint, "ipc://var/riskd-admin.sock");
    assert_string_equal(c.data_dir, "var/");
    assert_string_equal(c.rules, "");
    assert_int_equal(c.workers, (int)sysconf(_SC_NPROCESSORS_ONLN));
    assert_int_equal(c.max_body, 65536);
    assert_int_equal(c.max_inflight, 10000);
    assert_int_equal(c.fallback, RK_REVIEW);
    assert_int_equal(c.log_level, RK_LOG_INFO);
    assert_int_equal(c.durability, RK_DUR_PERIODIC);
    assert_int_equal(c.sync_interval_ms, 1000);
    assert_int_equal(c.map_size, 64u << 20);
    assert_int_equal(c.retry_window_ms, 24LL * 3600 * 1000);
    assert_int_equal(c.keep_decisions_ms, 0);
    assert_int_equal(c.sweep_interval_ms, 60000);
    rk_store_config sc;
    rk_config_store(&c, &sc);
    assert_string_equal(sc.dir, "var/");
    assert_int_equal(sc.dedupe_ttl_ms, 24LL * 3600 * 1000);
    assert_int_equal(sc.recent_ttl_ms, 24LL * 3600 * 1000); /* keep_decisions = retry_window */
    assert_int_equal(sc.map_max, (size_t)1 << 40);
    assert_true(c.decision_log.enabled); /* riskd logs decisions unless told not to */
    assert_null(c.decision_log.dir);
    assert_int_equal(c.decision_log.max_file_bytes, 256u << 20);
    assert_int_equal(c.decision_log.keep_files, 0);
    assert_int_equal(c.decision_log.queue, 65536);
    assert_int_equal(c.decision_log.pseudonymise, 0);
}

/* The decision_log section: a nested mapping; pseudonymise in flow or block
 * list style, or a single name. */
static void test_decision_log_settings(void **state)
{
    const char *path = write_file("dl.yaml", "workers: 2\n"
                                             "decision_log:\n"
                                             "  enabled: false\n"
                                             "  max_file_mb: 16\n"
                                             "  keep_files: 10\n"
                                             "  queue: 1024\n"
                                             "  pseudonymise: [account, card, ip]\n"
                                             "log_level: warn\n");
    rk_config c;
    rk_diag d;
    rk_config_defaults(&c);
    assert_int_equal(rk_config_load(&c, path, &d), 0);
    assert_false(c.decision_log.enabled);
    assert_int_equal(c.decision_log.max_file_bytes, 16u << 20);
    assert_int_equal(c.decision_log.keep_files, 10);
    assert_int_equal(c.decision_log.queue, 1024);
    assert_int_equal(c.decision_log.pseudonymise,
                     1u << RK_F_ACCOUNT | 1u << RK_F_CARD | 1u << RK_F_IP);
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.log_level, RK_LOG_WARN);

    path = write_file("dl2.yaml", "decision_log:\n"
                                  "  pseudonymise:\n"
                                  "    - email\n"
                                  "    - device\n"
                                  "    - merchant\n");
    rk_config_defaults(&c);
    assert_int_equal(rk_config_load(&c, path, &d), 0);
    assert_true(c.decision_log.enabled);
    assert_int_equal(c.decision_log.pseudonymise,
                     1u << RK_F_EMAIL | 1u << RK_F_DEVICE | 1u << RK_F_MERCHANT);

    rk_config_defaults(&c);
    assert_int_equal(rk_config_load(&c, write_file("dl3.yaml", "decision_log:\n"
                                                               "  pseudonymise: account\n"
                                                               "  keep_files: 0\n"),
                                    &d),
                     0);
    assert_int_equal(c.decision_log.pseudonymise, 1u << RK_F_ACCOUNT);
    rk_config_defaults(&c);
    assert_int_equal(rk_config_load(&c, write_file("dl4.yaml", "decision_log:\n"
                                                               "decision_log_x: 1\n"),
                                    &d),
                     RK_EPARSE); /* an empty section keeps the defaults; the typo is caught */
    assert_string_equal(d.msg, "unknown key 'decision_log_x' (did you mean 'decision_log'?)");
    rk_config_defaults(&c);
    assert_int_equal(rk_config_load(&c, write_file("dl5.yaml", "decision_log: {queue: 8, "
                                                               "pseudonymise: []}\n"),
                                    &d),
                     0);
    assert_int_equal(c.decision_log.queue, 8);
    assert_int_equal(c.decision_log.pseudonymise, 0);
    assert_true(c.decision_log.enabled);

    /* a section is file-only */
    bool help;
    char *argv[] = {"riskd", "--decision-log", "x", NULL};
    assert_int_equal(rk_config_from_args(&c, 3, argv, &help, &d), RK_EINVAL);
    assert_string_equal(d.msg, "unknown option '--decision-log' (try --help)");
}

static void test_store_settings(void **state)
{
    const char *path = write_file("store.yaml", "durability: strict\n"
                                                "sync_interval_ms: 250\n"
                                                "map_size_mb: 16\n"
                                                "map_max_mb: 1024\n"
                                                "keep_decisions: 90d\n"
                                                "retry_window: 12h\n"
                                                "sweep_interval_ms: 0\n"
                                                "writemap: true\n");
    rk_config c;
    rk_diag d;
    rk_config_defaults(&c);
    assert_int_equal(rk_config_load(&c, path, &d), 0);
    rk_store_config sc;
    rk_config_store(&c, &sc);
    assert_int_equal(sc.durability, RK_DUR_STRICT);
    assert_int_equal(sc.sync_interval_ms, 250);
    assert_int_equal(sc.map_size, 16u << 20);
    assert_int_equal(sc.map_max, 1024u << 20);
    assert_int_equal(sc.dedupe_ttl_ms, 12LL * 3600 * 1000);
    assert_int_equal(sc.recent_ttl_ms, 90LL * 24 * 3600 * 1000);
    assert_int_equal(sc.sweep_interval_ms, 0);
    assert_true(sc.writemap);
    assert_string_equal(sc.dir, c.data_dir);
}

static void test_file_settings(void **state)
{
    const char *path = write_file("riskd.yaml", "# comment\n"
                                                "endpoint: tcp://127.0.0.1:9999\n"
                                                "admin_endpoint: ipc://run/admin.sock\n"
                                                "rules: rules/x.yaml\n"
                                                "data_dir: /var/lib/riskd\n"
                                                "workers: 3\n"
                                                "max_body: 1024\n"
                                                "max_inflight: 50\n"
                                                "fallback_decision: block\n"
                                                "log_level: warn\n");
    rk_config c;
    rk_diag d;
    rk_config_defaults(&c);
    assert_int_equal(rk_config_load(&c, path, &d), 0);
    char want[600];
    assert_string_equal(c.endpoint, "tcp://127.0.0.1:9999");
    snprintf(want, sizeof want, "ipc://%s/run/admin.sock", tmpdir);
    assert_string_equal(c.admin_endpoint, want);
    snprintf(want, sizeof want, "%s/rules/x.yaml", tmpdir);
    assert_string_equal(c.rules, want);
    assert_string_equal(c.data_dir, "/var/lib/riskd"); /* absolute stays as is */
    assert_int_equal(c.workers, 3);
    assert_int_equal(c.max_body, 1024);
    assert_int_equal(c.max_inflight, 50);
    assert_int_equal(c.fallback, RK_BLOCK);
    assert_int_equal(c.log_level, RK_LOG_WARN);
}

static void test_empty_and_null_values(void **state)
{
    rk_config c;
    rk_diag d;
    rk_config_defaults(&c);
    assert_int_equal(rk_config_load(&c, write_file("empty.yaml", ""), &d), 0);
    assert_int_equal(rk_config_load(&c, write_file("null.yaml", "workers:\nlog_level: ~\n"), &d),
                     0);
    assert_int_equal(c.max_inflight, 10000);
    assert_int_equal(c.log_level, RK_LOG_INFO);
}

/* Each bad file and the exact diagnostic it must produce. */
static void test_diagnostics(void **state)
{
    static const struct {
        const char *text;
        int rc;
        const char *msg; /* after "<path>:" */
    } cases[] = {
        {"workers: 2\nrules: r.yaml\nendpint: tcp://127.0.0.1:1\n", RK_EPARSE,
         "3:1: unknown key 'endpint' (did you mean 'endpoint'?)"},
        {"  zzz: 1\n", RK_EPARSE, "1:3: unknown key 'zzz'"},
        {"workers: abc\n", RK_ETYPE, "1:10: 'workers' must be an integer from 1 to 256, got 'abc'"},
        {"workers: 0\n", RK_ETYPE, "1:10: 'workers' must be an integer from 1 to 256, got '0'"},
        {"max_body: -5\n", RK_ETYPE,
         "1:11: 'max_body' must be a byte count from 64 to 67108864, got '-5'"},
        {"fallback_decision: deny\n", RK_ETYPE,
         "1:20: 'fallback_decision' must be allow, review or block, got 'deny'"},
        {"log_level: loud\n", RK_ETYPE,
         "1:12: 'log_level' must be debug, info, warn or error, got 'loud'"},
        {"endpoint:\n  - a\n", RK_ETYPE, "2:3: 'endpoint' must be a single value, got a list"},
        {"workers: 2\nworkers: 3\n", RK_EPARSE, "2:1: duplicate key 'workers'"},
        {"- a\n", RK_EPARSE, "1:1: expected a mapping of settings (key: value)"},
        {"durability: fsync\n", RK_ETYPE,
         "1:13: 'durability' must be periodic or strict, got 'fsync'"},
        {"durabilty: strict\n", RK_EPARSE,
         "1:1: unknown key 'durabilty' (did you mean 'durability'?)"},
        {"sync_interval_ms: 0\n", RK_ETYPE,
         "1:19: 'sync_interval_ms' must be milliseconds from 1 to 3600000, got '0'"},
        {"map_size_mb: 64MB\n", RK_ETYPE,
         "1:14: 'map_size_mb' must be megabytes from 1 to 1048576, got '64MB'"},
        {"map_max_mb: 0\n", RK_ETYPE,
         "1:13: 'map_max_mb' must be megabytes from 1 to 1048576, got '0'"},
        {"retry_window: 24\n", RK_ETYPE,
         "1:15: 'retry_window' must be a duration from 1s to 3650d, such as 24h or 90d, got '24'"},
        {"retry_window: 1.5h\n", RK_ETYPE,
         "1:15: 'retry_window' must be a duration from 1s to 3650d, such as 24h or 90d, got "
         "'1.5h'"},
        {"keep_decisions: 500ms\n", RK_ETYPE,
         "1:17: 'keep_decisions' must be a duration from 1s to 3650d, such as 24h or 90d, got "
         "'500ms'"},
        {"keep_decisions: 1h\nretry_window: 2h\n", RK_ETYPE,
         "1:17: 'keep_decisions' must be at least retry_window (2h), got '1h'"},
        {"retry_window: 48h\nkeep_decisions: 1d\n", RK_ETYPE,
         "2:17: 'keep_decisions' must be at least retry_window (2d), got '1d'"},
        {"writemap: yes\n", RK_ETYPE, "1:11: 'writemap' must be true or false, got 'yes'"},
        {"sweep_interval_ms: -1\n", RK_ETYPE,
         "1:20: 'sweep_interval_ms' must be milliseconds from 0 (no sweeper) to 86400000, got "
         "'-1'"},
        /* the decision_log section */
        {"decision_log: true\n", RK_ETYPE,
         "1:15: 'decision_log' must be a mapping of settings (key: value), got a single value"},
        {"decision_log:\n  - queue\n", RK_ETYPE,
         "2:3: 'decision_log' must be a mapping of settings (key: value), got a list"},
        {"decision_log:\n  max_fle_mb: 8\n", RK_EPARSE,
         "2:3: unknown key 'max_fle_mb' in 'decision_log' (did you mean 'max_file_mb'?)"},
        {"decision_log:\n  rotate: daily\n", RK_EPARSE,
         "2:3: unknown key 'rotate' in 'decision_log'"},
        {"decision_log:\n  queue: 8\n  queue: 9\n", RK_EPARSE,
         "3:3: duplicate key 'decision_log.queue'"},
        {"decision_log: {}\ndecision_log: {}\n", RK_EPARSE, "2:1: duplicate key 'decision_log'"},
        {"decision_log:\n  enabled: yes\n", RK_ETYPE,
         "2:12: 'decision_log.enabled' must be true or false, got 'yes'"},
        {"decision_log:\n  max_file_mb: 0\n", RK_ETYPE,
         "2:16: 'decision_log.max_file_mb' must be megabytes from 1 to 1048576, got '0'"},
        {"decision_log:\n  keep_files: -1\n", RK_ETYPE,
         "2:15: 'decision_log.keep_files' must be a file count from 0 (keep all) to 1000000, "
         "got '-1'"},
        {"decision_log:\n  queue: 0\n", RK_ETYPE,
         "2:10: 'decision_log.queue' must be a record count from 1 to 1048576, got '0'"},
        {"decision_log:\n  queue: [1]\n", RK_ETYPE,
         "2:10: 'decision_log.queue' must be a single value, got a list"},
        {"decision_log:\n  pseudonymise: [account, phone]\n", RK_ETYPE,
         "2:27: 'decision_log.pseudonymise' must be a list of identifier fields (account, card, "
         "device, ip, email, merchant), got 'phone'"},
        {"decision_log:\n  pseudonymise:\n    - card\n    - id\n", RK_ETYPE,
         "4:7: 'decision_log.pseudonymise' must be a list of identifier fields ('id' is kept: "
         "feedback and retries find decisions by it), got 'id'"},
        {"decision_log:\n  pseudonymise: {account: 1}\n", RK_ETYPE,
         "2:17: 'decision_log.pseudonymise' must be a list, got a mapping"},
        {"decision_log:\n  pseudonymise: [[account]]\n", RK_ETYPE,
         "2:18: 'decision_log.pseudonymise' must be a list of names, got a list in it"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = write_file("bad.yaml", cases[i].text);
        rk_config c;
        rk_diag d;
        rk_config_defaults(&c);
        int rc = rk_config_load(&c, path, &d);
        char want[1024];
        snprintf(want, sizeof want, "%s:%s", path, cases[i].msg);
        assert_int_equal(rc, cases[i].rc);
        assert_string_equal(diag_text(&d), want);
    }
}

static void test_yaml_syntax_error(void **state)
{
    const char *path = write_file("syntax.yaml", "workers: 2\nrules: [a\n");
    rk_config c;
    rk_diag d;
    rk_config_defaults(&c);
    assert_int_equal(rk_config_load(&c, path, &d), RK_EPARSE);
    assert_string_equal(d.file, path);
    assert_true(d.line >= 2);
}

static void test_missing_file(void **state)
{
    rk_config c;
    rk_diag d;
    rk_config_defaults(&c);
    assert_int_equal(rk_config_load(&c, "/nonexistent/riskd.yaml", &d), RK_EIO);
    assert_string_equal(diag_text(&d), "/nonexistent/riskd.yaml: cannot open: No such file or directory");
}

static int args(rk_config *c, bool *help, rk_diag *d, int argc, ...)
{
    char *argv[32] = {"riskd"};
    va_list ap;
    va_start(ap, argc);
    for (int i = 1; i <= argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    return rk_config_from_args(c, argc + 1, argv, help, d);
}

static void test_command_line(void **state)
{
    const char *path = write_file("riskd.yaml", "workers: 3\nrules: a.yaml\nlog_level: warn\n");
    char cpath[512];
    snprintf(cpath, sizeof cpath, "%s", path);
    rk_config c;
    rk_diag d;
    bool help;
    /* flags override the file wherever they stand */
    assert_int_equal(args(&c, &help, &d, 8, "--workers", "5", "-c", cpath, "--rules=b.yaml",
                          "--endpoint", "tcp://127.0.0.1:1234", "--data-dir=/tmp/x"),
                     0);
    assert_false(help);
    assert_int_equal(c.workers, 5);
    assert_string_equal(c.rules, "b.yaml"); /* relative to the cwd, as given */
    assert_string_equal(c.endpoint, "tcp://127.0.0.1:1234");
    assert_string_equal(c.data_dir, "/tmp/x");
    assert_int_equal(c.log_level, RK_LOG_WARN); /* from the file */

    assert_int_equal(args(&c, &help, &d, 4, "--admin-endpoint", "ipc://x/a.sock", "--log-level",
                          "debug"),
                     0);
    assert_string_equal(c.admin_endpoint, "ipc://x/a.sock");
    assert_int_equal(c.log_level, RK_LOG_DEBUG);
    assert_int_equal(c.workers, (int)sysconf(_SC_NPROCESSORS_ONLN)); /* no -c: defaults */

    assert_int_equal(args(&c, &help, &d, 2, "--bogus", "--help"), 0);
    assert_true(help);

    assert_int_equal(args(&c, &help, &d, 1, "--bogus"), RK_EINVAL);
    assert_string_equal(diag_text(&d), "unknown option '--bogus' (try --help)");
    assert_int_equal(args(&c, &help, &d, 2, "--durability", "strict"), 0);
    assert_int_equal(c.durability, RK_DUR_STRICT);
    assert_int_equal(args(&c, &help, &d, 1, "--durability=periodic"), 0);
    assert_int_equal(c.durability, RK_DUR_PERIODIC);
    assert_int_equal(args(&c, &help, &d, 2, "--durability", "paranoid"), RK_EINVAL);
    assert_string_equal(diag_text(&d), "--durability: expected periodic or strict, got 'paranoid'");
    /* strict durability wants more threads unless workers is given */
    assert_int_equal(args(&c, &help, &d, 2, "--durability", "strict"), 0);
    assert_int_equal(c.workers, RK_STRICT_WORKERS);
    assert_int_equal(args(&c, &help, &d, 4, "--durability", "strict", "--workers", "3"), 0);
    assert_int_equal(c.workers, 3);
    /* store tuning is file-only */
    assert_int_equal(args(&c, &help, &d, 2, "--retry-window", "1h"), RK_EINVAL);
    assert_string_equal(diag_text(&d), "unknown option '--retry-window' (try --help)");
    assert_int_equal(args(&c, &help, &d, 2, "--workers", "many"), RK_EINVAL);
    assert_string_equal(diag_text(&d), "--workers: expected an integer from 1 to 256, got 'many'");
    assert_int_equal(args(&c, &help, &d, 1, "--rules"), RK_EINVAL);
    assert_string_equal(diag_text(&d), "--rules needs a value (try --help)");
    assert_int_equal(args(&c, &help, &d, 1, "stray"), RK_EINVAL);
    assert_string_equal(diag_text(&d), "unexpected argument 'stray' (try --help)");

    /* a bad file through -c keeps its position */
    const char *bad = write_file("bad.yaml", "workers: 2\nendpint: x\n");
    snprintf(cpath, sizeof cpath, "%s", bad);
    assert_int_equal(args(&c, &help, &d, 2, "-c", cpath), RK_EPARSE);
    assert_int_equal(d.line, 2);
    assert_int_equal(d.col, 1);
}

typedef struct pin_probe {
    const rk_config *c;
    rk_diag d;
    int rc;          /* rk_config_pin's */
    int count;       /* CPUs the thread may run on afterwards */
    int on_first;    /* the lowest of them */
    int child_count; /* the same, for a thread it started */
} pin_probe;

static void *count_main(void *arg)
{
    cpu_set_t set;
    *(int *)arg = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;
    return NULL;
}

static void *pin_main(void *arg)
{
    pin_probe *p = arg;
    p->rc = rk_config_pin(p->c, &p->d);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return NULL;
    p->count = CPU_COUNT(&set);
    p->on_first = -1;
    for (int i = 0; i < CPU_SETSIZE && p->on_first < 0; i++)
        if (CPU_ISSET(i, &set))
            p->on_first = i;
    pthread_t t;
    if (pthread_create(&t, NULL, count_main, &p->child_count) == 0)
        pthread_join(t, NULL);
    return NULL;
}

static bool cpu_in(const rk_config *c, int i)
{
    return CPU_ISSET(i, &c->cpus);
}

/* `cpus`: a CPU list, in the file or as --cpus; it sets the default number
 * of workers; and pinning confines the thread, and the threads it starts. */
static void test_cpus(void **state)
{
    (void)state;
    rk_config c;
    rk_diag d;
    bool help;
    assert_int_equal(args(&c, &help, &d, 2, "--cpus", "0-2,5,7-7"), 0);
    assert_int_equal(CPU_COUNT(&c.cpus), 5);
    assert_true(cpu_in(&c, 0) && cpu_in(&c, 1) && cpu_in(&c, 2) && cpu_in(&c, 5) &&
                cpu_in(&c, 7));
    assert_false(cpu_in(&c, 3) || cpu_in(&c, 6) || cpu_in(&c, 8));
    assert_int_equal(c.workers, 5); /* one per CPU given */
    assert_int_equal(args(&c, &help, &d, 4, "--cpus", "1", "--workers", "3"), 0);
    assert_int_equal(c.workers, 3);
    assert_int_equal(args(&c, &help, &d, 4, "--cpus", "1", "--durability", "strict"), 0);
    assert_int_equal(c.workers, RK_STRICT_WORKERS);
    const char *bad[] = {"", "x", "1,", "3-1", "-1", "1024", "0-1024", "1 2", "1,,2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(args(&c, &help, &d, 2, "--cpus", bad[i]), RK_EINVAL);
        char want[160];
        snprintf(want, sizeof want,
                 "--cpus: expected a CPU list such as \"1\", \"0,2\" or \"0-3\", got '%s'",
                 bad[i]);
        assert_string_equal(diag_text(&d), want);
    }
    rk_config_defaults(&c);
    assert_int_equal(rk_config_load(&c, write_file("cpus.yaml", "cpus: 0\n"), &d), 0);
    assert_int_equal(CPU_COUNT(&c.cpus), 1);
    assert_true(cpu_in(&c, 0));
    assert_int_equal(rk_config_load(&c, write_file("cpus2.yaml", "cpus: 2-1\n"), &d), RK_ETYPE);
    assert_int_equal(d.line, 1);
    assert_int_equal(d.col, 7);

    /* pinning, in a thread of its own (it confines the caller) */
    cpu_set_t mine;
    assert_int_equal(sched_getaffinity(0, sizeof mine, &mine), 0);
    int first = -1;
    for (int i = 0; i < CPU_SETSIZE && first < 0; i++)
        if (CPU_ISSET(i, &mine))
            first = i;
    char one[16];
    snprintf(one, sizeof one, "%d", first);
    assert_int_equal(args(&c, &help, &d, 2, "--cpus", one), 0);
    pin_probe pp = {.c = &c};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, pin_main, &pp), 0);
    pthread_join(t, NULL);
    assert_int_equal(pp.rc, 0);
    assert_int_equal(pp.count, 1);
    assert_true(pp.on_first == first);
    assert_int_equal(pp.child_count, 1); /* a thread it starts inherits it */
    rk_config_defaults(&c);
    assert_int_equal(rk_config_pin(&c, &d), 0); /* none given: nothing to do */
    assert_int_equal(args(&c, &help, &d, 2, "--cpus", "1000"), 0);
    pp = (pin_probe){.c = &c};
    assert_int_equal(pthread_create(&t, NULL, pin_main, &pp), 0);
    pthread_join(t, NULL);
    assert_int_equal(pp.rc, RK_EINVAL); /* no such CPU here */
    assert_string_equal(diag_text(&pp.d), "cpus: cannot run on the CPUs given: Invalid argument");
}

static void test_prepare_creates_dirs(void **state)
{
    rk_config c;
    rk_diag d;
    rk_config_defaults(&c);
    snprintf(c.data_dir, sizeof c.data_dir, "%s/data/deep", tmpdir);
    snprintf(c.admin_endpoint, sizeof c.admin_endpoint, "ipc://%s/run/sub/admin.sock", tmpdir);
    assert_int_equal(rk_config_prepare(&c, &d), 0);
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/data/deep", tmpdir);
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700); /* it will hold the store's secret */
    snprintf(p, sizeof p, "%s/run/sub", tmpdir);
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
}

static void test_shipped_config(void **state)
{
    rk_config c;
    rk_diag d;
    rk_config_defaults(&c);
    int rc = rk_config_load(&c, RK_SOURCE_DIR "/riskd.yaml", &d);
    if (rc < 0)
        fail_msg("%s", diag_text(&d));
    assert_string_equal(c.rules, RK_SOURCE_DIR "/rules/default.yaml");
    assert_string_equal(c.endpoint, "tcp://127.0.0.1:7700");
    assert_string_equal(c.admin_endpoint, "ipc://" RK_SOURCE_DIR "/var/riskd-admin.sock");
    /* the shipped file spells out the decision log's defaults */
    rk_config def;
    rk_config_defaults(&def);
    assert_int_equal(c.decision_log.enabled, def.decision_log.enabled);
    assert_int_equal(c.decision_log.max_file_bytes, def.decision_log.max_file_bytes);
    assert_int_equal(c.decision_log.keep_files, def.decision_log.keep_files);
    assert_int_equal(c.decision_log.queue, def.decision_log.queue);
    assert_int_equal(c.decision_log.pseudonymise, def.decision_log.pseudonymise);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpus),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_store_settings),
        cmocka_unit_test(test_decision_log_settings),
        cmocka_unit_test(test_file_settings),
        cmocka_unit_test(test_empty_and_null_values),
        cmocka_unit_test(test_diagnostics),
        cmocka_unit_test(test_yaml_syntax_error),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_command_line),
        cmocka_unit_test(test_prepare_creates_dirs),
        cmocka_unit_test(test_shipped_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
