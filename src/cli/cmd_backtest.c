/* riskctl backtest: what would a rule set have decided on past traffic?
 *
 * Loads one or more logs (traffic logs, decision logs, or a directory of
 * them), orders their records by event time, and replays every request
 * through the candidate rule set with an rk_replayer (engine/replay.h): the
 * server's own pipeline, in-process, on a private temporary store whose
 * counters start empty or from a backup (--state). A baseline rule set, when
 * given, gets its own replayer and store and sees the same records, so the
 * two runs differ only by their rules. Then it reports, as text or one JSON
 * object: decisions, errors, per-rule hits, and when they apply the label
 * statistics (overall and per `scenario`), the decision-change matrix against
 * the baseline, and how many decisions differ from a decision log's. It can
 * also write the model features of every transaction as CSV for training.
 *
 * Event time. Records are stably sorted by `ts`; a request without one takes
 * its decision record's `at`, else the time of the record before it in the
 * input (the records before the first timed one take that one's time), and
 * the replayers' clock reads the current record's time, so counter windows,
 * retry windows and list expiry all follow the log. Ties keep input order.
 *
 * Memory. The logs stay mapped (the reader's records borrow the mapping) and
 * one small `record` per request is kept for sorting and for the examples
 * printed at the end; nothing is allocated per record in the replay loop,
 * which is what throughput_tps measures. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/replay.h"
#include "lib/clock.h"
#include "lib/diag.h"
#include "lib/err.h"
#include "lib/log.h"
#include "proto/mp.h"
#include "proto/rlog.h"
#include "rules/ruleset.h"

#define EXAMPLES_DEFAULT 5    /* example ids per changed cell or differing decision */
#define EXAMPLES_MAX 1000     /* --examples upper bound */
#define BATCH_MAX 1000000     /* --batch upper bound */
#define SCENARIOS_MAX 64      /* distinct `scenario` strings tracked; more go to "(other)" */
#define NO_TIME INT64_MIN     /* a record whose event time is not known yet */

/* The outcome classes of the change matrix: the three verdicts, then "no
 * decision" (an error reply, or a reply that is not a score). */
enum { CL_NONE = RK_VERDICT__COUNT, CL__COUNT };

static volatile sig_atomic_t interrupted; /* SIGINT/SIGTERM: stop, clean up, fail */

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ---- loading the logs ---------------------------------------------------- */

/* One request to replay, borrowed from a log's mapping. */
typedef struct record {
    const uint8_t *req;  /* the request's msgpack bytes */
    const uint8_t *resp; /* a decision record's logged reply; NULL for a plain record */
    uint32_t req_len;    /* bytes of req */
    uint32_t resp_len;   /* bytes of resp */
    int64_t t;           /* event time (ms), see the top of the file */
    int64_t amount;      /* `amount` when an integer, else 0 */
    uint32_t seq;        /* position in the input, for the stable sort */
    int8_t label;        /* 1 fraud, 0 legitimate, -1 unlabelled */
    uint8_t scenario;    /* index into input.scenarios; 0: none */
} record;

/* A scenario name, borrowed from the log. */
typedef struct scenario {
    const char *name; /* the bytes of the `scenario` string */
    uint32_t len;     /* their length */
} scenario;

typedef struct input {
    rk_rlog **logs;       /* the open readers; their mappings back every record */
    char **paths;         /* their paths (malloc'd), for the report */
    size_t nlogs;         /* readers open */
    record *recs;         /* the requests, in event-time order once sorted */
    size_t n;             /* requests */
    size_t cap;           /* allocated */
    size_t labelled;      /* records carrying a label */
    size_t decisions;     /* decision-log records (with a logged reply) */
    scenario scenarios[SCENARIOS_MAX + 2]; /* [0] none, [1..] seen, last "(other)" */
    int nscenarios;       /* used entries, [0] included */
    const char *logged_ruleset; /* the first decision record's ruleset, borrowed */
    uint32_t logged_ruleset_len; /* its bytes */
    bool mixed_rulesets;  /* decision records name more than one rule set */
} input;

static void input_free(input *in)
{
    for (size_t i = 0; i < in->nlogs; i++) {
        rk_rlog_close(in->logs[i]);
        free(in->paths[i]);
    }
    free(in->logs);
    free(in->paths);
    free(in->recs);
}

/* The scenario index of (s, n), interned. */
static uint8_t intern_scenario(input *in, const uint8_t *s, uint32_t n)
{
    for (int i = 1; i < in->nscenarios; i++)
        if (in->scenarios[i].len == n && memcmp(in->scenarios[i].name, s, n) == 0)
            return (uint8_t)i;
    if (in->nscenarios == SCENARIOS_MAX + 1) {
        in->scenarios[in->nscenarios++] = (scenario){"(other)", 7};
        return (uint8_t)(in->nscenarios - 1);
    }
    if (in->nscenarios > SCENARIOS_MAX + 1)
        return (uint8_t)(in->nscenarios - 1);
    in->scenarios[in->nscenarios] = (scenario){(const char *)s, n};
    return (uint8_t)in->nscenarios++;
}

/* Reads ts, amount and scenario from a request in one pass over its keys. A
 * request that is not a well-formed map yields none of them (the pipeline
 * will answer it with an error, as riskd did). */
static void scan_request(input *in, record *r)
{
    rk_mp m;
    rk_mp_item it;
    rk_mp_init(&m, r->req, r->req_len);
    if (rk_mp_read(&m, &it) < 0 || it.type != RK_MP_MAP)
        return;
    for (uint32_t i = 0; i < it.n; i++) {
        rk_mp_item k, v;
        if (rk_mp_read(&m, &k) < 0)
            return;
        rk_mp at = m;
        if (rk_mp_read(&m, &v) < 0)
            return;
        int64_t x;
        if (k.type == RK_MP_STR && k.raw.len == 2 && memcmp(k.raw.p, "ts", 2) == 0) {
            if (rk_mp_int64(&v, &x) == 0)
                r->t = x;
        } else if (k.type == RK_MP_STR && k.raw.len == 6 && memcmp(k.raw.p, "amount", 6) == 0) {
            if (rk_mp_int64(&v, &x) == 0)
                r->amount = x;
        } else if (rk_mp_str_eq(&k, "scenario") && v.type == RK_MP_STR) {
            r->scenario = intern_scenario(in, v.raw.p, v.raw.len);
        }
        if (v.type == RK_MP_ARRAY || v.type == RK_MP_MAP) {
            m = at;
            if (rk_mp_skip(&m, RK_MP_DEPTH_MAX) < 0)
                return;
        }
    }
}

