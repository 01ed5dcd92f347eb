/* The decision log: a bounded byte ring filled by the scoring threads and
 * emptied by one writer thread into rotating .rlog files.
 *
 * The ring. Records are laid out one after another in a single malloc'd
 * buffer, each a `slot` header followed by the request, reply and rule-set
 * label bytes, padded to 8 bytes; a record never wraps: when it does not fit
 * before the end of the buffer, a pad slot (or, when even a header does not
 * fit, the bare remainder) is skipped and the record starts at offset 0.
 * `head` and `tail` are byte positions that only grow (offset = pos % cap), so
 * head - tail is the space in use. Two bounds apply: `queue` records and
 * cap bytes (queue x 512 bytes, at least 2 MiB so that the largest record
 * fits); whichever is hit first drops the record. The buffer is allocated and
 * touched at open, so no producer ever takes a page fault on it.
 *
 * Locking. One mutex guards head, tail and the counts. A producer holds it
 * for the bounds check and the memcpy of its record, nothing else: no
 * allocation, and the writer never holds it while it formats or writes. A
 * producer makes a system call only to wake a sleeping writer when the queue
 * is a quarter full; otherwise the writer wakes every TICK_MS on its own, so a
 * lone request never pays for a futex wake-up, and records reach the kernel
 * within about TICK_MS. The writer reads the records it took in place (producers never
 * write between tail and head) and moves tail on once they are written.
 *
 * The writer. It turns each record into a decision record of proto/rlog.h,
 * pseudonymising fields on the way if configured, gathers them in a batch
 * buffer and writes the batch with one write(2). Files are created lazily
 * with O_EXCL and mode 0600, named by UTC creation time and a sequence number
 * that continues across restarts, so a restart never appends to a file a crash
 * may have left with a torn last record. A file is fsynced and closed before
 * it would pass max_file_bytes (rotation), when a write fails (its partial
 * record is truncated away and the next batch starts a new file) and at close;
 * in between, what was written is fdatasync'ed once a second, so a power cut
 * costs about the last second, like the store's periodic durability. Each
 * batch's writeback is started as soon as it is written (sync_file_range),
 * so that the kernel's I/O work is spread out rather than one burst a second.
 * All file names and counters of the writer side are touched by the writer
 * thread alone, and by rk_declog_close after joining it. */
#include "engine/declog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/files.h"
#include "lib/log.h"
#include "lib/thread.h"
#include "proto/mp.h"
#include "proto/proto.h"
#include "proto/rlog.h"
#include "proto/txn.h"
#include "state/keyhash.h"

#define TICK_MS 100                     /* the writer looks at the queue at least this often:
                                           fewer wake-ups, fewer bursts beside scoring (docs/logs.md) */
#define RING_MIN (2u * RK_RLOG_REC_MAX) /* the largest record always fits an empty ring */
#define QUEUE_MAX (1u << 20)            /* records; keeps every offset in a uint32 slot size */
#define BATCH_CAP (2u * RK_RLOG_REC_MAX) /* bytes gathered for one write(2) */
#define LABEL_MAX 1024                  /* longest rule-set label kept ("name@version") */
#define ERROR_LOG_NS 1000000000LL       /* at most one I/O error line a second */
#define DROP_LOG_NS 10000000000LL       /* at most one "dropped" line every ten seconds */
#define REOPEN_NS 1000000000LL          /* after a failed create, wait this long to retry */
#define SYNC_NS 1000000000LL            /* written data is fdatasync'ed at least this often */
#define FILE_PREFIX "decisions-"
#define FILE_SUFFIX ".rlog"

enum { SLOT_RECORD = 1, SLOT_PAD = 2 };

/* The header of a queued record, followed by req, resp and label bytes. */
typedef struct slot {
    uint32_t size;      /* bytes of the slot, header and padding included; a multiple of 8 */
    uint32_t req_len;   /* request bytes */
    uint32_t resp_len;  /* reply bytes */
    uint16_t label_len; /* rule-set label bytes */
    uint16_t kind;      /* SLOT_RECORD or SLOT_PAD */
    int64_t at;         /* wall-clock ms of the decision */
} slot;

