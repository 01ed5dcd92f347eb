/* The write-ahead log's segment files (wlog.h).
 *
 * A segment is a file of SEG_BYTES reserved with fallocate when it is
 * created (appends then never change its size, so fdatasync has no size to
 * record), starting with a 16-byte header (MAGIC, then zeros) and holding
 * entries back to back, each 8-byte aligned:
 *   u32 payload length (0: no more entries), u32 CRC-32C of the sequence
 *   and payload, u64 sequence, payload, zero padding.
 * Segments are mapped shared and an entry is appended with a memcpy: no
 * system call on the request path (a pwritev per request added 1-9 us to
 * the lockstep round trip's p50 in two A/B pairs against no write at all),
 * and the bytes are in the page cache at once, so a killed process loses
 * nothing appended. fdatasync writes a mapping's dirty pages
 * like any others (Linux tracks a shared mapping's writes per page). The
 * space is reserved first because a store into a mapped hole on a full disk
 * is a SIGBUS. Reading stops at the first entry
 * that is not whole (length 0 or past the end, a sequence not above the last,
 * a checksum mismatch): after a crash only the tail of what was written can
 * be missing, and only what no fsync covered.
 *
 * Segments are numbered (wal-%08x.log) in the order they were started. The
 * sync thread keeps one spare created ahead, so an append that fills a
 * segment switches files without a system call beyond its write. */
#include "state/wlog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/crc32c.h"
#include "lib/err.h"
#include "lib/files.h"
#include "lib/log.h"
#include "state/store.h"

#define SEG_BYTES ((size_t)32 << 20)
#define SEG_HDR 16
#define ENTRY_HDR 16
#define SYNC_BATCH 16 /* segments fdatasync'ed per look at the list */

static const char MAGIC[8] = {'R', 'K', 'W', 'A', 'L', 0, 0, 1};

/* Bytes an entry with a payload of len bytes takes, padding included. */
static size_t entry_bytes(size_t len)
{
    return (ENTRY_HDR + len + 7) & ~(size_t)7;
}

/* A segment's open file and its shared mapping (SEG_BYTES). */
typedef struct segfile {
    int fd;
    uint8_t *map;
} segfile;

typedef struct seg {
    uint32_t index;     /* file number */
    segfile f;          /* open and mapped for appending (fd for fdatasync) */
    uint64_t last_seq;  /* newest entry's sequence; 0 when none yet */
    uint64_t entries;   /* entries in it */
    size_t written;     /* bytes in use: the next entry goes here */
    size_t synced;      /* bytes known to be on disk */
} seg;

struct rk_wlog {
    char dir[4096];
    pthread_mutex_t mu;      /* guards everything below (held briefly, never across I/O) */
    pthread_mutex_t trim_mu; /* held by a trim, and by a backup across its copy */
    seg *segs;               /* live segments, oldest first; the last is appended to */
    int nsegs, cap;
    segfile spare;           /* the next segment, created ahead; fd -1 when none */
    uint32_t spare_index;
    uint32_t next_index;     /* number the next created segment gets */
    bool dir_dirty;          /* a segment was created since the directory was last fsync'ed */
    uint32_t *found;         /* at open: numbers of the segments on disk, ascending */
    int nfound;
};

static void seg_path(const rk_wlog *l, uint32_t index, char *out, size_t n)
{
    snprintf(out, n, "%s/wal-%08" PRIx32 ".log", l->dir, index);
}

static void seg_unmap(segfile *f)
{
    munmap(f->map, SEG_BYTES);
    close(f->fd);
    f->fd = -1;
}

/* Creates segment index: space reserved, header written, mapped. 0 or -1
 * (logged). */
