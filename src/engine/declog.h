/* The decision log (DESIGN.md section 6): every score reply riskd sends —
 * degraded and replayed ones included, never errors, pings or admin ops — is
 * appended with its request to files `decisions-<UTC time>-<seq>.rlog` in
 * `<data_dir>/decisions/`, as decision records of proto/rlog.h, so the log is
 * readable by `riskctl log` and replayable like any traffic log. docs/logs.md
 * describes the files.
 *
 * Two sides. Scoring threads call rk_declog_append, which copies the request
 * and reply bytes into a bounded in-memory queue and returns: no allocation,
 * no system call, a mutex held for a memcpy; a full queue drops the record and
 * counts it, it never waits. One writer thread, started by rk_declog_open,
 * empties the queue in batches (one write(2) for many records), pseudonymises
 * chosen fields on the way, rotates files by size, removes old files beyond
 * keep_files and fsyncs each file as it closes. rk_declog_close writes
 * everything still queued, fsyncs and stops the thread.
 *
 * A record's fate is exactly one of: written, dropped (queue full), or
 * errors (lost to an I/O error, or too large for a log record); the three add
 * up to the records offered once the queue is empty. */
#ifndef RK_DECLOG_H
#define RK_DECLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RK_DECLOG_DIR "decisions"                  /* under the data directory */
#define RK_DECLOG_MAX_FILE_DEFAULT (256ull << 20)  /* bytes before a file rotates */
#define RK_DECLOG_QUEUE_DEFAULT 65536              /* records the queue holds */
#define RK_DECLOG_QUEUE_BYTES_PER_RECORD 512       /* queue memory reserved per record */
#define RK_DECLOG_PSEUDONYM_LEN 24                 /* "p:" + 22 base64url characters */

typedef struct rk_declog rk_declog;

typedef struct rk_declog_config {
    bool enabled;            /* false: rk_engine_open opens no log (the library default) */
    const char *dir;         /* directory of the log files; NULL: <data_dir>/decisions */
    uint64_t max_file_bytes; /* a file is closed before it would grow past this; 0: default */
    int keep_files;          /* files kept, the newest included; 0 keeps every file */
    uint32_t queue;          /* records the queue holds; 0: default */
    uint32_t pseudonymise;   /* standard fields to pseudonymise: bit (1u << RK_F_x) per field */
} rk_declog_config;

/* Fills c with the defaults: disabled, 256 MiB files, all files kept, a queue
 * of 65536 records, nothing pseudonymised. */
void rk_declog_config_default(rk_declog_config *c);

/* The standard fields that may be pseudonymised (identifiers: account, card,
 * device, ip, email, merchant) as a mask of (1u << RK_F_x) bits. `id` is not
 * one: feedback and retries find decisions by it. */
uint32_t rk_declog_pseudonymisable(void);

/* Opens the log in c->dir (required here; created with mode 0700, its mode
 * tightened to 0700 if looser) and starts the writer thread. Files are created
 * as records arrive, so a restart always begins a new file and never appends
 * after a record a crash left torn. secret_dir is the data directory whose
 * installation secret keys the pseudonyms (state/keyhash.h); it is read only
 * when c->pseudonymise is not 0. Returns 0 and sets *out; RK_EINVAL (a
 * field that cannot be pseudonymised, or no dir), RK_EIO (the directory
 * cannot be created or written: errno and the log say why), RK_ENOMEM, or
 * the keyhash's error. */
int rk_declog_open(const rk_declog_config *c, const char *secret_dir, rk_declog **out);

/* Writes everything queued, fsyncs and closes the current file, stops the
 * writer thread and frees. Logs a summary. dl may be NULL. */
void rk_declog_close(rk_declog *dl);

/* The hot path: queues one decision (the request bytes as received, the
 * reply bytes sent, the rule set's "name@version", wall-clock ms). Copies
 * everything; the caller's buffers may be reused on return. Never blocks on
 * the writer and never allocates: when the queue is full the record is
 * dropped and counted. Thread-safe. dl may be NULL (no log: nothing done). */
void rk_declog_append(rk_declog *dl, const uint8_t *req, size_t req_len, const uint8_t *resp,
                      size_t resp_len, const char *ruleset, int64_t at_ms);

/* Waits until every record queued before the call has been written (or
 * counted lost) and handed to the kernel. For tests and orderly hand-overs;
 * not for the hot path. Returns 0, or RK_EINVAL while paused. */
int rk_declog_flush(rk_declog *dl);

/* For tests: a paused writer takes nothing from the queue, so it fills up.
 * rk_declog_close unpauses. */
void rk_declog_pause(rk_declog *dl, bool paused);

/* The pseudonym riskd writes for a value of a pseudonymised field:
 * "p:" + base64url (no padding) of a 16-byte BLAKE2b keyed with a key derived
 * from the installation secret, NUL-terminated. The same value gets the same
 * pseudonym in every field and across restarts. RK_EINVAL when the log
 * pseudonymises nothing (it holds no key). */
int rk_declog_pseudonym(const rk_declog *dl, const void *value, size_t len,
                        char out[RK_DECLOG_PSEUDONYM_LEN + 1]);

/* The `decision_log` section of `stats` (docs/config.md, "Metrics"). */
typedef struct rk_declog_stats {
    uint64_t written;     /* records written to a file */
    uint64_t dropped;     /* records dropped because the queue was full */
    uint64_t bytes;       /* bytes written to files */
    uint64_t files;       /* files created since start */
    uint64_t rotations;   /* files closed for having reached max_file_bytes */
    uint64_t queue_depth; /* records queued, not yet taken by the writer (a gauge) */
    uint64_t errors;      /* records lost to I/O errors or too large for a record */
} rk_declog_stats;

void rk_declog_stats_get(rk_declog *dl, rk_declog_stats *out);

#endif