struct rk_declog {
    /* configuration, fixed at open */
    char dir[4096];            /* where the files go */
    uint64_t max_file;         /* rotation size, bytes */
    int keep_files;            /* files kept; 0 = all */
    uint32_t pseudo_mask;      /* (1u << RK_F_x) per pseudonymised field */
    bool pseudo;               /* pseudo_mask != 0: pkey is set */
    uint8_t pkey[RK_HASH_LEN]; /* pseudonym key, derived from the installation secret */

    /* the ring: everything below up to `thread` is guarded by lock */
    pthread_mutex_t lock;      /* held for a bounds check and a memcpy, never for I/O */
    pthread_cond_t wake;       /* writer: work, a flush, a pause change or stop */
    pthread_cond_t idle;       /* flushers: `done` moved on */
    uint8_t *ring;             /* cap bytes */
    uint64_t cap;              /* ring size, a multiple of 8 */
    uint32_t max_records;      /* the `queue` bound */
    uint32_t wake_records;     /* depth at which a producer wakes a sleeping writer */
    uint64_t head;             /* producers' position (monotonic bytes) */
    uint64_t tail;             /* writer's position: bytes before it are free */
    uint32_t depth;            /* records between tail and head */
    uint64_t accepted;         /* records ever queued */
    uint64_t done;             /* records ever taken and written or counted lost */
    bool writer_waiting;       /* the writer sleeps on wake */
    bool paused;               /* test hook: the writer takes nothing */
    bool stop;                 /* close: drain, then exit */
    pthread_t thread;          /* the writer */
    bool started;              /* thread was created */

    /* statistics (rk_declog_stats): relaxed atomics */
    atomic_uint_fast64_t written;   /* by the writer */
    atomic_uint_fast64_t dropped;   /* by producers: queue full */
    atomic_uint_fast64_t bytes;     /* by the writer */
    atomic_uint_fast64_t files;     /* by the writer */
    atomic_uint_fast64_t rotations; /* by the writer */
    atomic_uint_fast64_t errors;    /* by both: too large, I/O errors */

    /* writer thread only */
    int fd;                    /* current file, or -1 until the next batch creates one */
    uint64_t file_bytes;       /* bytes in the current file */
    uint64_t next_seq;         /* sequence number of the next file */
    char path[4352];           /* current file's path, for messages */
    rk_outbuf batch;           /* records gathered for one write(2) */
    uint8_t *batch_mem;        /* BATCH_CAP bytes */
    uint32_t batch_records;    /* records in batch */
    rk_outbuf scratch;         /* a pseudonymised request */
    uint8_t *scratch_mem;      /* RK_RLOG_REC_MAX bytes; NULL without pseudonymisation */
    int64_t error_logged_ns;   /* last I/O error line */
    int64_t open_failed_ns;    /* last failed file creation; 0 when none */
    int64_t drop_logged_ns;    /* last "dropped" line */
    uint64_t drop_logged;      /* dropped count reported by it */
    int64_t synced_ns;         /* last fdatasync of the current file */
    bool dirty;                /* written to the current file since then */
};

