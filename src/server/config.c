/* Loading riskd.yaml (libyaml's document API) and the command line.
 *
 * The file is a mapping of scalars plus sections. Each key is one row of the
 * `keys` table below — name and parser — so the accepted keys, the "did you
 * mean" candidates and the docs (docs/config.md) come from one list. A section
 * (`decision_log:`) is a row whose value is a nested mapping with a table of
 * its own, read by the same code; a list key (`pseudonymise: [...]`) hands
 * each item to its parser. Positions in diagnostics are the key's for unknown
 * or duplicate keys and the value's (the item's, in a list) for bad values,
 * 1-based, as editors count. A key given with no value (`workers:`) keeps its
 * default. Nothing here outlives the call: the rk_config is plain data the
 * caller owns. */
#include "server/config.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "lib/duration.h"
#include "lib/err.h"
#include "lib/log.h"
#include "proto/txn.h"

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

/* A CPU list as taskset and cpusets write it: "1", "0,2", "0-3,6". */
static int set_cpus(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    static const char want[] = "a CPU list such as \"1\", \"0,2\" or \"0-3\"";
    CPU_ZERO(&c->cpus);
    const char *p = v;
    for (;;) {
        char *end;
        errno = 0;
        long lo = strtol(p, &end, 10), hi = lo;
        if (end == p || errno || lo < 0 || lo >= RK_CONFIG_CPUS_MAX)
            return bad(diag, o, "cpus", want, v);
        if (*end == '-') {
            p = end + 1;
            hi = strtol(p, &end, 10);
            if (end == p || errno || hi < lo || hi >= RK_CONFIG_CPUS_MAX)
                return bad(diag, o, "cpus", want, v);
        }
        for (long i = lo; i <= hi; i++)
            CPU_SET((int)i, &c->cpus);
        p = end;
        if (*p != ',')
            break;
        p++;
    }
    if (*p)
        return bad(diag, o, "cpus", want, v);
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

/* An interval of the store's background work: 1 ms to an hour. */
static int set_interval_ms(int64_t *dst, const char *name, const char *v, const origin *o,
                           rk_diag *diag)
{
    long n;
    if (parse_long(v, 1, 3600000, &n) < 0)
        return bad(diag, o, name, "milliseconds from 1 to 3600000", v);
    *dst = n;
    return 0;
}

static int set_sync_interval(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    return set_interval_ms(&c->sync_interval_ms, "sync_interval_ms", v, o, diag);
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

static int set_bool(bool *dst, const char *key, const char *v, const origin *o, rk_diag *diag)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
        *dst = v[0] == 't';
        return 0;
    }
    return bad(diag, o, key, "true or false", v);
}

static int set_writemap(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    return set_bool(&c->writemap, "writemap", v, o, diag);
}

static int set_cache_records(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    long n;
    if (parse_long(v, 0, 1L << 30, &n) < 0 || (n > 0 && n < 1024))
        return bad(diag, o, "cache_records", "0 (no cache) or a record count from 1024 to 1073741824", v);
    c->cache_records = n;
    return 0;
}

static int set_checkpoint(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    return set_interval_ms(&c->checkpoint_ms, "checkpoint_ms", v, o, diag);
}

/* ---- the decision_log section ---- */

static int set_dl_enabled(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    return set_bool(&c->decision_log.enabled, "decision_log.enabled", v, o, diag);
}

static int set_dl_max_file(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    size_t bytes = 0;
    int rc = set_mb(&bytes, "decision_log.max_file_mb", v, o, diag);
    if (rc == 0)
        c->decision_log.max_file_bytes = bytes;
    return rc;
}

static int set_dl_keep(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    long n;
    if (parse_long(v, 0, 1000000, &n) < 0)
        return bad(diag, o, "decision_log.keep_files", "a file count from 0 (keep all) to 1000000",
                   v);
    c->decision_log.keep_files = (int)n;
    return 0;
}

