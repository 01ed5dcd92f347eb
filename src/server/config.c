/* Loading riskd.yaml (libyaml's document API) and the command line.
 *
 * The file is a flat mapping of scalars. Each key is one row of the `keys`
 * table below — name and parser — so the accepted keys, the "did you mean"
 * candidates and the docs (docs/config.md) come from one list. Positions in
 * diagnostics are the key's for unknown or duplicate keys and the value's for
 * bad values, 1-based, as editors count. A key given with no value (`workers:`)
 * keeps its default. Nothing here outlives the call: the rk_config is plain
 * data the caller owns. */
#include "server/config.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "lib/duration.h"
#include "lib/err.h"
#include "lib/log.h"

#define MAX_WORKERS 256
#define MAX_BODY_LIMIT (64u * 1024 * 1024) /* beyond this a "request" is an attack */
#define MAX_MAP_MB (1024L * 1024)            /* 1 TiB, LMDB's practical ceiling here */
#define DAY_MS (86400LL * 1000)

/* Where a value came from: the file's directory for relative paths, and the
 * position for diagnostics. */
typedef struct origin {
    const char *file; /* as the user named it; NULL for the command line */
    const char *dir;  /* directory relative paths resolve against; NULL: as given */
    int line, col;    /* 1-based position of the value in file */
} origin;

static int bad(rk_diag *diag, const origin *o, const char *key, const char *want, const char *got)
{
    if (o->file) {
        rk_diag_set(diag, o->file, o->line, o->col, "'%s' must be %s, got '%s'", key, want, got);
        return RK_ETYPE;
    }
    char flag[64]; /* the key as a flag: data_dir -> data-dir */
    size_t i = 0;
    for (; key[i] && i + 1 < sizeof flag; i++)
        flag[i] = key[i] == '_' ? '-' : key[i];
    flag[i] = '\0';
    rk_diag_set(diag, NULL, 0, 0, "--%s: expected %s, got '%s'", flag, want, got);
    return RK_EINVAL;
}

