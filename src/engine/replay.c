/* Offline replay (replay.h): an engine and one worker on a private store, a
 * clock that reads the event time the caller sets, and a reader of replies.
 *
 * The private store. Each replayer makes its own directory with mkdtemp and
 * removes it, whatever it holds, when closed (or when opening fails half
 * way), so a backtest leaves nothing behind and two replayers in one process
 * never share counters. Seeded from a backup, it gets copies of the backup's
 * data.mdb, secret and write-ahead log files (the secret keyed-hashes entity values; without the one
 * the store was written with, its counters could not be found, and the store
 * refuses to open). Only a consistent copy is accepted as a seed — one made by
 * `riskctl backup` or mdb_copy — because copying a live data.mdb while riskd
 * writes it can tear pages; the directory must hold both files. The store is
 * configured for throughput over safety, since it is thrown away: periodic
 * durability with a sync interval longer than any backtest, MDB_WRITEMAP, no
 * sweeper thread (the sweep would run on the machine's clock, not event time),
 * and commits batched `batch` requests at a time.
 *
 * The clock. rk_engine_config.clock_ms is a plain function pointer, so the
 * event time lives in a thread-local variable that rk_replay_set_now sets and
 * event_clock reads: per thread, because a replayer is single-threaded and two
 * threads replaying two logs must not see each other's time.
 *
 * Replies. rk_replay_parse_reply reads riskd's reply maps with the bounds-
 * checked rk_mp cursor, key by key in any order, and resolves rule ids to rule
 * indexes by walking the rule set's ids in file order alongside the reply's
 * (both are in file order), which costs one comparison per rule id on the
 * common path and never allocates. */
#include "engine/replay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "engine/engine.h"
#include "engine/pipeline.h"
#include "engine/snapshot.h"
#include "lib/err.h"
#include "lib/files.h"
#include "lib/log.h"
#include "proto/mp.h"
#include "state/keyhash.h"
#include "state/store.h"

#define DATA_FILE "data.mdb"            /* LMDB's data file in a store or backup directory */
#define SYNC_INTERVAL_MS (24LL * 3600 * 1000) /* a thrown-away store needs no periodic fsync */
#define MAP_SIZE ((size_t)256 << 20)    /* initial map: sparse, and rarely grown in a backtest */

static _Thread_local int64_t replay_now_ms; /* the event time of the current record */

/* One rule id of the rule set, for resolving reply ids without strlen. */
typedef struct rule_ref {
    const char *id; /* rk_ruleset_rule_id, NUL-terminated, owned by the snapshot */
    uint32_t len;   /* its length */
} rule_ref;

struct rk_replayer {
    char dir[4096];          /* the private store directory; "" once removed */
    rk_engine *engine;       /* the engine on the rule file; owned */
    rk_worker *worker;       /* its one worker; owned */
    rk_snapshot *snap;       /* held for the rule set's lifetime (no reloads happen) */
    const rk_ruleset *rs;    /* rk_snapshot_ruleset(snap) */
    int nrules;              /* rules in rs */
    rule_ref *rules;         /* their ids, file order */
    rk_replay_outcome out;   /* the last reply, read */
};

static int64_t event_clock(void)
{
    return replay_now_ms;
}

void rk_replay_set_now(int64_t now_ms)
{
    replay_now_ms = now_ms;
}

/* ---- reading replies ----------------------------------------------------- */

static bool key_is(const rk_mp_item *k, const char *s, size_t n)
{
    return k->raw.len == n && memcmp(k->raw.p, s, n) == 0;
}

static int verdict_of(const rk_mp_item *v, rk_verdict *out)
{
    if (v->type != RK_MP_STR)
        return RK_EPARSE;
    for (int i = 0; i < RK_VERDICT__COUNT; i++)
        if (rk_mp_str_eq(v, rk_verdict_name((rk_verdict)i))) {
            *out = (rk_verdict)i;
            return 0;
        }
    return RK_EPARSE;
}