static int seg_create(const rk_wlog *l, uint32_t index, segfile *out)
{
    char path[4200];
    seg_path(l, index, path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rk_log_error("state: cannot create log segment %s: %s", path, strerror(errno));
        return -1;
    }
    uint8_t hdr[SEG_HDR] = {0};
    memcpy(hdr, MAGIC, sizeof MAGIC);
    /* fallocate where the file system has it; elsewhere a sparse file, and
     * a full disk is then a SIGBUS (docs/operations.md, as for the map) */
    if (fallocate(fd, 0, 0, (off_t)SEG_BYTES) != 0 && ftruncate(fd, (off_t)SEG_BYTES) != 0) {
        rk_log_error("state: cannot size log segment %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    void *m = MAP_FAILED;
    if (pwrite(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr ||
        (m = mmap(NULL, SEG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        rk_log_error("state: cannot write log segment %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    *out = (segfile){fd, m};
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The segment number in a file name, or -1 when it is not a segment's. */
static int64_t seg_index(const char *name)
{
    unsigned idx;
    int end = 0;
    if (strlen(name) != 16 || sscanf(name, "wal-%8x.log%n", &idx, &end) != 1 || end != 16)
        return -1;
    return idx;
}

bool rk_store_is_log_file(const char *name)
{
    return seg_index(name) >= 0;
}

int rk_wlog_open(const char *dir, rk_wlog **out)
{
    rk_wlog *l = calloc(1, sizeof *l);
    if (!l)
        return RK_ENOMEM;
    snprintf(l->dir, sizeof l->dir, "%s", dir);
    l->spare.fd = -1;
    l->next_index = 1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->trim_mu, NULL);
    DIR *d = opendir(dir);
    if (!d) {
        rk_log_error("state: cannot read %s: %s", dir, strerror(errno));
        rk_wlog_close(l, false);
        return RK_EIO;
    }
    int cap = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t idx = seg_index(e->d_name);
        if (idx < 0)
            continue;
        if (l->nfound == cap) {
            cap = cap ? cap * 2 : 16;
            uint32_t *p = realloc(l->found, (size_t)cap * sizeof *p);
            if (!p) {
                rc = RK_ENOMEM;
                break;
            }
            l->found = p;
        }
        l->found[l->nfound++] = (uint32_t)idx;
        if (idx >= l->next_index)
            l->next_index = (uint32_t)idx + 1;
    }
    closedir(d);
    if (rc != 0) {
        rk_wlog_close(l, false);
        return rc;
    }
    if (l->nfound > 1)
        qsort(l->found, (size_t)l->nfound, sizeof *l->found, cmp_u32);
    *out = l;
    return 0;
}

/* Reads one segment's entries; *stop set at the first one not whole. */
static int replay_seg(rk_wlog *l, uint32_t index, rk_wlog_fn fn, void *ctx, uint64_t *entries,
                      uint64_t *last_seq, bool *stop)
{
    char path[4200];
    seg_path(l, index, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        rk_log_error("state: cannot read log segment %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return RK_EIO;
    }
    size_t size = (size_t)st.st_size;
    if (size < SEG_HDR) { /* created, never written: nothing in it */
        close(fd);
        return 0;
    }
    const uint8_t *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        rk_log_error("state: cannot map log segment %s: %s", path, strerror(errno));
        return RK_EIO;
    }
    int rc = 0;
    size_t at = SEG_HDR;
    if (memcmp(m, MAGIC, sizeof MAGIC) != 0) {
        rk_log_warn("state: %s is not a log segment; ignoring it and what follows", path);
        *stop = true;
    }
    while (!*stop && rc == 0 && size - at >= ENTRY_HDR) {
        uint32_t len, crc;
        uint64_t seq;
        memcpy(&len, m + at, 4);
        memcpy(&crc, m + at + 4, 4);
        memcpy(&seq, m + at + 8, 8);
        if (len == 0)
            break; /* unwritten space: the segment ends here */
        if (len > size - at - ENTRY_HDR || seq <= *last_seq ||
            rk_crc32c(rk_crc32c(0, &seq, 8), m + at + ENTRY_HDR, len) != crc) {
            rk_log_warn("state: log segment %s ends in an incomplete entry at byte %zu "
                        "(a crash cut it short); it and what follows are ignored",
                        path, at);
            *stop = true;
            break;
        }
        rc = fn(ctx, seq, m + at + ENTRY_HDR, len);
        *last_seq = seq;
        (*entries)++;
        at += entry_bytes(len);
    }
    munmap((void *)m, size);
    return rc;
}

int rk_wlog_replay(rk_wlog *l, rk_wlog_fn fn, void *ctx, uint64_t *entries, uint64_t *last_seq)
{
    *entries = 0;
    *last_seq = 0;
    bool stop = false;
    for (int i = 0; i < l->nfound && !stop; i++) {
        int rc = replay_seg(l, l->found[i], fn, ctx, entries, last_seq, &stop);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int push_seg(rk_wlog *l, uint32_t index, segfile f)
{
    if (l->nsegs == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        seg *p = realloc(l->segs, (size_t)cap * sizeof *p);
        if (!p)
            return RK_ENOMEM;
        l->segs = p;
        l->cap = cap;
    }
    l->segs[l->nsegs++] = (seg){.index = index, .f = f, .written = SEG_HDR, .synced = 0};
    return 0;
}

int rk_wlog_reset(rk_wlog *l)
{
    char path[4200];
    for (int i = 0; i < l->nfound; i++) {
        seg_path(l, l->found[i], path, sizeof path);
        if (unlink(path) != 0 && errno != ENOENT) {
            rk_log_error("state: cannot delete log segment %s: %s", path, strerror(errno));
            return RK_EIO;
        }
    }
    l->nfound = 0;
    uint32_t index = l->next_index++;
    segfile f;
    if (seg_create(l, index, &f) != 0)
        return RK_EIO;
    if (rk_fsync_path(l->dir, true) != 0 || push_seg(l, index, f) != 0) {
        rk_log_error("state: cannot start the log in %s", l->dir);
        seg_unmap(&f);
        return RK_EIO;
    }
    return 0;
}

/* Under mu: moves appends to the spare segment, or to a new one made now. */
static int roll(rk_wlog *l)
{
    segfile f = l->spare;
    uint32_t index = l->spare_index;
    if (f.fd < 0) {
        index = l->next_index++;
        if (seg_create(l, index, &f) != 0)
            return RK_EIO;
        l->dir_dirty = true;
    }
    if (push_seg(l, index, f) != 0) {
        if (l->spare.fd < 0)
            seg_unmap(&f); /* a file left empty: replay reads nothing from it */
        return RK_ENOMEM;
    }
    l->spare.fd = -1;
    return 0;
}

int rk_wlog_append(rk_wlog *l, uint64_t seq, const void *p, size_t len)
{
    size_t total = entry_bytes(len);
    if (total > SEG_BYTES - SEG_HDR || len > UINT32_MAX)
        return RK_ETOOBIG;
    pthread_mutex_lock(&l->mu);
    int rc = 0;
    if (l->segs[l->nsegs - 1].written + total > SEG_BYTES)
        rc = roll(l);
    seg *cur = &l->segs[l->nsegs - 1];
    uint8_t *at = cur->f.map + cur->written;
    size_t off = cur->written;
    pthread_mutex_unlock(&l->mu);
    if (rc != 0)
        return rc;

    /* the rest of the segment is zeros: the padding is already there */
    uint32_t len32 = (uint32_t)len, crc = rk_crc32c(rk_crc32c(0, &seq, 8), p, len);
    memcpy(at, &len32, 4);
    memcpy(at + 4, &crc, 4);
    memcpy(at + 8, &seq, 8);
    memcpy(at + ENTRY_HDR, p, len);
    pthread_mutex_lock(&l->mu);
    cur = &l->segs[l->nsegs - 1];
    cur->written = off + total;
    cur->last_seq = seq;
    cur->entries++;
    pthread_mutex_unlock(&l->mu);
    return 0;
}

int rk_wlog_sync(rk_wlog *l)
{
    for (;;) {
        struct pending {
            int fd;
            size_t upto;
            uint32_t index;
        } todo[SYNC_BATCH];
        int n = 0;
        pthread_mutex_lock(&l->mu);
        bool dir = l->dir_dirty;
        l->dir_dirty = false;
        for (int i = 0; i < l->nsegs && n < SYNC_BATCH; i++)
            if (l->segs[i].written > l->segs[i].synced)
                todo[n++] = (struct pending){l->segs[i].f.fd, l->segs[i].written, l->segs[i].index};
        pthread_mutex_unlock(&l->mu);
        if (dir && rk_fsync_path(l->dir, true) != 0) {
            rk_log_error("state: fsync of %s failed: %s", l->dir, strerror(errno));
            pthread_mutex_lock(&l->mu);
            l->dir_dirty = true;
            pthread_mutex_unlock(&l->mu);
            return RK_EIO;
        }
        if (n == 0)
            return 0;
        /* fds stay open: only a trim closes them, and it runs on this thread */
        for (int i = 0; i < n; i++) {
            if (fdatasync(todo[i].fd) != 0) {
                rk_log_error("state: fsync of the write-ahead log failed: %s", strerror(errno));
                return RK_EIO;
            }
        }
        pthread_mutex_lock(&l->mu);
        for (int i = 0, j = 0; i < n; i++) {
            while (j < l->nsegs && l->segs[j].index != todo[i].index)
                j++;
            if (j < l->nsegs && l->segs[j].synced < todo[i].upto)
                l->segs[j].synced = todo[i].upto;
        }
        pthread_mutex_unlock(&l->mu);
        if (n < SYNC_BATCH)
            return 0;
    }
}

void rk_wlog_prepare(rk_wlog *l)
{
    pthread_mutex_lock(&l->mu);
    bool need = l->spare.fd < 0;
    uint32_t index = need ? l->next_index++ : 0;
    pthread_mutex_unlock(&l->mu);
    if (!need)
        return;
    segfile f;
    if (seg_create(l, index, &f) != 0)
        return; /* the append that needs it makes one */
    if (rk_fsync_path(l->dir, true) != 0)
        rk_log_warn("state: fsync of %s failed: %s", l->dir, strerror(errno));
    pthread_mutex_lock(&l->mu);
    l->spare = f;
    l->spare_index = index;
    pthread_mutex_unlock(&l->mu);
}

int rk_wlog_trim(rk_wlog *l, uint64_t keep)
{
    if (pthread_mutex_trylock(&l->trim_mu) != 0)
        return 0; /* a backup is copying the segments: next time */
    seg gone[SYNC_BATCH];
    int n = 0;
    pthread_mutex_lock(&l->mu);
    while (n < SYNC_BATCH && l->nsegs - n > 1 && l->segs[n].last_seq < keep)
        n++;
    memcpy(gone, l->segs, (size_t)n * sizeof *gone);
    memmove(l->segs, l->segs + n, (size_t)(l->nsegs - n) * sizeof *l->segs);
    l->nsegs -= n;
    pthread_mutex_unlock(&l->mu);
    char path[4200];
    for (int i = 0; i < n; i++) {
        seg_unmap(&gone[i].f);
        seg_path(l, gone[i].index, path, sizeof path);
        if (unlink(path) != 0)
            rk_log_warn("state: cannot delete log segment %s: %s", path, strerror(errno));
    }
    pthread_mutex_unlock(&l->trim_mu);
    return n;
}

void rk_wlog_hold(rk_wlog *l)
{
    pthread_mutex_lock(&l->trim_mu);
}

void rk_wlog_unhold(rk_wlog *l)
{
    pthread_mutex_unlock(&l->trim_mu);
}

int rk_wlog_copy(rk_wlog *l, const char *dir)
{
    pthread_mutex_lock(&l->mu);
    int n = l->nsegs;
    struct { uint32_t index; size_t upto; } *todo = malloc((size_t)(n ? n : 1) * sizeof *todo);
    for (int i = 0; todo && i < n; i++) {
        todo[i].index = l->segs[i].index;
        todo[i].upto = l->segs[i].written;
    }
    pthread_mutex_unlock(&l->mu);
    int rc = todo ? 0 : RK_ENOMEM;
    char src[4200], dst[4200];
    for (int i = 0; rc == 0 && i < n; i++) {
        seg_path(l, todo[i].index, src, sizeof src);
        snprintf(dst, sizeof dst, "%s/wal-%08" PRIx32 ".log", dir, todo[i].index);
        if (rk_fcopy(src, dst, 0600, todo[i].upto, true) != 0) {
            rk_log_error("state: backup: cannot copy %s to %s: %s", src, dst, strerror(errno));
            rc = RK_EIO;
        }
    }
    free(todo);
    return rc;
}

void rk_wlog_size(rk_wlog *l, uint64_t *entries, uint64_t *bytes)
{
    uint64_t e = 0, b = 0;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->nsegs; i++) {
        e += l->segs[i].entries;
        b += l->segs[i].written - SEG_HDR;
    }
    pthread_mutex_unlock(&l->mu);
    *entries = e;
    *bytes = b;
}

void rk_wlog_close(rk_wlog *l, bool drop)
{
    if (!l)
        return;
    char path[4200];
    for (int i = 0; i < l->nsegs; i++) {
        seg_unmap(&l->segs[i].f);
        seg_path(l, l->segs[i].index, path, sizeof path);
        if (drop)
            unlink(path);
    }
    for (int i = 0; drop && i < l->nfound; i++) {
        seg_path(l, l->found[i], path, sizeof path);
        unlink(path);
    }
    if (l->spare.fd >= 0) { /* never written: not needed at the next open */
        seg_unmap(&l->spare);
        seg_path(l, l->spare_index, path, sizeof path);
        unlink(path);
    }
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->trim_mu);
    free(l->segs);
    free(l->found);
    free(l);
}