static int parse_long(const char *s, long min, long max, long *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* A relative path from the config file is relative to the file's directory. */
static int resolve(char *dst, size_t size, const char *val, const origin *o)
{
    int n;
    if (val[0] == '/' || !o->dir || strcmp(o->dir, ".") == 0)
        n = snprintf(dst, size, "%s", val);
    else
        n = snprintf(dst, size, "%s/%s", o->dir, val);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int set_string(char *dst, const char *key, const char *val, const origin *o, rk_diag *diag)
{
    if (!*val || snprintf(dst, RK_CONFIG_PATH_MAX, "%s", val) >= RK_CONFIG_PATH_MAX)
        return bad(diag, o, key, "a non-empty string shorter than 1024 bytes", val);
    return 0;
}

static int set_path(char *dst, const char *key, const char *val, const origin *o, rk_diag *diag)
{
    if (!*val || resolve(dst, RK_CONFIG_PATH_MAX, val, o) < 0)
        return bad(diag, o, key, "a path shorter than 1024 bytes", val);
    return 0;
}

static int set_endpoint(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    return set_string(c->endpoint, "endpoint", v, o, diag);
}

/* An ipc:// path is a file path like any other in the config, so a relative
 * one is made relative to the config file too (ZeroMQ itself would take it
 * relative to the working directory). `ipc://@name` is Linux's abstract
 * namespace and has no directory. */
static int set_admin_endpoint(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    if (strncmp(v, "ipc://", 6) == 0 && v[6] && v[6] != '@') {
        char path[RK_CONFIG_PATH_MAX];
        if (resolve(path, sizeof path, v + 6, o) < 0 ||
            snprintf(c->admin_endpoint, sizeof c->admin_endpoint, "ipc://%s", path) >=
                (int)sizeof c->admin_endpoint)
            return bad(diag, o, "admin_endpoint", "an endpoint shorter than 1024 bytes", v);
        return 0;
    }
    return set_string(c->admin_endpoint, "admin_endpoint", v, o, diag);
}

static int set_rules(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    return set_path(c->rules, "rules", v, o, diag);
}

static int set_data_dir(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    return set_path(c->data_dir, "data_dir", v, o, diag);
}

static int set_workers(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    long n;
    if (parse_long(v, 1, MAX_WORKERS, &n) < 0)
        return bad(diag, o, "workers", "an integer from 1 to 256", v);
    c->workers = (int)n;
    c->workers_given = true;
    return 0;
}

static int set_max_body(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    long n;
    if (parse_long(v, 64, MAX_BODY_LIMIT, &n) < 0)
        return bad(diag, o, "max_body", "a byte count from 64 to 67108864", v);
    c->max_body = (size_t)n;
    return 0;
}

static int set_max_inflight(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    long n;
    if (parse_long(v, 1, 10000000, &n) < 0)
        return bad(diag, o, "max_inflight", "an integer from 1 to 10000000", v);
    c->max_inflight = (int)n;
    return 0;
}

static int set_fallback(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    int d = rk_verdict_from_name(v);
    if (d < 0)
        return bad(diag, o, "fallback_decision", "allow, review or block", v);
    c->fallback = (rk_verdict)d;
    return 0;
}

static int set_log_level(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    int l = rk_log_level_from_name(v);
    if (l < 0)
        return bad(diag, o, "log_level", "debug, info, warn or error", v);
    c->log_level = l;
    return 0;
}

static int set_durability(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    int d = rk_durability_from_name(v);
    if (d < 0)
        return bad(diag, o, "durability", "periodic or strict", v);
    c->durability = d;
    return 0;
}

static int set_sync_interval(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    long n;
    if (parse_long(v, 1, 3600000, &n) < 0)
        return bad(diag, o, "sync_interval_ms", "milliseconds from 1 to 3600000", v);
    c->sync_interval_ms = n;
    return 0;
}

static int set_sweep_interval(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    long n;
    if (parse_long(v, 0, 86400000, &n) < 0)
        return bad(diag, o, "sweep_interval_ms", "milliseconds from 0 (no sweeper) to 86400000", v);
    c->sweep_interval_ms = n;
    return 0;
}

static int set_mb(size_t *dst, const char *key, const char *v, const origin *o, rk_diag *diag)
{
    long n;
    if (parse_long(v, 1, MAX_MAP_MB, &n) < 0)
        return bad(diag, o, key, "megabytes from 1 to 1048576", v);
    *dst = (size_t)n << 20;
    return 0;
}

static int set_map_size(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    return set_mb(&c->map_size, "map_size_mb", v, o, diag);
}

static int set_map_max(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    return set_mb(&c->map_max, "map_max_mb", v, o, diag);
}

static int set_duration(int64_t *dst, const char *key, const char *v, const origin *o,
                        rk_diag *diag)
{
    int64_t ms;
    if (rk_duration_parse(v, strlen(v), &ms) < 0 || ms < 1000 || ms > 3650 * DAY_MS)
        return bad(diag, o, key, "a duration from 1s to 3650d, such as 24h or 90d", v);
    *dst = ms;
    return 0;
}

static int set_retry_window(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    return set_duration(&c->retry_window_ms, "retry_window", v, o, diag);
}

static int set_keep_decisions(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    return set_duration(&c->keep_decisions_ms, "keep_decisions", v, o, diag);
}

static int set_writemap(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
        c->writemap = v[0] == 't';
        return 0;
    }
    return bad(diag, o, "writemap", "true or false", v);
}

typedef int (*setter)(rk_config *c, const char *v, const origin *o, rk_diag *diag);

/* Every key riskd.yaml accepts. Those marked flag are also command-line flags,
 * spelt with '-' for '_': what operators change per run. The rest are set in
 * the file only. */
static const struct {
    const char *name; /* key in riskd.yaml */
    setter set;       /* parses and stores the value */
    bool flag;        /* also accepted as --name */
} keys[] = {
    {"endpoint", set_endpoint, true},
    {"admin_endpoint", set_admin_endpoint, true},
    {"rules", set_rules, true},
    {"data_dir", set_data_dir, true},
    {"workers", set_workers, true},
    {"max_body", set_max_body, false},
    {"max_inflight", set_max_inflight, false},
    {"fallback_decision", set_fallback, false},
    {"log_level", set_log_level, true},
    {"durability", set_durability, true},
    {"sync_interval_ms", set_sync_interval, false},
    {"map_size_mb", set_map_size, false},
    {"map_max_mb", set_map_max, false},
    {"retry_window", set_retry_window, false},
    {"keep_decisions", set_keep_decisions, false},
    {"sweep_interval_ms", set_sweep_interval, false},
    {"writemap", set_writemap, false},
};
#define NKEYS (sizeof keys / sizeof keys[0])

void rk_config_defaults(rk_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->endpoint, sizeof c->endpoint, "tcp://127.0.0.1:7700");
    snprintf(c->admin_endpoint, sizeof c->admin_endpoint, "ipc://var/riskd-admin.sock");
    snprintf(c->data_dir, sizeof c->data_dir, "var/");
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c->workers = n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (int)n;
    c->max_body = 65536;
    c->max_inflight = 10000;
    c->fallback = RK_REVIEW;
    c->log_level = RK_LOG_INFO;
    rk_store_config sc;
    rk_store_config_default(&sc);
    c->durability = sc.durability;
    c->sync_interval_ms = sc.sync_interval_ms;
    c->map_size = sc.map_size;
    c->map_max = (size_t)MAX_MAP_MB << 20;
    c->retry_window_ms = sc.dedupe_ttl_ms;
    c->keep_decisions_ms = 0;
    c->sweep_interval_ms = sc.sweep_interval_ms;
}