/* The index of rule id (p, n) in rs, starting the search at *cursor (reply
 * ids come in file order), wrapping round once; -1 when rs has none. */
static int find_rule(const rule_ref *rules, int nrules, int *cursor, const uint8_t *p,
                     uint32_t n)
{
    for (int k = 0; k < nrules; k++) {
        int i = (*cursor + k) % nrules;
        if (rules[i].len == n && memcmp(rules[i].id, p, n) == 0) {
            *cursor = i + 1 < nrules ? i + 1 : 0;
            return i;
        }
    }
    return -1;
}

/* Reads an array of rule ids at m into idx (resolved when rules is set). */
static int read_ids(rk_mp *m, uint32_t count, const rule_ref *rules, int nrules, uint16_t *idx,
                    int *n, int *unknown)
{
    int cursor = 0;
    *n = 0;
    for (uint32_t i = 0; i < count; i++) {
        rk_mp_item s;
        if (rk_mp_read(m, &s) < 0 || s.type != RK_MP_STR)
            return RK_EPARSE;
        if (!rules)
            continue;
        int r = find_rule(rules, nrules, &cursor, s.raw.p, s.raw.len);
        if (r < 0 || *n >= RK_MAX_RULES)
            (*unknown)++;
        else
            idx[(*n)++] = (uint16_t)r;
    }
    if (!rules)
        *n = (int)count;
    return 0;
}

/* The code of an error reply's {"code": ..., "message": ...} map at m. */
static int read_error(rk_mp *m, uint32_t nkeys, rk_wire_err *code)
{
    *code = RK_WERR__COUNT;
    for (uint32_t i = 0; i < nkeys; i++) {
        rk_mp_item k, v;
        if (rk_mp_read(m, &k) < 0 || k.type != RK_MP_STR)
            return RK_EPARSE;
        rk_mp peek = *m;
        if (rk_mp_read(&peek, &v) < 0)
            return RK_EPARSE;
        if (key_is(&k, "code", 4) && v.type == RK_MP_STR)
            for (int e = RK_WERR_NONE + 1; e < RK_WERR__COUNT; e++)
                if (rk_mp_str_eq(&v, rk_wire_err_name((rk_wire_err)e)))
                    *code = (rk_wire_err)e;
        if (rk_mp_skip(m, RK_MP_DEPTH_MAX) < 0)
            return RK_EPARSE;
    }
    return 0;
}