static int set_dl_queue(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    long n;
    if (parse_long(v, 1, 1048576, &n) < 0)
        return bad(diag, o, "decision_log.queue", "a record count from 1 to 1048576", v);
    c->decision_log.queue = (uint32_t)n;
    return 0;
}

/* One item of the pseudonymise list: a field rk_declog_pseudonymisable allows. */
static int set_dl_pseudonymise(rk_config *c, const char *v, const origin *o, rk_diag *diag)
{
    uint32_t allowed = rk_declog_pseudonymisable();
    for (int f = 0; f < RK_F__STD; f++)
        if ((allowed >> f & 1) && strcmp(v, rk_field_name(f)) == 0) {
            c->decision_log.pseudonymise |= 1u << f;
            return 0;
        }
    if (strcmp(v, rk_field_name(RK_F_ID)) == 0)
        return bad(diag, o, "decision_log.pseudonymise",
                   "a list of identifier fields ('id' is kept: feedback and retries find "
                   "decisions by it)", v);
    char want[160] = "a list of identifier fields (";
    size_t n = strlen(want);
    for (int f = 0; f < RK_F__STD && n < sizeof want; f++)
        if (allowed >> f & 1)
            n += (size_t)snprintf(want + n, sizeof want - n, "%s%s", want[n - 1] == '(' ? "" : ", ",
                                  rk_field_name(f));
    if (n + 1 < sizeof want)
        strcat(want, ")");
    return bad(diag, o, "decision_log.pseudonymise", want, v);
}

typedef int (*setter)(rk_config *c, const char *v, const origin *o, rk_diag *diag);

/* One key of a table: a scalar setting, a list of scalars, or a section. */
typedef struct keydef {
    const char *name;             /* key in riskd.yaml */
    setter set;                   /* parses and stores the value (each item, for a list) */
    bool flag;                    /* also accepted as --name */
    bool list;                    /* the value is a list of scalars, each given to set; the
                                     items add to the default (an empty list) */
    const struct keydef *section; /* non-NULL: the value is a mapping of these keys */
    size_t nsection;              /* entries in section */
} keydef;

#define NSECTION_MAX 16 /* keys in one table, at most (sized for the `seen` flags) */

static const keydef decision_log_keys[] = {
    {.name = "enabled", .set = set_dl_enabled},
    {.name = "max_file_mb", .set = set_dl_max_file},
    {.name = "keep_files", .set = set_dl_keep},
    {.name = "queue", .set = set_dl_queue},
    {.name = "pseudonymise", .set = set_dl_pseudonymise, .list = true},
};
_Static_assert(sizeof decision_log_keys / sizeof decision_log_keys[0] <= NSECTION_MAX,
               "NSECTION_MAX sizes the tables' `seen` flags");

/* Every key riskd.yaml accepts. Those marked flag are also command-line flags,
 * spelt with '-' for '_': what operators change per run. The rest are set in
 * the file only. */
static const keydef keys[] = {
    {.name = "endpoint", .set = set_endpoint, .flag = true},
    {.name = "admin_endpoint", .set = set_admin_endpoint, .flag = true},
    {.name = "rules", .set = set_rules, .flag = true},
    {.name = "data_dir", .set = set_data_dir, .flag = true},
    {.name = "workers", .set = set_workers, .flag = true},
    {.name = "cpus", .set = set_cpus, .flag = true},
    {.name = "max_body", .set = set_max_body, .flag = false},
    {.name = "max_inflight", .set = set_max_inflight, .flag = false},
    {.name = "fallback_decision", .set = set_fallback, .flag = false},
    {.name = "log_level", .set = set_log_level, .flag = true},
    {.name = "durability", .set = set_durability, .flag = true},
    {.name = "sync_interval_ms", .set = set_sync_interval, .flag = false},
    {.name = "map_size_mb", .set = set_map_size, .flag = false},
    {.name = "map_max_mb", .set = set_map_max, .flag = false},
    {.name = "retry_window", .set = set_retry_window, .flag = false},
    {.name = "keep_decisions", .set = set_keep_decisions, .flag = false},
    {.name = "sweep_interval_ms", .set = set_sweep_interval, .flag = false},
    {.name = "writemap", .set = set_writemap, .flag = false},
    {.name = "cache_records", .set = set_cache_records, .flag = false},
    {.name = "checkpoint_ms", .set = set_checkpoint, .flag = false},
    {.name = "decision_log",
     .section = decision_log_keys,
     .nsection = sizeof decision_log_keys / sizeof decision_log_keys[0]},
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
    c->writemap = sc.writemap;
    c->cache_records = -1; /* by durability: see rk_store_config */
    c->checkpoint_ms = sc.checkpoint_ms;
    rk_declog_config_default(&c->decision_log);
    c->decision_log.enabled = true;
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
    sc->cache_records = c->cache_records < 0 ? RK_CACHE_AUTO : (size_t)c->cache_records;
    sc->checkpoint_ms = c->checkpoint_ms;
}