void rk_config_store(const rk_config *c, rk_store_config *sc)
{
    rk_store_config_default(sc);
    sc->dir = c->data_dir;
    sc->durability = c->durability;
    sc->sync_interval_ms = c->sync_interval_ms;
    sc->map_size = c->map_size;
    sc->map_max = c->map_max;
    sc->dedupe_ttl_ms = c->retry_window_ms;
    sc->recent_ttl_ms = c->keep_decisions_ms ? c->keep_decisions_ms : c->retry_window_ms;
    sc->sweep_interval_ms = c->sweep_interval_ms;
    sc->writemap = c->writemap;
}

static int find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int unknown_key(rk_diag *diag, const char *file, int line, int col, const char *name)
{
    const char *cands[NKEYS];
    for (size_t i = 0; i < NKEYS; i++)
        cands[i] = keys[i].name;
    const char *hint = rk_suggest(name, cands, NKEYS);
    if (hint)
        rk_diag_set(diag, file, line, col, "unknown key '%s' (did you mean '%s'?)", name, hint);
    else
        rk_diag_set(diag, file, line, col, "unknown key '%s'", name);
    return RK_EPARSE;
}

static const char *node_kind(const yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE ? "a mapping" : "a list";
}

static bool is_null(const yaml_node_t *n)
{
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
           !strcmp(v, "NULL");
}