/* rk_replay_parse_reply with the rule ids at hand (NULL: unresolved). */
static int parse_reply(const uint8_t *buf, size_t len, const rule_ref *rules, int nrules,
                       rk_replay_outcome *out)
{
    rk_mp m;
    rk_mp_item it;
    rk_mp_init(&m, buf, len);
    if (rk_mp_read(&m, &it) < 0 || it.type != RK_MP_MAP)
        return RK_EPARSE;
    out->kind = RK_REPLAY_OTHER;
    out->verdict = RK_ALLOW;
    out->error = RK_WERR_NONE;
    out->score = 0;
    out->has_model_score = out->has_shadow_verdict = out->degraded = out->replayed = false;
    out->nreasons = out->nshadow = out->unknown_ids = 0;
    bool has_verdict = false, has_error = false;
    for (uint32_t i = 0, nkeys = it.n; i < nkeys; i++) {
        rk_mp_item k, v;
        if (rk_mp_read(&m, &k) < 0 || k.type != RK_MP_STR)
            return RK_EPARSE;
        rk_mp at = m; /* the value, to skip when it is not read here */
        if (rk_mp_read(&m, &v) < 0)
            return RK_EPARSE;
        int rc = 0;
        bool consumed = v.type != RK_MP_ARRAY && v.type != RK_MP_MAP;
        if (key_is(&k, "decision", 8)) {
            rc = verdict_of(&v, &out->verdict);
            has_verdict = true;
        } else if (key_is(&k, "score", 5)) {
            rc = rk_mp_double(&v, &out->score);
        } else if (key_is(&k, "model_score", 11)) {
            out->has_model_score = v.type != RK_MP_NIL;
            if (out->has_model_score)
                rc = rk_mp_double(&v, &out->model_score);
        } else if (key_is(&k, "reasons", 7) && v.type == RK_MP_ARRAY) {
            rc = read_ids(&m, v.n, rules, nrules, out->reasons, &out->nreasons, &out->unknown_ids);
            consumed = true;
        } else if (key_is(&k, "shadow", 6) && v.type == RK_MP_ARRAY) {
            rc = read_ids(&m, v.n, rules, nrules, out->shadow, &out->nshadow, &out->unknown_ids);
            consumed = true;
        } else if (key_is(&k, "shadow_decision", 15)) {
            rc = verdict_of(&v, &out->shadow_verdict);
            out->has_shadow_verdict = true;
        } else if (key_is(&k, "degraded", 8) && v.type == RK_MP_BOOL) {
            out->degraded = v.b;
        } else if (key_is(&k, "replayed", 8) && v.type == RK_MP_BOOL) {
            out->replayed = v.b;
        } else if (key_is(&k, "error", 5) && v.type == RK_MP_MAP) {
            rc = read_error(&m, v.n, &out->error);
            has_error = consumed = true;
        }
        if (rc < 0)
            return RK_EPARSE;
        if (!consumed) {
            m = at;
            if (rk_mp_skip(&m, RK_MP_DEPTH_MAX) < 0)
                return RK_EPARSE;
        }
    }
    out->kind = has_error ? RK_REPLAY_ERROR : has_verdict ? RK_REPLAY_DECISION : RK_REPLAY_OTHER;
    return 0;
}

int rk_replay_parse_reply(const uint8_t *buf, size_t len, const rk_ruleset *rs,
                          rk_replay_outcome *out)
{
    if (!rs)
        return parse_reply(buf, len, NULL, 0, out);
    int n = rk_ruleset_nrules(rs);
    rule_ref *rules = n ? malloc((size_t)n * sizeof *rules) : NULL;
    if (n && !rules)
        return RK_ENOMEM;
    for (int i = 0; i < n; i++) {
        rules[i].id = rk_ruleset_rule_id(rs, i);
        rules[i].len = (uint32_t)strlen(rules[i].id);
    }
    int rc = parse_reply(buf, len, rules, n, out);
    free(rules);
    return rc;
}

/* ---- the private store directory ----------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0; /* keep going: remove whatever can be removed */
}

static void remove_dir(char *dir)
{
    if (dir[0])
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    dir[0] = '\0';
}

/* Copies file name from src_dir to dst_dir with mode 0600. RK_ENOTFOUND when
 * the source is missing, RK_EIO otherwise (errno kept). */
static int copy_file(const char *src_dir, const char *dst_dir, const char *name)
{
    char src[4200], dst[4200];
    snprintf(src, sizeof src, "%s/%s", src_dir, name);
    snprintf(dst, sizeof dst, "%s/%s", dst_dir, name);
    return rk_fcopy(src, dst, 0600, SIZE_MAX, false);
}

/* A fresh private store gets a fixed secret instead of a random one. Distinct
 * counts past their exact range are estimated from keyed value hashes, so with
 * a random secret two backtests of one log could differ in the last digit of
 * a large distinct count; with this one they are reproducible. The secret only
 * keys a store that lives in a private temporary directory for one run. */
static int fixed_secret(const char *dir, rk_diag *diag)
{
    static const char label[] = "riskd backtest secret v1";
    unsigned char secret[RK_SECRET_LEN];
    crypto_generichash(secret, sizeof secret, (const unsigned char *)label, sizeof label - 1,
                       NULL, 0);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, RK_SECRET_FILE);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    bool ok = fd >= 0 && write(fd, secret, sizeof secret) == (ssize_t)sizeof secret;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok) {
        rk_diag_set(diag, path, 0, 0, "cannot write the private store's secret: %s",
                    strerror(errno));
        return RK_EIO;
    }
    return 0;
}