static int find_in(const keydef *table, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int find_key(const char *name)
{
    return find_in(keys, NKEYS, name);
}

/* section: the enclosing section's name, NULL at the top level. */
static int unknown_key(rk_diag *diag, const char *file, int line, int col, const char *name,
                       const keydef *table, size_t n, const char *section)
{
    const char *cands[NKEYS > NSECTION_MAX ? NKEYS : NSECTION_MAX];
    for (size_t i = 0; i < n; i++)
        cands[i] = table[i].name;
    const char *hint = rk_suggest(name, cands, n);
    char where[96] = "";
    if (section)
        snprintf(where, sizeof where, " in '%s'", section);
    if (hint)
        rk_diag_set(diag, file, line, col, "unknown key '%s'%s (did you mean '%s'?)", name, where,
                    hint);
    else
        rk_diag_set(diag, file, line, col, "unknown key '%s'%s", name, where);
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

static origin origin_of(const yaml_node_t *n, const char *path, const char *dir)
{
    return (origin){path, dir, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
}

/* A list key's value: each scalar item given to kd->set at its own position;
 * a lone scalar counts as a list of one. qname: the key as messages name it. */
static int apply_list(rk_config *c, yaml_document_t *doc, yaml_node_t *v, const keydef *kd,
                      const char *qname, const char *path, const char *dir, rk_diag *diag)
{
    if (v->type == YAML_MAPPING_NODE) {
        origin o = origin_of(v, path, dir);
        rk_diag_set(diag, path, o.line, o.col, "'%s' must be a list, got a mapping", qname);
        return RK_ETYPE;
    }
    if (v->type == YAML_SCALAR_NODE) {
        origin o = origin_of(v, path, dir);
        return is_null(v) ? 0 : kd->set(c, (const char *)v->data.scalar.value, &o, diag);
    }
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        yaml_node_t *item = yaml_document_get_node(doc, *it);
        origin o = origin_of(item, path, dir);
        if (item->type != YAML_SCALAR_NODE) {
            rk_diag_set(diag, path, o.line, o.col, "'%s' must be a list of names, got %s in it",
                        qname, node_kind(item));
            return RK_ETYPE;
        }
        int rc = kd->set(c, (const char *)item->data.scalar.value, &o, diag);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The settings of one mapping node: the top level (section NULL) or a
 * section's. *keep receives where keep_decisions was set. */
static int apply_mapping(rk_config *c, yaml_document_t *doc, yaml_node_t *map,
                         const keydef *table, size_t ntable, const char *section, const char *path,
                         const char *dir, origin *keep, rk_diag *diag)
{
    bool seen[NKEYS > NSECTION_MAX ? NKEYS : NSECTION_MAX] = {false};
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        int kl = (int)k->start_mark.line + 1, kc = (int)k->start_mark.column + 1;
        if (k->type != YAML_SCALAR_NODE) {
            rk_diag_set(diag, path, kl, kc, "expected a setting name, got %s", node_kind(k));
            return RK_EPARSE;
        }
        const char *name = (const char *)k->data.scalar.value;
        int i = find_in(table, ntable, name);
        if (i < 0)
            return unknown_key(diag, path, kl, kc, name, table, ntable, section);
        char qname[96]; /* the key as messages name it: decision_log.queue */
        snprintf(qname, sizeof qname, "%s%s%s", section ? section : "", section ? "." : "", name);
        if (seen[i]) {
            rk_diag_set(diag, path, kl, kc, "duplicate key '%s'", qname);
            return RK_EPARSE;
        }
        seen[i] = true;
        const keydef *kd = &table[i];
        origin o = origin_of(v, path, dir);
        int rc;
        if (kd->section) {
            if (v->type == YAML_MAPPING_NODE)
                rc = apply_mapping(c, doc, v, kd->section, kd->nsection, kd->name, path, dir,
                                   keep, diag);
            else if (v->type == YAML_SCALAR_NODE && is_null(v))
                rc = 0;
            else {
                rk_diag_set(diag, path, o.line, o.col,
                            "'%s' must be a mapping of settings (key: value), got %s", qname,
                            v->type == YAML_SCALAR_NODE ? "a single value" : node_kind(v));
                rc = RK_ETYPE;
            }
        } else if (kd->list) {
            rc = apply_list(c, doc, v, kd, qname, path, dir, diag);
        } else if (v->type != YAML_SCALAR_NODE) {
            rk_diag_set(diag, path, o.line, o.col, "'%s' must be a single value, got %s", qname,
                        node_kind(v));
            rc = RK_ETYPE;
        } else {
            rc = is_null(v) ? 0 : kd->set(c, (const char *)v->data.scalar.value, &o, diag);
            if (rc == 0 && !is_null(v) && kd->set == set_keep_decisions)
                *keep = o;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
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
    origin keep = {NULL, NULL, 0, 0}; /* where keep_decisions was set, checked at the end */
    int rc = apply_mapping(c, doc, root, keys, NKEYS, NULL, path, dir, &keep, diag);
    if (rc < 0)
        return rc;
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
    else if (CPU_COUNT(&c->cpus) > 0 && !c->workers_given)
        c->workers = CPU_COUNT(&c->cpus) < MAX_WORKERS ? CPU_COUNT(&c->cpus) : MAX_WORKERS;
    return 0;
}

int rk_config_pin(const rk_config *c, rk_diag *diag)
{
    if (CPU_COUNT(&c->cpus) == 0)
        return 0;
    if (sched_setaffinity(0, sizeof c->cpus, &c->cpus) != 0) {
        rk_diag_set(diag, NULL, 0, 0, "cpus: cannot run on the CPUs given: %s", strerror(errno));
        return RK_EINVAL;
    }
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
          "             [--admin-endpoint EP] [--workers N] [--cpus LIST]\n"
          "             [--durability MODE] [--log-level LEVEL] [--help]\n"
          "\n"
          "riskd scores transactions sent over ZeroMQ (docs/protocol.md).\n"
          "\n"
          "  -c, --config FILE      riskd.yaml to read (docs/config.md); flags override it\n"
          "  --rules FILE           rule set to load (docs/rules.md)\n"
          "  --data-dir DIR         state directory (default var/)\n"
          "  --endpoint EP          gateway endpoint (default tcp://127.0.0.1:7700)\n"
          "  --admin-endpoint EP    admin endpoint (default ipc://var/riskd-admin.sock)\n"
          "  --workers N            scoring threads (default: online CPUs, or those of\n"
          "                         --cpus; 32 in strict mode)\n"
          "  --cpus LIST            run every riskd thread on these CPUs (\"1\", \"0-3,6\")\n"
          "  --durability MODE      periodic (default: fsync every sync_interval_ms) or\n"
          "                         strict (no reply before its update is on disk)\n"
          "  --log-level LEVEL      debug, info, warn or error (default info)\n"
          "  -h, --help             print this and exit\n"
          "\n"
          "Signals: SIGHUP reloads the rule set; SIGINT/SIGTERM answer what was\n"
          "received and exit.\n",
          f);
}