static int apply_document(rk_config *c, yaml_document_t *doc, const char *path, const char *dir,
                          rk_diag *diag)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root)
        return 0; /* an empty file: all defaults */
    if (root->type != YAML_MAPPING_NODE) {
        if (root->type == YAML_SCALAR_NODE && is_null(root))
            return 0;
        rk_diag_set(diag, path, (int)root->start_mark.line + 1, (int)root->start_mark.column + 1,
                    "expected a mapping of settings (key: value)");
        return RK_EPARSE;
    }
    bool seen[NKEYS] = {false};
    origin keep = {NULL, NULL, 0, 0}; /* where keep_decisions was set, checked at the end */
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        int kl = (int)k->start_mark.line + 1, kc = (int)k->start_mark.column + 1;
        if (k->type != YAML_SCALAR_NODE) {
            rk_diag_set(diag, path, kl, kc, "expected a setting name, got %s", node_kind(k));
            return RK_EPARSE;
        }
        const char *name = (const char *)k->data.scalar.value;
        int i = find_key(name);
        if (i < 0)
            return unknown_key(diag, path, kl, kc, name);
        if (seen[i]) {
            rk_diag_set(diag, path, kl, kc, "duplicate key '%s'", name);
            return RK_EPARSE;
        }
        seen[i] = true;
        origin o = {path, dir, (int)v->start_mark.line + 1, (int)v->start_mark.column + 1};
        if (v->type != YAML_SCALAR_NODE) {
            rk_diag_set(diag, path, o.line, o.col, "'%s' must be a single value, got %s", name,
                        node_kind(v));
            return RK_ETYPE;
        }
        if (is_null(v))
            continue;
        int rc = keys[i].set(c, (const char *)v->data.scalar.value, &o, diag);
        if (rc < 0)
            return rc;
        if (keys[i].set == set_keep_decisions)
            keep = o;
    }
    /* Decisions are what a retry is answered from: they must be kept at
     * least as long as the retry window, wherever either key stands. */
    if (keep.file && c->keep_decisions_ms < c->retry_window_ms) {
        char have[32], want[32];
        rk_duration_format(c->keep_decisions_ms, have, sizeof have);
        rk_duration_format(c->retry_window_ms, want, sizeof want);
        rk_diag_set(diag, path, keep.line, keep.col,
                    "'keep_decisions' must be at least retry_window (%s), got '%s'", want, have);
        return RK_ETYPE;
    }
    return 0;
}

int rk_config_load(rk_config *c, const char *path, rk_diag *diag)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        rk_diag_set(diag, path, 0, 0, "cannot open: %s", strerror(errno));
        return RK_EIO;
    }
    char dir[RK_CONFIG_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';

    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc;
    if (!yaml_parser_load(&parser, &doc)) {
        const yaml_mark_t *m = parser.context ? &parser.context_mark : &parser.problem_mark;
        if (parser.problem)
            m = &parser.problem_mark;
        rk_diag_set(diag, path, (int)m->line + 1, (int)m->column + 1, "%s",
                    parser.problem ? parser.problem : "invalid YAML");
        rc = RK_EPARSE;
    } else {
        rc = apply_document(c, &doc, path, dir, diag);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

/* The value of a flag: "--flag=value" or "--flag value". */
static const char *flag_value(int argc, char **argv, int *i, const char *arg, size_t namelen,
                              rk_diag *diag)
{
    if (arg[namelen] == '=')
        return arg + namelen + 1;
    if (*i + 1 >= argc) {
        rk_diag_set(diag, NULL, 0, 0, "%.*s needs a value (try --help)", (int)namelen, arg);
        return NULL;
    }
    return argv[++*i];
}

/* Matches "--name" or "--name=..." (and "-c" for config). */
static bool is_flag(const char *arg, const char *flag)
{
    size_t n = strlen(flag);
    return strncmp(arg, flag, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

int rk_config_from_args(rk_config *c, int argc, char **argv, bool *help, rk_diag *diag)
{
    rk_config_defaults(c);
    *help = false;
    const char *file = NULL;
    /* --help wins wherever it stands (even after a bad flag), then -c is
     * found first so that flags override the file in any order. */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            *help = true;
            return 0;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_flag(a, "-c") || is_flag(a, "--config")) {
            file = flag_value(argc, argv, &i, a, a[1] == 'c' ? 2 : 8, diag);
            if (!file)
                return RK_EINVAL;
        } else if (a[0] == '-' && a[1] == '-' && !strchr(a, '=')) {
            i++; /* every other flag takes a value: skip it (errors come below) */
        }
    }
    if (file) {
        int rc = rk_config_load(c, file, diag);
        if (rc < 0)
            return rc;
    }
    origin cli = {NULL, NULL, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_flag(a, "-c") || is_flag(a, "--config")) {
            if (!strchr(a, '='))
                i++;
            continue;
        }
        if (a[0] != '-' || a[1] != '-' || !a[2]) {
            rk_diag_set(diag, NULL, 0, 0, "unexpected argument '%s' (try --help)", a);
            return RK_EINVAL;
        }
        /* --data-dir -> data_dir */
        char key[64];
        size_t n = strcspn(a + 2, "=");
        if (n >= sizeof key) {
            rk_diag_set(diag, NULL, 0, 0, "unknown option '%s' (try --help)", a);
            return RK_EINVAL;
        }
        for (size_t j = 0; j < n; j++)
            key[j] = a[2 + j] == '-' ? '_' : a[2 + j];
        key[n] = '\0';
        int k = find_key(key);
        if (k < 0 || !keys[k].flag) {
            rk_diag_set(diag, NULL, 0, 0, "unknown option '%.*s' (try --help)", (int)n + 2, a);
            return RK_EINVAL;
        }
        const char *v = flag_value(argc, argv, &i, a, n + 2, diag);
        if (!v)
            return RK_EINVAL;
        int rc = keys[k].set(c, v, &cli, diag);
        if (rc < 0)
            return RK_EINVAL;
    }
    /* Strict mode answers after an fsync; threads waiting for one share it,
     * so it wants more threads than CPUs (server.c, "Strict durability"). */
    if (c->durability == RK_DUR_STRICT && !c->workers_given)
        c->workers = RK_STRICT_WORKERS;
    return 0;
}

/* mkdir -p; the last component gets leaf_mode when it is created. */
static int make_dirs(const char *path, mode_t leaf_mode, rk_diag *diag)
{
    char buf[RK_CONFIG_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (size_t n = strlen(buf); n > 1 && buf[n - 1] == '/'; n--)
        buf[n - 1] = '\0';
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, saved ? 0750 : leaf_mode) < 0 && errno != EEXIST) {
                rk_diag_set(diag, buf, 0, 0, "cannot create directory: %s", strerror(errno));
                return RK_EIO;
            }
            *p = saved;
            if (!saved)
                break;
        }
    }
    return 0;
}