/* Fills dir with a copy of the backup in state_dir. */
static int seed_store(const char *state_dir, const char *dir, rk_diag *diag)
{
    struct stat st;
    if (stat(state_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rk_diag_set(diag, state_dir, 0, 0, "no such directory (--state takes a backup "
                    "directory made by 'riskctl backup')");
        return RK_ENOTFOUND;
    }
    char lock[4200];
    snprintf(lock, sizeof lock, "%s/lock.mdb", state_dir);
    if (access(lock, F_OK) == 0) /* backups have none; a data directory riskd ran on has */
        rk_log_warn("%s is a data directory, not a backup: if riskd is running on it, the copy "
                    "may be torn (make a consistent one with 'riskctl backup DIR')", state_dir);
    const char *files[] = {DATA_FILE, RK_SECRET_FILE};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        int rc = copy_file(state_dir, dir, files[i]);
        if (rc == RK_ENOTFOUND) {
            rk_diag_set(diag, state_dir, 0, 0, "not a backup directory: it has no '%s' "
                        "(make one with 'riskctl backup DIR')", files[i]);
            return RK_EINVAL;
        }
        if (rc < 0) {
            rk_diag_set(diag, state_dir, 0, 0, "cannot copy '%s' into %s: %s", files[i], dir,
                        strerror(errno));
            return rc;
        }
    }
    /* the backup's write-ahead log: changes its databases do not hold yet */
    DIR *d = opendir(state_dir);
    int rc = d ? 0 : RK_EIO;
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        if (!rk_store_is_log_file(e->d_name))
            continue;
        if ((rc = copy_file(state_dir, dir, e->d_name)) != 0)
            rk_diag_set(diag, state_dir, 0, 0, "cannot copy '%s' into %s: %s", e->d_name, dir,
                        strerror(errno));
    }
    if (d)
        closedir(d);
    else
        rk_diag_set(diag, state_dir, 0, 0, "cannot read the directory: %s", strerror(errno));
    return rc;
}

/* ---- the replayer -------------------------------------------------------- */