static int add_record(input *in, const rk_rlog_rec *rec)
{
    if (in->n == in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 4096;
        record *recs = realloc(in->recs, cap * sizeof *recs);
        if (!recs)
            return RK_ENOMEM;
        in->recs = recs;
        in->cap = cap;
    }
    if (in->n >= UINT32_MAX || rec->req_len > UINT32_MAX || rec->resp_len > UINT32_MAX)
        return RK_ETOOBIG;
    record *r = &in->recs[in->n];
    *r = (record){.req = rec->req, .req_len = (uint32_t)rec->req_len, .resp = rec->resp,
                  .resp_len = (uint32_t)rec->resp_len, .t = NO_TIME, .seq = (uint32_t)in->n,
                  .label = (int8_t)(rec->label < 0 ? -1 : rec->label != 0)};
    scan_request(in, r);
    if (r->t == NO_TIME && rec->resp && rec->at != 0)
        r->t = rec->at;
    if (r->label >= 0)
        in->labelled++;
    if (rec->resp) {
        in->decisions++;
        if (rec->ruleset && !in->logged_ruleset) {
            in->logged_ruleset = rec->ruleset;
            in->logged_ruleset_len = rec->ruleset_len;
        } else if (rec->ruleset && (rec->ruleset_len != in->logged_ruleset_len ||
                                    memcmp(rec->ruleset, in->logged_ruleset, rec->ruleset_len))) {
            in->mixed_rulesets = true;
        }
    }
    in->n++;
    return 0;
}

/* Reads every record of the log at path. Returns RK_CLI_OK or RK_CLI_FAIL
 * after the message. */
static int load_log(input *in, const char *path)
{
    rk_rlog *r = NULL;
    int rc = rk_rlog_open(path, &r);
    if (rc < 0) {
        int e = errno;
        if (rc == RK_ENOTFOUND)
            return rk_cli_fail("%s: no such file", path);
        return rk_cli_fail("%s: cannot read: %s", path,
                           rc == RK_EIO ? strerror(e) : rk_strerror(rc));
    }
    rk_rlog **logs = realloc(in->logs, (in->nlogs + 1) * sizeof *logs);
    if (logs)
        in->logs = logs;
    char **paths = logs ? realloc(in->paths, (in->nlogs + 1) * sizeof *paths) : NULL;
    if (paths)
        in->paths = paths;
    char *copy = paths ? strdup(path) : NULL;
    if (!copy) {
        rk_rlog_close(r);
        return rk_cli_fail("out of memory");
    }
    in->paths[in->nlogs] = copy;
    in->logs[in->nlogs++] = r;
    rk_rlog_rec rec;
    while (!interrupted && (rc = rk_rlog_next(r, &rec)) == 1)
        if ((rc = add_record(in, &rec)) < 0)
            return rk_cli_fail("%s: %s", path, rk_strerror(rc));
    if (rc < 0)
        return rk_cli_fail("%s: %s", path, rk_rlog_error(r));
    uint64_t at;
    if (rk_rlog_torn(r, &at))
        fprintf(stderr, "riskctl: %s: torn record at byte %" PRIu64 " (ignored)\n", path, at);
    return RK_CLI_OK;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads a log file, or every *.rlog in a directory in name order (a decision
 * log directory with its rotated files). */
static int load_path(input *in, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return load_log(in, path);
    DIR *d = opendir(path);
    if (!d)
        return rk_cli_fail("%s: cannot read: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0;
    int status = RK_CLI_OK;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".rlog") != 0 || e->d_name[0] == '.')
            continue;
        char **more = realloc(names, (n + 1) * sizeof *names);
        char *full = more ? malloc(strlen(path) + len + 2) : NULL;
        if (more)
            names = more;
        if (!full) {
            status = rk_cli_fail("out of memory");
            break;
        }
        sprintf(full, "%s/%s", path, e->d_name);
        names[n++] = full;
    }
    closedir(d);
    if (status == RK_CLI_OK && n == 0)
        status = rk_cli_fail("%s: no *.rlog files in this directory", path);
    if (status == RK_CLI_OK)
        qsort(names, n, sizeof *names, cmp_name);
    for (size_t i = 0; i < n; i++) {
        if (status == RK_CLI_OK)
            status = load_log(in, names[i]);
        free(names[i]);
    }
    free(names);
    return status;
}