static inline void bump(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t get(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static inline uint64_t align8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

/* ---- configuration ------------------------------------------------------------ */

void rk_declog_config_default(rk_declog_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_file_bytes = RK_DECLOG_MAX_FILE_DEFAULT;
    c->queue = RK_DECLOG_QUEUE_DEFAULT;
}

uint32_t rk_declog_pseudonymisable(void)
{
    return 1u << RK_F_ACCOUNT | 1u << RK_F_CARD | 1u << RK_F_DEVICE | 1u << RK_F_IP |
           1u << RK_F_EMAIL | 1u << RK_F_MERCHANT;
}

/* ---- the hot path --------------------------------------------------------------- */

void rk_declog_append(rk_declog *dl, const uint8_t *req, size_t req_len, const uint8_t *resp,
                      size_t resp_len, const char *ruleset, int64_t at_ms)
{
    if (!dl)
        return;
    size_t label_len = ruleset ? strnlen(ruleset, LABEL_MAX) : 0;
    rk_rlog_decision d = {.req_len = req_len, .resp_len = resp_len, .ruleset_len = label_len};
    if (rk_rlog_decision_size(&d) > RK_RLOG_REC_MAX) {
        bump(&dl->errors, 1); /* no log record can hold it: counted, not queued */
        return;
    }
    uint64_t need = align8(sizeof(slot) + req_len + resp_len + label_len);
    slot s = {.size = (uint32_t)need,
              .req_len = (uint32_t)req_len,
              .resp_len = (uint32_t)resp_len,
              .label_len = (uint16_t)label_len,
              .kind = SLOT_RECORD,
              .at = at_ms};

    pthread_mutex_lock(&dl->lock);
    uint64_t off = dl->head % dl->cap;
    uint64_t skip = dl->cap - off < need ? dl->cap - off : 0;
    if (dl->depth >= dl->max_records || dl->head + skip + need - dl->tail > dl->cap) {
        pthread_mutex_unlock(&dl->lock);
        bump(&dl->dropped, 1);
        return;
    }
    if (skip) { /* the record starts over at offset 0; mark the gap when a header fits */
        if (skip >= sizeof(slot)) {
            slot pad = {.size = (uint32_t)skip, .kind = SLOT_PAD};
            memcpy(dl->ring + off, &pad, sizeof pad);
        }
        dl->head += skip;
        off = 0;
    }
    uint8_t *p = dl->ring + off;
    memcpy(p, &s, sizeof s);
    p += sizeof s;
    memcpy(p, req, req_len);
    memcpy(p + req_len, resp, resp_len);
    if (label_len)
        memcpy(p + req_len + resp_len, ruleset, label_len);
    dl->head += need;
    dl->depth++;
    dl->accepted++;
    if (dl->writer_waiting &&
        (dl->depth >= dl->wake_records || dl->head - dl->tail >= dl->cap / 4)) {
        dl->writer_waiting = false;
        pthread_cond_signal(&dl->wake);
    }
    pthread_mutex_unlock(&dl->lock);
}

/* ---- pseudonyms ------------------------------------------------------------------ */

static void pseudonym(const rk_declog *dl, const void *p, size_t n,
                      char out[RK_DECLOG_PSEUDONYM_LEN + 1])
{
    uint8_t h[RK_HASH_LEN];
    crypto_generichash(h, sizeof h, p, n, dl->pkey, sizeof dl->pkey);
    out[0] = 'p';
    out[1] = ':';
    sodium_bin2base64(out + 2, RK_DECLOG_PSEUDONYM_LEN - 1, h, sizeof h,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int rk_declog_pseudonym(const rk_declog *dl, const void *value, size_t len,
                        char out[RK_DECLOG_PSEUDONYM_LEN + 1])
{
    if (!dl || !dl->pseudo)
        return RK_EINVAL;
    pseudonym(dl, value, len, out);
    return 0;
}

/* Whether the key item names a field this log pseudonymises. */
static bool pseudonymised_key(const rk_declog *dl, const rk_mp_item *k)
{
    if (k->type != RK_MP_STR)
        return false;
    for (uint32_t m = dl->pseudo_mask; m; m &= m - 1) {
        const char *name = rk_field_name(__builtin_ctz(m));
        if (rk_mp_str_eq(k, name))
            return true;
    }
    return false;
}

static void put_raw(rk_outbuf *out, const uint8_t *p, size_t n)
{
    if (n)
        out->pk.callback(out->pk.data, (const char *)p, n);
}

/* Re-encodes the request map into out with the string values of the
 * pseudonymised fields replaced by their pseudonyms; every other byte is
 * copied as received. Returns 0, RK_ETOOBIG, or the cursor's error for a
 * request that is not one well-formed map (the decoder never lets one
 * through, so this is a bug guard). */
static int pseudonymise(const rk_declog *dl, const uint8_t *req, size_t len, rk_outbuf *out)
{
    rk_mp m;
    rk_mp_init(&m, req, len);
    rk_mp_item map, k, v;
    int rc = rk_mp_read(&m, &map);
    if (rc < 0)
        return rc;
    if (map.type != RK_MP_MAP)
        return RK_ETYPE;
    put_raw(out, req, m.pos); /* the map header as it was */
    for (uint32_t i = 0; i < map.n; i++) {
        rk_mp at = m;
        size_t key_at = m.pos;
        if ((rc = rk_mp_read(&at, &k)) < 0 || (rc = rk_mp_skip(&m, RK_MP_DEPTH_MAX)) < 0)
            return rc;
        put_raw(out, req + key_at, m.pos - key_at);
        at = m;
        size_t val_at = m.pos;
        if ((rc = rk_mp_read(&at, &v)) < 0 || (rc = rk_mp_skip(&m, RK_MP_DEPTH_MAX)) < 0)
            return rc;
        if (v.type == RK_MP_STR && pseudonymised_key(dl, &k)) {
            char p[RK_DECLOG_PSEUDONYM_LEN + 1];
            pseudonym(dl, v.raw.p, v.raw.len, p);
            msgpack_pack_str(&out->pk, RK_DECLOG_PSEUDONYM_LEN);
            msgpack_pack_str_body(&out->pk, p, RK_DECLOG_PSEUDONYM_LEN);
        } else {
            put_raw(out, req + val_at, m.pos - val_at);
        }
    }
    return out->overflow ? RK_ETOOBIG : 0;
}

/* ---- files (writer thread) ----------------------------------------------------- */

/* An I/O problem: logged at most once a second, with errno's text. */
__attribute__((format(printf, 2, 3))) static void io_error(rk_declog *dl, const char *fmt, ...)
{
    int64_t now = rk_clock_ns();
    if (dl->error_logged_ns && now - dl->error_logged_ns < ERROR_LOG_NS)
        return;
    dl->error_logged_ns = now;
    char msg[4608];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rk_log_error("decision log: %s", msg);
}

/* The sequence number of a log file's name "decisions-<UTC>-<seq>.rlog";
 * false for any other name. */
static bool file_seq(const char *name, uint64_t *seq)
{
    size_t n = strlen(name), np = strlen(FILE_PREFIX), ns = strlen(FILE_SUFFIX);
    if (n <= np + ns || strncmp(name, FILE_PREFIX, np) != 0 ||
        strcmp(name + n - ns, FILE_SUFFIX) != 0)
        return false;
    const char *end = name + n - ns, *p = end;
    while (p > name + np && p[-1] >= '0' && p[-1] <= '9')
        p--;
    if (p == end || p[-1] != '-' || end - p > 18)
        return false;
    uint64_t v = 0;
    for (; p < end; p++)
        v = v * 10 + (uint64_t)(*p - '0');
    *seq = v;
    return true;
}

typedef struct logfile {
    uint64_t seq;  /* from the name */
    char *name;    /* owned */
} logfile;

static int by_seq(const void *a, const void *b)
{
    uint64_t x = ((const logfile *)a)->seq, y = ((const logfile *)b)->seq;
    return x < y ? -1 : x > y;
}

/* The log files in dir, sorted by sequence number (*n of them; free with
 * free_files). NULL with *n = 0 when the directory cannot be read. */
static logfile *list_files(const char *dir, size_t *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    logfile *v = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t seq;
        if (!file_seq(e->d_name, &seq))
            continue;
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            logfile *nv = realloc(v, ncap * sizeof *nv);
            if (!nv)
                break;
            v = nv;
            cap = ncap;
        }
        if (!(v[*n].name = strdup(e->d_name)))
            break;
        v[(*n)++].seq = seq;
    }
    closedir(d);
    if (*n)
        qsort(v, *n, sizeof *v, by_seq);
    return v;
}

static void free_files(logfile *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].name);
    free(v);
}