int rk_replayer_open(const rk_replayer_config *cfg, rk_replayer **out, rk_diag *diag)
{
    rk_diag_clear(diag);
    rk_replayer *r = calloc(1, sizeof *r);
    if (!r) {
        rk_diag_set(diag, cfg->rules_path, 0, 0, "%s", rk_strerror(RK_ENOMEM));
        return RK_ENOMEM;
    }
    const char *parent = cfg->tmp_parent;
    if (!parent || !*parent)
        parent = getenv("TMPDIR");
    if (!parent || !*parent)
        parent = "/tmp";
    int rc = 0;
    if ((size_t)snprintf(r->dir, sizeof r->dir, "%s/riskd-replay-XXXXXX", parent) >=
        sizeof r->dir) {
        r->dir[0] = '\0';
        rk_diag_set(diag, parent, 0, 0, "temporary directory path too long");
        rc = RK_EINVAL;
    } else if (!mkdtemp(r->dir)) {
        rk_diag_set(diag, parent, 0, 0, "cannot make a temporary store directory: %s",
                    strerror(errno));
        r->dir[0] = '\0';
        rc = RK_EIO;
    }
    if (rc == 0 && cfg->state_dir)
        rc = seed_store(cfg->state_dir, r->dir, diag);
    else if (rc == 0)
        rc = fixed_secret(r->dir, diag);

    rk_engine_config ec;
    rk_engine_config_default(&ec);
    ec.rules_path = cfg->rules_path;
    ec.clock_ms = event_clock;
    ec.store.dir = r->dir;
    ec.store.durability = RK_DUR_PERIODIC;
    ec.store.sync_interval_ms = SYNC_INTERVAL_MS;
    ec.store.sweep_interval_ms = 0;
    ec.store.map_size = MAP_SIZE;
    ec.store.writemap = true;
    ec.store.batch = cfg->batch > 0 ? cfg->batch : RK_REPLAY_BATCH_DEFAULT;
    ec.store.cache_records = RK_REPLAY_CACHE_RECORDS;
    if (rc == 0)
        rc = rk_engine_open(&ec, &r->engine, diag);
    if (rc == 0 && (rc = rk_worker_new(r->engine, &r->worker)) < 0)
        rk_diag_set(diag, cfg->rules_path, 0, 0, "%s", rk_strerror(rc));
    if (rc == 0) {
        r->snap = rk_snapshot_cell_acquire(rk_engine_snapshots(r->engine));
        r->rs = rk_snapshot_ruleset(r->snap);
        r->nrules = rk_ruleset_nrules(r->rs);
        r->rules = calloc((size_t)r->nrules + 1, sizeof *r->rules);
        if (!r->rules) {
            rc = RK_ENOMEM;
            rk_diag_set(diag, cfg->rules_path, 0, 0, "%s", rk_strerror(rc));
        }
        for (int i = 0; r->rules && i < r->nrules; i++) {
            r->rules[i].id = rk_ruleset_rule_id(r->rs, i);
            r->rules[i].len = (uint32_t)strlen(r->rules[i].id);
        }
    }
    if (rc < 0) {
        rk_replayer_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

void rk_replayer_close(rk_replayer *r)
{
    if (!r)
        return;
    rk_worker_free(r->worker);
    rk_snapshot_release(r->snap);
    rk_engine_close(r->engine);
    free(r->rules);
    remove_dir(r->dir);
    free(r);
}

const rk_ruleset *rk_replayer_ruleset(const rk_replayer *r)
{
    return r->rs;
}

const char *rk_replayer_label(const rk_replayer *r)
{
    return rk_snapshot_label(r->snap);
}

/* The outcome a fresh decision's reply reads as (parse_reply gives the same:
 * test_replay checks every run against it), without reading it: ~2.5% of a
 * backtest. */
static void outcome_of(const rk_decision *d, bool has_ms, double ms, rk_replay_outcome *out)
{
    out->kind = RK_REPLAY_DECISION;
    out->verdict = d->verdict;
    out->error = RK_WERR_NONE;
    out->score = d->score;
    out->has_model_score = has_ms;
    out->model_score = has_ms ? ms : 0;
    out->has_shadow_verdict = d->has_shadow_rules;
    out->shadow_verdict = d->shadow_verdict;
    out->degraded = out->replayed = false;
    out->nreasons = d->nreasons;
    out->nshadow = d->nshadow;
    out->unknown_ids = 0;
    memcpy(out->reasons, d->reasons, (size_t)d->nreasons * sizeof d->reasons[0]);
    memcpy(out->shadow, d->shadow, (size_t)d->nshadow * sizeof d->shadow[0]);
}

int rk_replayer_run(rk_replayer *r, const uint8_t *msg, size_t len,
                    const rk_replay_outcome **out, const uint8_t **reply, size_t *reply_len)
{
    const uint8_t *rep;
    size_t n = rk_pipeline_run(r->worker, msg, len, false, &rep);
    if (reply)
        *reply = rep;
    if (reply_len)
        *reply_len = n;
    bool has_ms;
    double ms;
    const rk_decision *d = rk_worker_decision(r->worker, &has_ms, &ms);
    if (d) {
        outcome_of(d, has_ms, ms, &r->out);
    } else {
        int rc = parse_reply(rep, n, r->rules, r->nrules, &r->out);
        if (rc < 0)
            return rc;
    }
    *out = &r->out;
    return 0;
}

int rk_replayer_features(const rk_replayer *r, const float **x)
{
    return rk_worker_features(r->worker, x);
}