static int cmp_record(const void *a, const void *b)
{
    const record *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Gives untimed records their time (see the top of the file), then orders
 * everything by time, input order within a time. */
static void order_records(input *in)
{
    int64_t prev = NO_TIME;
    for (size_t i = 0; i < in->n && prev == NO_TIME; i++)
        prev = in->recs[i].t;
    if (prev == NO_TIME)
        prev = rk_clock_wall_ms(); /* no record says when: replay "now" */
    bool sorted = true;
    for (size_t i = 0; i < in->n; i++) {
        record *r = &in->recs[i];
        if (r->t == NO_TIME)
            r->t = prev;
        sorted &= r->t >= prev || i == 0;
        prev = r->t;
    }
    if (!sorted)
        qsort(in->recs, in->n, sizeof *in->recs, cmp_record);
}

/* ---- tallies ------------------------------------------------------------- */

/* Label statistics of a group of records (all, or one scenario). */
typedef struct group {
    uint64_t records;          /* transactions in the group */
    uint64_t fraud;            /* labelled 1 */
    uint64_t legit;            /* labelled 0 */
    uint64_t caught_block;     /* fraud decided block */
    uint64_t caught_review;    /* fraud decided review */
    uint64_t fp_review;        /* legitimate decided review */
    uint64_t fp_block;         /* legitimate decided block */
    int64_t fraud_amt_caught;  /* summed amounts of caught fraud (minor units, any currency) */
    int64_t fraud_amt_missed;  /* of missed fraud */
    int64_t legit_amt_review;  /* of legitimate payments sent to review */
    int64_t legit_amt_block;   /* of legitimate payments blocked */
} group;

/* Everything counted about one rule set's replay. */
typedef struct tally {
    const char *path;                         /* the rule file */
    const char *label;                        /* its name@version */
    const rk_ruleset *rs;                     /* its rule set */
    uint64_t decisions[RK_VERDICT__COUNT];    /* score replies by verdict */
    uint64_t shadow_decisions[RK_VERDICT__COUNT]; /* shadow_decision by verdict */
    bool has_shadow;                          /* replies carried shadow_decision */
    uint64_t errors[RK_WERR__COUNT + 1];      /* error replies by code ([__COUNT]: unknown) */
    uint64_t not_scored;                      /* replies that were neither (a ping's) */
    uint64_t degraded;                        /* fallback decisions after an internal failure */
    uint64_t replayed;                        /* retries answered from a stored decision */
    uint64_t *hits;                           /* per rule index */
    group all;                                /* label statistics, every record */
    group scen[SCENARIOS_MAX + 2];            /* by input.scenarios index */
} tally;

static int outcome_class(const rk_replay_outcome *o)
{
    return o->kind == RK_REPLAY_DECISION ? (int)o->verdict : CL_NONE;
}

static void count_group(group *g, const record *r, int cls)
{
    g->records++;
    if (r->label < 0)
        return;
    if (r->label) {
        g->fraud++;
        if (cls == RK_BLOCK) {
            g->caught_block++;
            g->fraud_amt_caught += r->amount;
        } else if (cls == RK_REVIEW) {
            g->caught_review++;
            g->fraud_amt_caught += r->amount;
        } else {
            g->fraud_amt_missed += r->amount;
        }
    } else {
        g->legit++;
        if (cls == RK_BLOCK) {
            g->fp_block++;
            g->legit_amt_block += r->amount;
        } else if (cls == RK_REVIEW) {
            g->fp_review++;
            g->legit_amt_review += r->amount;
        }
    }
}

static void count(tally *t, const record *r, const rk_replay_outcome *o)
{
    switch (o->kind) {
    case RK_REPLAY_DECISION:
        t->decisions[o->verdict]++;
        if (o->has_shadow_verdict) {
            t->shadow_decisions[o->shadow_verdict]++;
            t->has_shadow = true;
        }
        break;
    case RK_REPLAY_ERROR:
        t->errors[o->error]++;
        break;
    default:
        t->not_scored++;
        break;
    }
    t->degraded += o->degraded;
    t->replayed += o->replayed;
    for (int i = 0; i < o->nreasons; i++)
        t->hits[o->reasons[i]]++;
    for (int i = 0; i < o->nshadow; i++)
        t->hits[o->shadow[i]]++;
    int cls = outcome_class(o);
    count_group(&t->all, r, cls);
    count_group(&t->scen[r->scenario], r, cls);
}

/* An outcome remembered for an example: class, and the error code. */
typedef struct brief {
    int8_t cls;        /* verdict or CL_NONE */
    int8_t kind;       /* an rk_replay_kind */
    int8_t error;      /* rk_wire_err for an error */
} brief;

static brief brief_of(const rk_replay_outcome *o)
{
    return (brief){(int8_t)outcome_class(o), (int8_t)o->kind, (int8_t)o->error};
}

static bool brief_eq(brief a, brief b)
{
    return a.cls == b.cls && a.kind == b.kind && (a.kind != RK_REPLAY_ERROR || a.error == b.error);
}

/* A decision that differs from the logged one. */
typedef struct differ {
    size_t rec;   /* index into input.recs */
    brief logged; /* what the log says */
    brief now;    /* what the replay gave */
} differ;

typedef struct run {
    input in;                       /* the records */
    tally cand;                     /* the rule set under test */
    tally base;                     /* the baseline (when given) */
    bool has_base;                  /* --baseline was given */
    int nexamples;                  /* --examples */
    uint64_t matrix[CL__COUNT][CL__COUNT]; /* baseline class -> candidate class */
    size_t *examples;               /* [CL__COUNT][CL__COUNT][nexamples] record indexes */
    uint64_t logged_compared;       /* decision records compared with their logged reply */
    uint64_t logged_unreadable;     /* logged replies that could not be read */
    uint64_t differs;               /* of those, how many differ */
    differ *differ_ex;              /* the first nexamples of them */
    size_t replayed_n;              /* records replayed (all, unless interrupted) */
    double load_s;                  /* reading and sorting */
    double replay_s;                /* the replay loop, wall clock */
    double replay_cpu_s;            /* the replay loop, this thread's CPU time */
} run;

/* ---- --emit-features ------------------------------------------------------ */

/* The CSV being written, under a temporary name renamed into place on
 * success, so a failed or interrupted backtest never leaves half a file (or
 * clobbers an older one) under the name asked for. */
typedef struct features_out {
    FILE *f;          /* the open file */
    const char *path; /* the name asked for */
    char tmp[4200];   /* the name written to */
    int n;            /* features per row */
} features_out;

/* Opens the CSV and writes its header. RK_CLI_OK or RK_CLI_FAIL after the message. */
static int features_open(features_out *fo, const char *path, const rk_ruleset *rs,
                         const char *rules_path)
{
    fo->n = rk_ruleset_nfeatures(rs);
    if (fo->n <= 0)
        return rk_cli_fail("%s: rule set declares no model features (model: features: ...); "
                           "--emit-features needs them", rules_path);
    snprintf(fo->tmp, sizeof fo->tmp, "%s.tmp%ld", path, (long)getpid());
    fo->f = fopen(fo->tmp, "w");
    if (!fo->f)
        return rk_cli_fail("cannot write %s: %s", path, strerror(errno));
    fo->path = path;
    fputs("id,ts,label", fo->f);
    for (int i = 0; i < fo->n; i++) {
        const char *name = rk_ruleset_feature_name(rs, i);
        fputc(',', fo->f);
        rk_cli_csv_cell(fo->f, name ? name : "", name ? strlen(name) : 0);
    }
    fputc('\n', fo->f);
    return RK_CLI_OK;
}

/* One row: the record's id, event time and label, then the features the
 * replayer computed for it (empty cells for missing ones). */
static void features_row(features_out *fo, const rk_replayer *r, const record *rec)
{
    rk_mp_item id;
    if (rk_mp_map_find(rec->req, rec->req_len, "id", &id, NULL) == 0 && id.type == RK_MP_STR)
        rk_cli_csv_cell(fo->f, (const char *)id.raw.p, id.raw.len);
    fprintf(fo->f, ",%" PRId64 ",", rec->t);
    if (rec->label >= 0)
        fputc('0' + rec->label, fo->f);
    const float *x = NULL;
    int n = rk_replayer_features(r, &x);
    for (int i = 0; i < fo->n; i++) {
        fputc(',', fo->f);
        if (x && i < n && !isnan(x[i]))
            fprintf(fo->f, "%.9g", (double)x[i]);
    }
    fputc('\n', fo->f);
}

/* Closes the CSV and, when status is RK_CLI_OK, renames it into place; else
 * removes it. Returns the final status. */
static int features_close(features_out *fo, int status)
{
    if (!fo->f)
        return status;
    bool bad = ferror(fo->f) != 0;
    bad |= fclose(fo->f) != 0;
    if (status == RK_CLI_OK && !bad && rename(fo->tmp, fo->path) != 0)
        bad = true;
    if (status == RK_CLI_OK && bad)
        status = rk_cli_fail("cannot write %s: %s", fo->path, strerror(errno));
    if (status != RK_CLI_OK)
        unlink(fo->tmp);
    return status;
}

/* ---- the replay loop ------------------------------------------------------ */

static int tally_init(tally *t, const rk_replayer *r, const char *path)
{
    memset(t, 0, sizeof *t);
    t->path = path;
    t->rs = rk_replayer_ruleset(r);
    t->label = rk_replayer_label(r);
    t->hits = calloc((size_t)rk_ruleset_nrules(t->rs) + 1, sizeof *t->hits);
    return t->hits ? 0 : RK_ENOMEM;
}

/* The example record indexes kept for matrix cell (from, to). */
static size_t *cell_examples(const run *rn, int from, int to)
{
    return rn->examples + ((size_t)from * CL__COUNT + (size_t)to) * (size_t)rn->nexamples;
}

static void remember_change(run *rn, int from, int to, size_t rec)
{
    uint64_t k = rn->matrix[from][to]++;
    if (k < (uint64_t)rn->nexamples)
        cell_examples(rn, from, to)[k] = rec;
}

/* Compares the candidate's outcome with the decision record's logged reply. */
static void compare_logged(run *rn, size_t i, const rk_replay_outcome *o, rk_replay_outcome *tmp)
{
    const record *r = &rn->in.recs[i];
    if (rk_replay_parse_reply(r->resp, r->resp_len, NULL, tmp) < 0) {
        rn->logged_unreadable++;
        return;
    }
    rn->logged_compared++;
    brief logged = brief_of(tmp), now = brief_of(o);
    if (brief_eq(logged, now))
        return;
    if (rn->differs < (uint64_t)rn->nexamples)
        rn->differ_ex[rn->differs] = (differ){i, logged, now};
    rn->differs++;
}

/* CPU time of this thread: on a shared machine the wall clock also counts
 * what other processes took, so the report gives both. */
static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Replays every record through cand (and base). Returns RK_CLI_OK or
 * RK_CLI_FAIL after the message. */
static int replay_all(run *rn, rk_replayer *cand, rk_replayer *base, features_out *fo)
{
    rk_replay_outcome *tmp = malloc(sizeof *tmp); /* the logged reply, read */
    if (!tmp)
        return rk_cli_fail("out of memory");
    int status = RK_CLI_OK;
    int64_t t0 = rk_clock_ns(), c0 = thread_cpu_ns();
    size_t i = 0;
    for (; i < rn->in.n && !interrupted; i++) {
        const record *r = &rn->in.recs[i];
        const rk_replay_outcome *oc, *ob;
        rk_replay_set_now(r->t);
        if (rk_replayer_run(cand, r->req, r->req_len, &oc, NULL, NULL) < 0) {
            status = rk_cli_fail("internal error: cannot read the reply to record %zu", i + 1);
            break;
        }
        count(&rn->cand, r, oc);
        if (fo->f)
            features_row(fo, cand, r);
        if (r->resp)
            compare_logged(rn, i, oc, tmp);
        if (!base)
            continue;
        int cls = outcome_class(oc); /* oc stays valid: base is another replayer */
        if (rk_replayer_run(base, r->req, r->req_len, &ob, NULL, NULL) < 0) {
            status = rk_cli_fail("internal error: cannot read the reply to record %zu", i + 1);
            break;
        }
        count(&rn->base, r, ob);
        remember_change(rn, outcome_class(ob), cls, i);
    }
    rn->replay_s = (double)(rk_clock_ns() - t0) / 1e9;
    rn->replay_cpu_s = (double)(thread_cpu_ns() - c0) / 1e9;
    rn->replayed_n = i;
    free(tmp);
    if (status == RK_CLI_OK && interrupted)
        status = rk_cli_fail("interrupted after %zu of %zu records", i, rn->in.n);
    return status;
}

/* ---- reporting: shared pieces --------------------------------------------- */

static const char *class_name(int cls)
{
    return cls < RK_VERDICT__COUNT ? rk_verdict_name((rk_verdict)cls) : "none";
}

static const char *error_name(int e)
{
    return e < RK_WERR__COUNT ? rk_wire_err_name((rk_wire_err)e) : "unknown";
}

/* "block", "error bad_request", "no decision". */
static const char *brief_text(brief b, char *buf, size_t size)
{
    if (b.kind == RK_REPLAY_DECISION)
        snprintf(buf, size, "%s", class_name(b.cls));
    else if (b.kind == RK_REPLAY_ERROR)
        snprintf(buf, size, "error %s", error_name(b.error));
    else
        snprintf(buf, size, "no decision");
    return buf;
}

/* The request's id, or "(record N)" when it has none. */
static const char *record_id(const run *rn, size_t i, char *buf, size_t size)
{
    const record *r = &rn->in.recs[i];
    rk_mp_item id;
    if (rk_mp_map_find(r->req, r->req_len, "id", &id, NULL) == 0 && id.type == RK_MP_STR)
        snprintf(buf, size, "%.*s", (int)(id.raw.len > 200 ? 200 : id.raw.len),
                 (const char *)id.raw.p);
    else
        snprintf(buf, size, "(record %u)", r->seq + 1);
    return buf;
}

static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

static uint64_t errors_total(const tally *t)
{
    uint64_t n = 0;
    for (int e = 0; e <= RK_WERR__COUNT; e++)
        n += t->errors[e];
    return n;
}

/* The rows and columns of the change matrix to show: the verdicts, and "no
 * decision" only when something lands there. */
static int matrix_classes(const run *rn)
{
    for (int k = 0; k < CL__COUNT; k++)
        if (rn->matrix[CL_NONE][k] || rn->matrix[k][CL_NONE])
            return CL__COUNT;
    return RK_VERDICT__COUNT;
}

static uint64_t changed_total(const run *rn)
{
    uint64_t n = 0;
    for (int a = 0; a < CL__COUNT; a++)
        for (int b = 0; b < CL__COUNT; b++)
            n += a == b ? 0 : rn->matrix[a][b];
    return n;
}

/* ---- reporting: JSON ------------------------------------------------------ */

static void json_str(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_cstr(FILE *f, const char *s)
{
    json_str(f, s, strlen(s));
}

static void json_verdicts(FILE *f, const uint64_t *v)
{
    fputc('{', f);
    for (int i = 0; i < RK_VERDICT__COUNT; i++)
        fprintf(f, "%s\"%s\":%" PRIu64, i ? "," : "", class_name(i), v[i]);
    fputc('}', f);
}

/* Writes g as a JSON object left open, so the caller can add keys (labels
 * adds "scenarios") before closing it. */
static void json_group(FILE *f, const group *g)
{
    uint64_t caught = g->caught_block + g->caught_review, fp = g->fp_review + g->fp_block;
    fprintf(f,
            "{\"transactions\":%" PRIu64 ",\"labelled\":%" PRIu64 ",\"fraud\":%" PRIu64
            ",\"legit\":%" PRIu64 ",\"caught\":%" PRIu64 ",\"caught_block\":%" PRIu64
            ",\"caught_review\":%" PRIu64 ",\"missed\":%" PRIu64 ",\"detection_rate\":%.6f"
            ",\"false_positives\":%" PRIu64 ",\"false_positives_block\":%" PRIu64
            ",\"false_positive_rate\":%.6f,\"precision\":%.6f"
            ",\"fraud_amount_caught\":%" PRId64 ",\"fraud_amount_missed\":%" PRId64
            ",\"legit_amount_reviewed\":%" PRId64 ",\"legit_amount_blocked\":%" PRId64,
            g->records, g->fraud + g->legit, g->fraud, g->legit, caught, g->caught_block,
            g->caught_review, g->fraud - caught, ratio(caught, g->fraud), fp, g->fp_block,
            ratio(fp, g->legit), ratio(caught, caught + fp), g->fraud_amt_caught,
            g->fraud_amt_missed, g->legit_amt_review, g->legit_amt_block);
}

static void json_tally(FILE *f, const run *rn, const tally *t)
{
    fputs("\"ruleset\":", f);
    json_cstr(f, t->label);
    fputs(",\"rules\":", f);
    json_cstr(f, t->path);
    fprintf(f, ",\"transactions\":%zu,\"decisions\":", rn->replayed_n);
    json_verdicts(f, t->decisions);
    fputs(",\"errors\":{", f);
    const char *sep = "";
    for (int e = RK_WERR_NONE + 1; e <= RK_WERR__COUNT; e++)
        if (t->errors[e]) {
            fprintf(f, "%s\"%s\":%" PRIu64, sep, error_name(e), t->errors[e]);
            sep = ",";
        }
    fprintf(f, "},\"not_scored\":%" PRIu64 ",\"degraded\":%" PRIu64 ",\"replayed\":%" PRIu64,
            t->not_scored, t->degraded, t->replayed);
    if (t->has_shadow) {
        fputs(",\"shadow_decisions\":", f);
        json_verdicts(f, t->shadow_decisions);
    }
    for (int shadow = 0; shadow < 2; shadow++) {
        fputs(shadow ? ",\"shadow_hits\":{" : ",\"rule_hits\":{", f);
        sep = "";
        for (int i = 0, n = rk_ruleset_nrules(t->rs); i < n; i++) {
            if (rk_ruleset_rule_shadow(t->rs, i) != (shadow == 1))
                continue;
            fputs(sep, f);
            json_cstr(f, rk_ruleset_rule_id(t->rs, i));
            fprintf(f, ":%" PRIu64, t->hits[i]);
            sep = ",";
        }
        fputc('}', f);
    }
    if (rn->in.labelled == 0)
        return;
    fputs(",\"labels\":", f);
    json_group(f, &t->all);
    if (rn->in.nscenarios > 1) {
        fputs(",\"scenarios\":{", f);
        sep = "";
        for (int s = 0; s < rn->in.nscenarios; s++) {
            if (!t->scen[s].records)
                continue;
            fputs(sep, f);
            sep = ",";
            if (s)
                json_str(f, rn->in.scenarios[s].name, rn->in.scenarios[s].len);
            else
                json_cstr(f, "(none)");
            fputc(':', f);
            json_group(f, &t->scen[s]);
            fputc('}', f);
        }
        fputc('}', f);
    }
    fputc('}', f);
}

static void json_changes(FILE *f, const run *rn)
{
    char id[256];
    int ncls = matrix_classes(rn);
    fputs(",\"changes\":{", f);
    for (int a = 0; a < ncls; a++) {
        fprintf(f, "%s\"%s\":{", a ? "," : "", class_name(a));
        for (int b = 0; b < ncls; b++)
            fprintf(f, "%s\"%s\":%" PRIu64, b ? "," : "", class_name(b), rn->matrix[a][b]);
        fputc('}', f);
    }
    fprintf(f, ",\"changed\":%" PRIu64 ",\"examples\":{", changed_total(rn));
    const char *sep = "";
    for (int a = 0; a < CL__COUNT; a++)
        for (int b = 0; b < CL__COUNT; b++) {
            uint64_t n = rn->matrix[a][b];
            if (a == b || n == 0 || rn->nexamples == 0)
                continue;
            fprintf(f, "%s\"%s->%s\":[", sep, class_name(a), class_name(b));
            sep = ",";
            size_t shown = n < (uint64_t)rn->nexamples ? (size_t)n : (size_t)rn->nexamples;
            const size_t *ex = cell_examples(rn, a, b);
            for (size_t k = 0; k < shown; k++) {
                fputs(k ? "," : "", f);
                json_cstr(f, record_id(rn, ex[k], id, sizeof id));
            }
            fputc(']', f);
        }
    fputs("}}", f);
}

static void json_report(FILE *f, const run *rn)
{
    fputc('{', f);
    json_tally(f, rn, &rn->cand);
    fputs(",\"logs\":[", f);
    for (size_t i = 0; i < rn->in.nlogs; i++) {
        fputs(i ? "," : "", f);
        json_cstr(f, rn->in.paths[i]);
    }
    fputc(']', f);
    if (rn->has_base) {
        fputs(",\"baseline\":{", f);
        json_tally(f, rn, &rn->base);
        fputc('}', f);
        json_changes(f, rn);
    }
    if (rn->in.decisions) {
        char a[64], b[64], id[256];
        fprintf(f, ",\"differs_from_logged\":%" PRIu64 ",\"logged_compared\":%" PRIu64,
                rn->differs, rn->logged_compared);
        if (rn->logged_unreadable)
            fprintf(f, ",\"logged_unreadable\":%" PRIu64, rn->logged_unreadable);
        if (rn->in.logged_ruleset) {
            fputs(",\"logged_ruleset\":", f);
            json_str(f, rn->in.logged_ruleset, rn->in.logged_ruleset_len);
        }
        fputs(",\"differs_examples\":[", f);
        for (uint64_t k = 0; k < rn->differs && k < (uint64_t)rn->nexamples; k++) {
            const differ *d = &rn->differ_ex[k];
            fputs(k ? ",{\"id\":" : "{\"id\":", f);
            json_cstr(f, record_id(rn, d->rec, id, sizeof id));
            fputs(",\"logged\":", f);
            json_cstr(f, brief_text(d->logged, a, sizeof a));
            fputs(",\"now\":", f);
            json_cstr(f, brief_text(d->now, b, sizeof b));
            fputc('}', f);
        }
        fputc(']', f);
    }
    fprintf(f, ",\"throughput_tps\":%.1f,\"elapsed_s\":%.6f,\"cpu_s\":%.6f,\"load_s\":%.6f}\n",
            rn->replay_s > 0 ? (double)rn->replayed_n / rn->replay_s : 0.0, rn->replay_s,
            rn->replay_cpu_s, rn->load_s);
}

/* ---- reporting: text ------------------------------------------------------ */

/* n with thousands separators: "1,234,567". */
static const char *num(uint64_t n, char *buf)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%" PRIu64, n), o = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* Signed amounts, same format. */
static const char *amount(int64_t n, char *buf)
{
    if (n >= 0)
        return num((uint64_t)n, buf);
    buf[0] = '-';
    num(n == INT64_MIN ? (uint64_t)INT64_MAX + 1 : (uint64_t)-n, buf + 1);
    return buf;
}

static void text_group_row(FILE *f, const char *name, int name_len, const group *g)
{
    char a[32], b[32], c[32], d[32], e[32], h[32], k[32];
    uint64_t caught = g->caught_block + g->caught_review, fp = g->fp_review + g->fp_block;
    fprintf(f, "  %-16.*s %11s %8s %8s %8s %8s %8s %7.2f%% %9s %7.3f%%\n", name_len, name,
            num(g->records, a), num(g->fraud, b), num(caught, c), num(g->caught_block, d),
            num(g->caught_review, e), num(g->fraud - caught, h), 100 * ratio(caught, g->fraud),
            num(fp, k), 100 * ratio(fp, g->legit));
}

static void text_labels(FILE *f, const run *rn)
{
    const tally *t = &rn->cand;
    const group *g = &t->all;
    char a[32], b[32], c[32], d[32];
    fprintf(f, "\nLabels: %s labelled transactions: %s fraud (%.2f%%), %s legitimate\n",
            num(g->fraud + g->legit, a), num(g->fraud, b),
            100 * ratio(g->fraud, g->fraud + g->legit), num(g->legit, c));
    fprintf(f, "  %-16s %11s %8s %8s %8s %8s %8s %8s %9s %8s\n", "", "records", "fraud", "caught",
            "block", "review", "missed", "detected", "false+", "fp rate");
    text_group_row(f, "all", 3, g);
    if (rn->has_base)
        text_group_row(f, "all (baseline)", 14, &rn->base.all);
    for (int s = 0; rn->in.nscenarios > 1 && s < rn->in.nscenarios; s++) {
        if (!t->scen[s].records)
            continue;
        const scenario *sc = &rn->in.scenarios[s];
        text_group_row(f, s ? sc->name : "(none)", s ? (int)sc->len : 6, &t->scen[s]);
    }
    fprintf(f, "  Amounts (minor units, summed across currencies): fraud caught %s, missed %s;\n"
               "  legitimate sent to review %s, blocked %s\n",
            amount(g->fraud_amt_caught, a), amount(g->fraud_amt_missed, b),
            amount(g->legit_amt_review, c), amount(g->legit_amt_block, d));
}

/* Index of rule id in rs, or -1. */
static int rule_index(const rk_ruleset *rs, const char *id)
{
    for (int i = 0, n = rk_ruleset_nrules(rs); i < n; i++)
        if (strcmp(rk_ruleset_rule_id(rs, i), id) == 0)
            return i;
    return -1;
}

static void text_hits(FILE *f, const run *rn)
{
    const tally *t = &rn->cand;
    char a[32], b[32];
    for (int shadow = 0; shadow < 2; shadow++) {
        bool header = false;
        for (int i = 0, n = rk_ruleset_nrules(t->rs); i < n; i++) {
            if (rk_ruleset_rule_shadow(t->rs, i) != (shadow == 1))
                continue;
            if (!header) {
                fprintf(f, "\n%-34s %11s %8s%s\n", shadow ? "Shadow rule hits" : "Rule hits",
                        "hits", "share", rn->has_base ? "    baseline" : "");
                header = true;
            }
            const char *id = rk_ruleset_rule_id(t->rs, i);
            fprintf(f, "  %-32s %11s %7.2f%%", id, num(t->hits[i], a),
                    100 * ratio(t->hits[i], rn->replayed_n));
            if (rn->has_base) {
                int j = rule_index(rn->base.rs, id);
                fprintf(f, " %11s", j < 0 ? "-" : num(rn->base.hits[j], b));
            }
            fputc('\n', f);
        }
    }
}

static void text_changes(FILE *f, const run *rn)
{
    char a[32], id[256];
    fprintf(f, "\nDecision changes: baseline %s (%s) -> %s (%s)\n", rn->base.label,
            rn->base.path, rn->cand.label, rn->cand.path);
    int ncls = matrix_classes(rn);
    fprintf(f, "  %-20s", "baseline \\ now");
    for (int b = 0; b < ncls; b++)
        fprintf(f, " %11s", b == CL_NONE ? "no decision" : class_name(b));
    fputc('\n', f);
    for (int r = 0; r < ncls; r++) {
        fprintf(f, "  %-20s", r == CL_NONE ? "no decision" : class_name(r));
        for (int b = 0; b < ncls; b++)
            fprintf(f, " %11s", num(rn->matrix[r][b], a));
        fputc('\n', f);
    }
    fprintf(f, "  %s decision%s changed\n", num(changed_total(rn), a),
            changed_total(rn) == 1 ? "" : "s");
    for (int r = 0; r < CL__COUNT; r++)
        for (int b = 0; b < CL__COUNT; b++) {
            uint64_t n = rn->matrix[r][b];
            if (r == b || n == 0 || rn->nexamples == 0)
                continue;
            fprintf(f, "    %s -> %s (%s):", r == CL_NONE ? "no decision" : class_name(r),
                    b == CL_NONE ? "no decision" : class_name(b), num(n, a));
            size_t shown = n < (uint64_t)rn->nexamples ? (size_t)n : (size_t)rn->nexamples;
            const size_t *ex = cell_examples(rn, r, b);
            for (size_t k = 0; k < shown; k++)
                fprintf(f, "%s %s", k ? "," : "", record_id(rn, ex[k], id, sizeof id));
            fputs(n > shown ? ", ...\n" : "\n", f);
        }
}

static void text_logged(FILE *f, const run *rn)
{
    char a[32], b[32], x[64], y[64], id[256];
    fprintf(f, "\nDecision log");
    if (rn->in.logged_ruleset)
        fprintf(f, " (decided by %.*s%s)", (int)rn->in.logged_ruleset_len, rn->in.logged_ruleset,
                rn->in.mixed_rulesets ? " and others" : "");
    fprintf(f, ": %s logged decisions compared, %s differ\n", num(rn->logged_compared, a),
            num(rn->differs, b));
    if (rn->logged_unreadable)
        fprintf(f, "  %s logged replies could not be read\n", num(rn->logged_unreadable, a));
    for (uint64_t k = 0; k < rn->differs && k < (uint64_t)rn->nexamples; k++) {
        const differ *d = &rn->differ_ex[k];
        fprintf(f, "    %s: logged %s, now %s\n", record_id(rn, d->rec, id, sizeof id),
                brief_text(d->logged, x, sizeof x), brief_text(d->now, y, sizeof y));
    }
}

static void text_report(FILE *f, const run *rn)
{
    const tally *t = &rn->cand;
    char a[32], b[32];
    fprintf(f, "Backtest of %s (%s)\n", t->label, t->path);
    for (size_t i = 0; i < rn->in.nlogs; i++)
        fprintf(f, "  %-9s %s\n", i ? "" : "log", rn->in.paths[i]);
    fprintf(f, "  %-9s %s transactions in %.3f s (CPU %.3f s): %s transactions/s\n", "replayed",
            num(rn->replayed_n, a), rn->replay_s, rn->replay_cpu_s,
            num((uint64_t)(rn->replay_s > 0 ? (double)rn->replayed_n / rn->replay_s : 0), b));
    fprintf(f, "  %-9s %.3f s reading and ordering the log\n", "loaded", rn->load_s);

    fprintf(f, "\n%-34s %11s %8s\n", "Decisions", "count", "share");
    for (int v = 0; v < RK_VERDICT__COUNT; v++)
        fprintf(f, "  %-32s %11s %7.2f%%\n", class_name(v), num(t->decisions[v], a),
                100 * ratio(t->decisions[v], rn->replayed_n));
    for (int e = RK_WERR_NONE + 1; e <= RK_WERR__COUNT; e++)
        if (t->errors[e]) {
            char name[64];
            snprintf(name, sizeof name, "error %s", error_name(e));
            fprintf(f, "  %-32s %11s %7.2f%%\n", name, num(t->errors[e], a),
                    100 * ratio(t->errors[e], rn->replayed_n));
        }
    if (t->not_scored)
        fprintf(f, "  %-32s %11s\n", "not a score request", num(t->not_scored, a));
    if (t->degraded)
        fprintf(f, "  of which degraded (fallback)   %11s\n", num(t->degraded, a));
    if (t->replayed)
        fprintf(f, "  of which retries (replayed)    %11s\n", num(t->replayed, a));
    if (rn->has_base)
        fprintf(f, "  baseline: allow %s, review %s, block %s%s\n",
                num(rn->base.decisions[RK_ALLOW], a), num(rn->base.decisions[RK_REVIEW], b),
                num(rn->base.decisions[RK_BLOCK], (char[32]){0}),
                errors_total(&rn->base) ? ", with errors" : "");
    if (t->has_shadow)
        fprintf(f, "  had shadow rules been live: allow %s, review %s, block %s\n",
                num(t->shadow_decisions[RK_ALLOW], a), num(t->shadow_decisions[RK_REVIEW], b),
                num(t->shadow_decisions[RK_BLOCK], (char[32]){0}));
    text_hits(f, rn);
    if (rn->in.labelled)
        text_labels(f, rn);
    if (rn->has_base)
        text_changes(f, rn);
    if (rn->in.decisions)
        text_logged(f, rn);
}

/* ---- the command ---------------------------------------------------------- */

/* Parses option name's integer value in [lo, hi]. */
static int parse_int_opt(const rk_cli_cmd *cmd, const char *name, const char *text, long lo,
                         long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < lo || v > hi)
        return rk_cli_usage(cmd, "option '%s' takes an integer from %ld to %ld, not '%s'", name,
                            lo, hi, text);
    *out = (int)v;
    return 0;
}

/* Opens a replayer on rules, reporting a failure. */
static int open_replayer(const char *rules, const char *state, int batch, rk_replayer **out)
{
    rk_replayer_config rc = {.rules_path = rules, .state_dir = state, .batch = batch};
    rk_diag diag;
    int code = rk_replayer_open(&rc, out, &diag);
    if (code == 0)
        return RK_CLI_OK;
    if (diag.msg[0] == '\0')
        rk_diag_set(&diag, rules, 0, 0, "%s", rk_strerror(code));
    char line[1200];
    return rk_cli_fail("%s", rk_diag_format(&diag, line, sizeof line));
}

static void run_free(run *rn)
{
    input_free(&rn->in);
    free(rn->cand.hits);
    free(rn->base.hits);
    free(rn->examples);
    free(rn->differ_ex);
}

static int run_backtest(const rk_cli_cmd *cmd, int argc, char **argv)
{
    const char *rules = NULL, *log = NULL, *baseline = NULL, *state = NULL, *features = NULL;
    const char *examples_s = NULL, *batch_s = NULL;
    bool json = false;
    const rk_cli_opt opts[] = {
        {"--rules", "R", &rules, NULL},
        {"--log", "L", &log, NULL},
        {"--baseline", "R0", &baseline, NULL},
        {"--state", "DIR", &state, NULL},
        {"--emit-features", "OUT.csv", &features, NULL},
        {"--examples", "N", &examples_s, NULL},
        {"--batch", "N", &batch_s, NULL},
        {"--json", NULL, NULL, &json},
        {NULL, NULL, NULL, NULL},
    };
    int npos;
    int rc = rk_cli_parse(cmd, argc, argv, opts, &npos);
    if (rc)
        return rc == RK_CLI_HELP ? RK_CLI_OK : rc;
    if (!rules)
        return rk_cli_usage(cmd, "backtest needs --rules R (the rule file to test)");
    if (!log)
        return rk_cli_usage(cmd, "backtest needs --log L (a traffic or decision log)");
    run rn;
    memset(&rn, 0, sizeof rn);
    rn.nexamples = EXAMPLES_DEFAULT;
    int batch = RK_REPLAY_BATCH_DEFAULT;
    if (examples_s && (rc = parse_int_opt(cmd, "--examples", examples_s, 0, EXAMPLES_MAX,
                                          &rn.nexamples)))
        return rc;
    if (batch_s && (rc = parse_int_opt(cmd, "--batch", batch_s, 1, BATCH_MAX, &batch)))
        return rc;
    rn.has_base = baseline != NULL;
    rn.in.nscenarios = 1;
    rn.in.scenarios[0] = (scenario){"(none)", 6};
    rk_log_set_level(RK_LOG_WARN); /* the store's routine notes are not the analyst's concern */
    /* From here on Ctrl-C stops the backtest and cleans up (private stores,
     * a half-written CSV) instead of killing it where it stands; so does a
     * closed stdout (`| head`), as a write error rather than SIGPIPE. */
    struct sigaction sa = {.sa_handler = on_signal}, ign = {.sa_handler = SIG_IGN};
    struct sigaction old_int, old_term, old_pipe;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGPIPE, &ign, &old_pipe);

    int64_t t0 = rk_clock_ns();
    int status = load_path(&rn.in, log);
    for (int i = 1; status == RK_CLI_OK && i <= npos; i++)
        status = load_path(&rn.in, argv[i]);
    if (status == RK_CLI_OK)
        order_records(&rn.in);
    rn.load_s = (double)(rk_clock_ns() - t0) / 1e9;

    if (status == RK_CLI_OK && interrupted)
        status = rk_cli_fail("interrupted while reading the logs");
    rk_replayer *cand = NULL, *base = NULL;
    features_out fo = {0};
    if (status == RK_CLI_OK)
        status = open_replayer(rules, state, batch, &cand);
    if (status == RK_CLI_OK && baseline)
        status = open_replayer(baseline, state, batch, &base);
    if (status == RK_CLI_OK &&
        (tally_init(&rn.cand, cand, rules) < 0 ||
         (base && tally_init(&rn.base, base, baseline) < 0) ||
         !(rn.examples = calloc((size_t)CL__COUNT * CL__COUNT * (size_t)rn.nexamples + 1,
                                sizeof *rn.examples)) ||
         !(rn.differ_ex = calloc((size_t)rn.nexamples + 1, sizeof *rn.differ_ex))))
        status = rk_cli_fail("out of memory");
    if (status == RK_CLI_OK && features)
        status = features_open(&fo, features, rk_replayer_ruleset(cand), rules);

    if (status == RK_CLI_OK)
        status = replay_all(&rn, cand, base, &fo);
    status = features_close(&fo, status);
    if (status == RK_CLI_OK) {
        if (json)
            json_report(stdout, &rn);
        else
            text_report(stdout, &rn);
        if (fflush(stdout) != 0)
            status = rk_cli_fail("cannot write to stdout: %s", strerror(errno));
    }
    rk_replayer_close(base);
    rk_replayer_close(cand);
    run_free(&rn);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    return status;
}

