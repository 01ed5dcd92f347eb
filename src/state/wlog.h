/* The write-ahead log's files: numbered segments in the data directory
 * (wal-00000001.log, ...) holding entries in sequence, each checksummed, so
 * that a crash's torn tail is recognised and ignored.
 *
 * One appender at a time (the store's gate); rk_wlog_sync, rk_wlog_prepare
 * and rk_wlog_trim belong to one background thread (the store's sync
 * thread) and may run while the appender appends; rk_wlog_copy may run from
 * any thread. Internal to src/state. */
#ifndef RK_STATE_WLOG_H
#define RK_STATE_WLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rk_wlog rk_wlog;

/* Finds the log's segments in dir (none is fine). RK_EIO, RK_ENOMEM. */
int rk_wlog_open(const char *dir, rk_wlog **out);

/* Calls fn for every whole entry, oldest first, until fn returns non-zero
 * (returned) or an entry is not whole (a crash's torn tail: the rest is
 * ignored, with a warning when that is more than unwritten space).
 * *entries and *last_seq (0 when none) say what was read. RK_EIO. */
typedef int (*rk_wlog_fn)(void *ctx, uint64_t seq, const uint8_t *p, size_t len);
int rk_wlog_replay(rk_wlog *l, rk_wlog_fn fn, void *ctx, uint64_t *entries, uint64_t *last_seq);

/* After a replay whose effects are durable: deletes every segment and
 * starts a new one. RK_EIO. */
int rk_wlog_reset(rk_wlog *l);

/* Appends an entry with sequence seq (larger than any before). RK_EIO,
 * RK_ENOMEM, RK_TOOBIG. */
int rk_wlog_append(rk_wlog *l, uint64_t seq, const void *p, size_t len);

/* Makes everything appended before the call durable. RK_EIO. */
int rk_wlog_sync(rk_wlog *l);

/* Creates the next segment ahead of need, so that an append that fills
 * one does not create a file on the request path. */
void rk_wlog_prepare(rk_wlog *l);

/* Deletes the segments whose every entry is older than keep (their changes
 * are in the databases, durably). Returns how many were deleted. */
int rk_wlog_trim(rk_wlog *l, uint64_t keep);

/* A backup: rk_wlog_hold keeps trims from deleting anything until
 * rk_wlog_unhold, so that segments copied after the databases still hold
 * every change the copy of the databases lacks; rk_wlog_copy (between the
 * two) copies the live segments into dir. RK_EIO, RK_ENOMEM. */
void rk_wlog_hold(rk_wlog *l);
int rk_wlog_copy(rk_wlog *l, const char *dir);
void rk_wlog_unhold(rk_wlog *l);

/* Entries and bytes in the segments not yet trimmed. */
void rk_wlog_size(rk_wlog *l, uint64_t *entries, uint64_t *bytes);

/* With drop, deletes the log's files as well (everything in it is in the
 * databases, durably). */
void rk_wlog_close(rk_wlog *l, bool drop);

#endif