int rk_config_prepare(const rk_config *c, rk_diag *diag)
{
    /* The data directory holds the store's secret: owner only. */
    int rc = make_dirs(c->data_dir, 0700, diag);
    if (rc < 0)
        return rc;
    if (strncmp(c->admin_endpoint, "ipc://", 6) == 0 && c->admin_endpoint[6] != '@') {
        char dir[RK_CONFIG_PATH_MAX];
        snprintf(dir, sizeof dir, "%s", c->admin_endpoint + 6);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            rc = make_dirs(dir, 0750, diag);
        }
    }
    return rc;
}

void rk_config_usage(FILE *f)
{
    fputs("usage: riskd [-c FILE] [--rules FILE] [--data-dir DIR] [--endpoint EP]\n"
          "             [--admin-endpoint EP] [--workers N] [--durability MODE]\n"
          "             [--log-level LEVEL] [--help]\n"
          "\n"
          "riskd scores transactions sent over ZeroMQ (docs/protocol.md).\n"
          "\n"
          "  -c, --config FILE      riskd.yaml to read (docs/config.md); flags override it\n"
          "  --rules FILE           rule set to load (docs/rules.md)\n"
          "  --data-dir DIR         state directory (default var/)\n"
          "  --endpoint EP          gateway endpoint (default tcp://127.0.0.1:7700)\n"
          "  --admin-endpoint EP    admin endpoint (default ipc://var/riskd-admin.sock)\n"
          "  --workers N            scoring threads (default: online CPUs; 32 in strict mode)\n"
          "  --durability MODE      periodic (default: fsync every sync_interval_ms) or\n"
          "                         strict (no reply before its update is on disk)\n"
          "  --log-level LEVEL      debug, info, warn or error (default info)\n"
          "  -h, --help             print this and exit\n"
          "\n"
          "Signals: SIGHUP reloads the rule set; SIGINT/SIGTERM answer what was\n"
          "received and exit.\n",
          f);
}