const rk_cli_cmd rk_cli_backtest = {
    .name = "backtest",
    .args = "--rules R --log L [LOG...] [--baseline R0] [--state DIR] [OPTIONS]",
    .summary = "replay logs through a rule set offline and report what it would decide",
    .help =
        "Replays traffic logs or decision logs through the rule file R, in event-time\n"
        "order, with the same pipeline riskd runs (decode, velocity counters, lists,\n"
        "rules, decision), on a private temporary state store, and reports decisions,\n"
        "errors, per-rule hits and, when records carry `label`, fraud caught and\n"
        "missed, false positives and amounts (per `scenario` too). docs/backtest.md\n"
        "explains the report.\n"
        "\n"
        "Options:\n"
        "  --rules R            the rule file to test (required)\n"
        "  --log L              a traffic or decision log, or a directory of *.rlog files\n"
        "                       (required); more logs may follow as arguments\n"
        "  --baseline R0        replay through R0 as well, on its own store, and report\n"
        "                       the decision changes R0 -> R with example ids\n"
        "  --state DIR          start from a copy of the backup in DIR (made by\n"
        "                       'riskctl backup DIR'); default: empty counters and lists\n"
        "  --emit-features OUT  write id,ts,label and R's model features per transaction\n"
        "                       as CSV (R must declare model: features:)\n"
        "  --examples N         example ids per changed decision kind (default 5)\n"
        "  --batch N            requests per store commit (default 1000; decisions do\n"
        "                       not depend on it)\n"
        "  --json               print the report as one JSON object\n"
        "\n"
        "Event time: records are ordered by `ts` (stable). A request without `ts` takes\n"
        "its decision record's `at`, else the time of the record before it. Counter\n"
        "windows, the retry window and list expiry follow that time. A decision log\n"
        "replayed through the rules that made it reports how many decisions differ.\n"
        "The private store is made under $TMPDIR (default /tmp) and removed at the end.\n"
        "\n"
        "Exit status: 0 the backtest ran; 1 a log, rule file or state directory could\n"
        "not be read (one line says which and where); 2 bad usage.\n",
    .run = run_backtest,
};