/* keep_files: removes the oldest files beyond the newest keep_files (the
 * current one among them). */
static void prune(rk_declog *dl)
{
    if (dl->keep_files <= 0)
        return;
    size_t n;
    logfile *v = list_files(dl->dir, &n);
    size_t removed = 0;
    for (size_t i = 0; i + (size_t)dl->keep_files < n; i++) {
        char path[sizeof dl->path];
        snprintf(path, sizeof path, "%s/%s", dl->dir, v[i].name);
        if (unlink(path) == 0)
            removed++;
        else if (errno != ENOENT)
            io_error(dl, "cannot remove %s: %s", path, strerror(errno));
    }
    free_files(v, n);
    if (removed) {
        (void)rk_fsync_path(dl->dir, true);
        rk_log_info("decision log: removed %zu old file%s (keep_files %d)", removed,
                    removed == 1 ? "" : "s", dl->keep_files);
    }
}

/* Creates the next file. Returns 0, or RK_EIO (logged). */
static int open_file(rk_declog *dl)
{
    int64_t now = rk_clock_ns();
    if (dl->open_failed_ns && now - dl->open_failed_ns < REOPEN_NS)
        return RK_EIO; /* the disk was full or the directory gone a moment ago */
    char stamp[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    for (int tries = 0; tries < 1000; tries++, dl->next_seq++) {
        snprintf(dl->path, sizeof dl->path, "%s/" FILE_PREFIX "%s-%06" PRIu64 FILE_SUFFIX,
                 dl->dir, stamp, dl->next_seq);
        dl->fd = open(dl->path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
        if (dl->fd >= 0 || errno != EEXIST)
            break;
    }
    if (dl->fd < 0) {
        dl->open_failed_ns = now;
        io_error(dl, "cannot create %s: %s", dl->path, strerror(errno));
        return RK_EIO;
    }
    dl->open_failed_ns = 0;
    dl->next_seq++;
    dl->file_bytes = 0;
    (void)rk_fsync_path(dl->dir, true); /* the new name survives a power cut with its data */
    bump(&dl->files, 1);
    rk_log_info("decision log: writing %s", dl->path);
    prune(dl);
    return 0;
}

/* Closes the current file; fsyncs it first when sync is set. */
static void close_file(rk_declog *dl, bool sync)
{
    if (dl->fd < 0)
        return;
    if (sync && fsync(dl->fd) != 0)
        io_error(dl, "fsync %s: %s", dl->path, strerror(errno));
    close(dl->fd);
    dl->fd = -1;
    dl->file_bytes = 0;
    dl->dirty = false;
}

/* The once-a-second fdatasync of what was written to the current file. */
static void sync_due(rk_declog *dl)
{
    int64_t now = rk_clock_ns();
    if (!dl->dirty || dl->fd < 0 || now - dl->synced_ns < SYNC_NS)
        return;
    if (fdatasync(dl->fd) != 0)
        io_error(dl, "fdatasync %s: %s", dl->path, strerror(errno));
    dl->synced_ns = now;
    dl->dirty = false;
}

static int write_full(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes the batch to the current file (creating one when needed) and
 * empties it. On failure its records are counted lost and the file is cut
 * back to its last whole record and closed, so the next batch starts a
 * new file and no file ever holds a torn record in its middle. */
static void write_batch(rk_declog *dl)
{
    if (dl->batch.len == 0)
        return;
    if (dl->fd < 0 && open_file(dl) < 0) {
        bump(&dl->errors, dl->batch_records);
    } else if (write_full(dl->fd, dl->batch.buf, dl->batch.len) < 0) {
        io_error(dl, "writing %s: %s; %u records lost, continuing in a new file", dl->path,
                 strerror(errno), dl->batch_records);
        bump(&dl->errors, dl->batch_records);
        if (ftruncate(dl->fd, (off_t)dl->file_bytes) != 0)
            io_error(dl, "cannot truncate %s: %s", dl->path, strerror(errno));
        close_file(dl, true);
    } else {
        /* start writing the batch back now, so the once-a-second fdatasync
         * finds little left to do: the kernel's I/O work comes in small
         * pieces instead of one burst that takes a core from scoring */
        (void)sync_file_range(dl->fd, (off_t)dl->file_bytes, (off_t)dl->batch.len,
                              SYNC_FILE_RANGE_WRITE);
        dl->file_bytes += dl->batch.len;
        dl->dirty = true;
        bump(&dl->bytes, dl->batch.len);
        bump(&dl->written, dl->batch_records);
    }
    rk_outbuf_reset(&dl->batch);
    dl->batch_records = 0;
}

/* Adds one queued record to the batch, rotating first when the current file
 * would grow past max_file (a record larger than that gets a file alone). */
static void add_record(rk_declog *dl, const slot *s, const uint8_t *data)
{
    rk_rlog_decision d = {
        .req = data,
        .req_len = s->req_len,
        .resp = data + s->req_len,
        .resp_len = s->resp_len,
        .ruleset = (const char *)data + s->req_len + s->resp_len,
        .ruleset_len = s->label_len,
        .at = s->at,
    };
    if (dl->pseudo) {
        rk_outbuf_reset(&dl->scratch);
        int rc = pseudonymise(dl, d.req, d.req_len, &dl->scratch);
        if (rc < 0) { /* never logged in the clear instead */
            io_error(dl, "cannot pseudonymise a request (%s); record dropped", rk_strerror(rc));
            bump(&dl->errors, 1);
            return;
        }
        d.req = dl->scratch.buf;
        d.req_len = dl->scratch.len;
    }
    size_t bound = rk_rlog_decision_size(&d);
    if (bound > RK_RLOG_REC_MAX) { /* pseudonyms made it too large */
        bump(&dl->errors, 1);
        return;
    }
    uint64_t pending = dl->file_bytes + dl->batch.len;
    if (pending > 0 && pending + bound > dl->max_file) {
        write_batch(dl);
        if (dl->fd >= 0) {
            close_file(dl, true);
            bump(&dl->rotations, 1);
        }
    }
    if (dl->batch.cap - dl->batch.len < bound)
        write_batch(dl);
    size_t before = dl->batch.len;
    if (rk_rlog_encode_decision(&dl->batch, &d) < 0) { /* cannot happen: bound checked */
        dl->batch.len = before;
        dl->batch.overflow = false;
        bump(&dl->errors, 1);
        return;
    }
    dl->batch_records++;
}

/* ---- the writer thread ----------------------------------------------------------- */

/* Gives the ring space up to tail back to the producers: nrec records,
 * written or counted lost. */
static void release(rk_declog *dl, uint64_t tail, uint32_t nrec)
{
    pthread_mutex_lock(&dl->lock);
    dl->tail = tail;
    dl->depth -= nrec;
    dl->done += nrec;
    pthread_cond_broadcast(&dl->idle);
    pthread_mutex_unlock(&dl->lock);
}

/* Writes the records in [start, end) of the ring, or a first part of them
 * of about a quarter of the ring so that producers get space back early.
 * Called without the lock. Returns the position reached. */
static uint64_t drain(rk_declog *dl, uint64_t start, uint64_t end)
{
    uint64_t pos = start, limit = start + dl->cap / 4;
    uint32_t nrec = 0;
    while (pos < end && pos < limit) {
        uint64_t off = pos % dl->cap;
        if (dl->cap - off < sizeof(slot)) {
            pos += dl->cap - off;
            continue;
        }
        slot s;
        memcpy(&s, dl->ring + off, sizeof s);
        if (s.kind == SLOT_RECORD) {
            add_record(dl, &s, dl->ring + off + sizeof s);
            nrec++;
        }
        pos += s.size;
    }
    write_batch(dl);
    release(dl, pos, nrec);
    return pos;
}

/* Logs records dropped for a full queue, at most every ten seconds. */
static void report_drops(rk_declog *dl)
{
    uint64_t dropped = get(&dl->dropped);
    int64_t now = rk_clock_ns();
    if (dropped == dl->drop_logged || now - dl->drop_logged_ns < DROP_LOG_NS)
        return;
    rk_log_warn("decision log: %" PRIu64 " records dropped, the queue was full (%" PRIu64
                " since start; raise decision_log.queue or check the disk)",
                dropped - dl->drop_logged, dropped);
    dl->drop_logged = dropped;
    dl->drop_logged_ns = now;
}

static void *writer_main(void *arg)
{
    rk_declog *dl = arg;
    /* The writer only has to keep up on average (the ring absorbs bursts),
     * so it runs below scoring; at nice 10, not SCHED_IDLE, because nothing
     * else drains the ring on a saturated machine (lib/thread.h). */
    rk_thread_background("rk-declog");
    pthread_mutex_lock(&dl->lock);
    for (;;) {
        if (!dl->paused && dl->head != dl->tail) {
            uint64_t start = dl->tail, end = dl->head;
            pthread_mutex_unlock(&dl->lock);
            drain(dl, start, end);
            report_drops(dl);
            sync_due(dl);
            pthread_mutex_lock(&dl->lock);
            continue;
        }
        if (dl->stop)
            break;
        struct timespec until;
        rk_clock_deadline(&until, TICK_MS);
        dl->writer_waiting = true;
        pthread_cond_timedwait(&dl->wake, &dl->lock, &until);
        dl->writer_waiting = false;
        if (dl->dirty) { /* idle now: what the last batches wrote gets its fdatasync */
            pthread_mutex_unlock(&dl->lock);
            sync_due(dl);
            pthread_mutex_lock(&dl->lock);
        }
    }
    pthread_mutex_unlock(&dl->lock);
    report_drops(dl);
    return NULL;
}

/* ---- open, close, flush, stats --------------------------------------------------- */

/* The directory: created 0700, or tightened to 0700, and writable. */
static int prepare_dir(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rk_log_error("decision log: cannot create %s: %s", dir, strerror(errno));
        return RK_EIO;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rk_log_error("decision log: %s is not a directory", dir);
        errno = ENOTDIR;
        return RK_EIO;
    }
    if ((st.st_mode & 077) && chmod(dir, 0700) == 0)
        rk_log_info("decision log: %s had mode %04o; set it to 0700 (decisions identify "
                    "customers)", dir, (unsigned)(st.st_mode & 07777));
    if (access(dir, W_OK | X_OK) != 0) {
        rk_log_error("decision log: cannot write in %s: %s", dir, strerror(errno));
        return RK_EIO;
    }
    return 0;
}

/* The pseudonym key: a keyed hash of a fixed label under the installation
 * secret, so it is as stable as the secret and differs from every key the
 * store derives (pseudonyms cannot be matched against the store's hashes). */
static int derive_key(rk_declog *dl, const char *secret_dir)
{
    rk_keyhash *kh = NULL;
    int rc = rk_keyhash_open(secret_dir, &kh);
    if (rc < 0)
        return rc;
    static const char label[] = "riskd decision-log pseudonym key v1";
    rk_keyhash_bytes(kh, label, sizeof label - 1, dl->pkey);
    rk_keyhash_free(kh);
    dl->pseudo = true;
    return 0;
}

/* Field names of mask, "account, card", for the start-up line. */
static void mask_names(uint32_t mask, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (uint32_t m = mask; m && n < size; m &= m - 1)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? ", " : "",
                              rk_field_name(__builtin_ctz(m)));
}

int rk_declog_open(const rk_declog_config *c, const char *secret_dir, rk_declog **out)
{
    if (!c || !c->dir || !c->dir[0] || strlen(c->dir) >= sizeof((rk_declog *)0)->dir ||
        (c->pseudonymise & ~rk_declog_pseudonymisable()) || (c->pseudonymise && !secret_dir))
        return RK_EINVAL;
    int rc = prepare_dir(c->dir);
    if (rc < 0)
        return rc;
    rk_declog *dl = calloc(1, sizeof *dl);
    if (!dl)
        return RK_ENOMEM;
    snprintf(dl->dir, sizeof dl->dir, "%s", c->dir);
    dl->max_file = c->max_file_bytes ? c->max_file_bytes : RK_DECLOG_MAX_FILE_DEFAULT;
    dl->keep_files = c->keep_files;
    dl->pseudo_mask = c->pseudonymise;
    dl->fd = -1;
    uint32_t q = c->queue ? c->queue : RK_DECLOG_QUEUE_DEFAULT;
    dl->max_records = q < QUEUE_MAX ? q : QUEUE_MAX;
    dl->wake_records = dl->max_records / 4 ? dl->max_records / 4 : 1;
    uint64_t cap = (uint64_t)dl->max_records * RK_DECLOG_QUEUE_BYTES_PER_RECORD;
    dl->cap = align8(cap > RING_MIN ? cap : RING_MIN);

    pthread_mutex_init(&dl->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&dl->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&dl->idle, NULL);

    dl->ring = malloc(dl->cap);
    dl->batch_mem = malloc(BATCH_CAP);
    if (dl->pseudo_mask)
        dl->scratch_mem = malloc(RK_RLOG_REC_MAX);
    rc = !dl->ring || !dl->batch_mem || (dl->pseudo_mask && !dl->scratch_mem) ? RK_ENOMEM : 0;
    if (rc == 0) /* fault the pages in now: a first touch would cost a producer a microsecond */
        memset(dl->ring, 0, dl->cap);
    if (rc == 0 && dl->pseudo_mask)
        rc = derive_key(dl, secret_dir);
    if (rc == 0) {
        rk_outbuf_init(&dl->batch, dl->batch_mem, BATCH_CAP);
        if (dl->scratch_mem)
            rk_outbuf_init(&dl->scratch, dl->scratch_mem, RK_RLOG_REC_MAX);
        /* Numbering continues after the files already there, so names sort in
         * the order they were written even across clock changes. */
        size_t n;
        logfile *v = list_files(dl->dir, &n);
        dl->next_seq = n ? v[n - 1].seq + 1 : 1;
        free_files(v, n);
        if (pthread_create(&dl->thread, NULL, writer_main, dl) != 0)
            rc = RK_ENOMEM;
        else
            dl->started = true;
    }
    if (rc < 0) {
        rk_declog_close(dl);
        return rc;
    }
    char fields[128], keep[48] = "all files";
    mask_names(dl->pseudo_mask, fields, sizeof fields);
    if (dl->keep_files)
        snprintf(keep, sizeof keep, "the newest %d", dl->keep_files);
    rk_log_info("decision log: writing to %s (files up to %" PRIu64 " MiB, keep %s, queue %u "
                "records, pseudonymised: %s)",
                dl->dir, dl->max_file >> 20, keep, dl->max_records, fields[0] ? fields : "none");
    *out = dl;
    return 0;
}

void rk_declog_close(rk_declog *dl)
{
    if (!dl)
        return;
    if (dl->started) {
        pthread_mutex_lock(&dl->lock);
        dl->stop = true;
        dl->paused = false;
        pthread_cond_signal(&dl->wake);
        pthread_mutex_unlock(&dl->lock);
        pthread_join(dl->thread, NULL); /* it wrote everything queued */
        close_file(dl, true);
        rk_log_info("decision log: closed; %" PRIu64 " records written, %" PRIu64
                    " dropped (queue full), %" PRIu64 " lost to errors",
                    get(&dl->written), get(&dl->dropped), get(&dl->errors));
    }
    sodium_memzero(dl->pkey, sizeof dl->pkey);
    pthread_cond_destroy(&dl->wake);
    pthread_cond_destroy(&dl->idle);
    pthread_mutex_destroy(&dl->lock);
    free(dl->ring);
    free(dl->batch_mem);
    free(dl->scratch_mem);
    free(dl);
}

int rk_declog_flush(rk_declog *dl)
{
    if (!dl)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&dl->lock);
    uint64_t target = dl->accepted;
    pthread_cond_signal(&dl->wake);
    while (dl->done < target && !dl->paused)
        pthread_cond_wait(&dl->idle, &dl->lock);
    if (dl->done < target)
        rc = RK_EINVAL;
    pthread_mutex_unlock(&dl->lock);
    return rc;
}

void rk_declog_pause(rk_declog *dl, bool paused)
{
    pthread_mutex_lock(&dl->lock);
    dl->paused = paused;
    pthread_cond_signal(&dl->wake);
    pthread_cond_broadcast(&dl->idle);
    pthread_mutex_unlock(&dl->lock);
}

void rk_declog_stats_get(rk_declog *dl, rk_declog_stats *out)
{
    pthread_mutex_lock(&dl->lock);
    out->queue_depth = dl->depth;
    pthread_mutex_unlock(&dl->lock);
    out->written = get(&dl->written);
    out->dropped = get(&dl->dropped);
    out->bytes = get(&dl->bytes);
    out->files = get(&dl->files);
    out->rotations = get(&dl->rotations);
    out->errors = get(&dl->errors);
}
