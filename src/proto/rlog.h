/* Traffic logs (`*.rlog`) and the decision log (DESIGN.md section 6): reading
 * and writing their records.
 *
 * A log is msgpack maps written one after another, no header. Two kinds of
 * record may appear, even mixed in one file:
 *   plain      a score request as a gateway sends it, optionally with `label`
 *              (1 fraud, 0 legitimate) and other extra keys riskd ignores;
 *   decision   what riskd's decision log appends, also a map, so the file is a
 *              traffic log to any msgpack reader:
 *                {"req": bin, "resp": bin, "ruleset": "name@version",
 *                 "at": int (wall ms when decided), "crc": uint32}
 *              `req` holds the request bytes exactly as received, `resp` the
 *              reply bytes, `crc` the CRC-32C of req's bytes then resp's.
 * A map whose "req" key holds a bin is a decision record; any other map is a
 * plain one.
 *
 * The reader maps the file and hands out records that borrow the mapping: no
 * copy, no allocation per record. It never returns a record it could not
 * verify: a decision record with a wrong crc, a value that is not msgpack or
 * not a map stops reading with an error naming the byte offset. The one
 * exception is the tail: a last record cut short (a crash mid-append), or a run
 * of zero bytes after the last record (what some file systems leave after a
 * power loss), is a *torn tail*: reading ends cleanly there and
 * rk_rlog_torn() says where. A truncated record counts as a torn tail only
 * when fewer than RK_RLOG_REC_MAX bytes remain, since no writer makes a larger
 * record; a longer run is a corrupt length in the middle of the file.
 *
 * Canonical key order (what the writers emit and `riskctl log to-csv` /
 * `from-csv` preserve, so that .rlog -> CSV -> .rlog is byte-identical):
 * the standard fields in RK_FIELD_MAP order, then `label`, then any other keys
 * in the order given. */
#ifndef RK_RLOG_H
#define RK_RLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/value.h"
#include "proto/proto.h"

#define RK_RLOG_REC_MAX (1u << 20) /* largest record a writer makes, and the torn-tail bound */

/* ---- CRC-32C ---- */

/* CRC-32C (Castagnoli), zlib-style chaining: start from 0, then
 * rk_crc32c(rk_crc32c(0, a, na), b, nb) is the CRC of a followed by b.
 * Uses SSE4.2 when the CPU has it, a table otherwise; the results are equal.
 * rk_crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t rk_crc32c(uint32_t crc, const void *buf, size_t len);
/* The table version alone, whatever the CPU (for tests). */
uint32_t rk_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* ---- Reading ---- */

typedef struct rk_rlog rk_rlog;

/* One record, borrowed from the log: valid until rk_rlog_close. */
typedef struct rk_rlog_rec {
    const uint8_t *req;   /* the request: a plain record's whole map, a decision record's `req` */
    size_t req_len;       /* its bytes */
    const uint8_t *resp;  /* a decision record's reply bytes; NULL for a plain record */
    size_t resp_len;      /* its bytes; 0 for a plain record */
    const char *ruleset;  /* a decision record's "name@version", not NUL-terminated; NULL if none */
    uint32_t ruleset_len; /* its bytes */
    int64_t at;           /* a decision record's wall-clock ms; 0 when absent */
    int label;            /* the request's `label`: 1 (any nonzero int, true), 0, or -1 when absent */
    const uint8_t *raw;   /* the whole record */
    size_t len;           /* its bytes */
    uint64_t offset;      /* its byte offset in the file */
} rk_rlog_rec;

/* Maps the file at path for reading (an empty file is a log of no records).
 * Returns 0 with *out set; RK_ENOTFOUND (no such file), RK_EIO (errno tells
 * why), or RK_ENOMEM. */
int rk_rlog_open(const char *path, rk_rlog **out);

/* Reads a log held in memory (borrowed: buf must outlive the reader).
 * Returns 0 or RK_ENOMEM. */
int rk_rlog_open_mem(const uint8_t *buf, size_t len, rk_rlog **out);

/* Reads the next record into *rec. Returns 1 with *rec filled; 0 at the end
 * of the log (a torn tail ends it too: see rk_rlog_torn); or, for a record
 * that is not a map, is malformed, or fails its crc, RK_ECORRUPT or RK_EPARSE
 * with rk_rlog_error() naming the byte offset — and the same again on every
 * later call, since nothing after a bad record can be trusted. */
int rk_rlog_next(rk_rlog *r, rk_rlog_rec *rec);

/* Starts reading again from the first record. */
void rk_rlog_rewind(rk_rlog *r);

/* Whether reading ended at a torn tail; *offset (may be NULL) receives its
 * byte offset. Meaningful once rk_rlog_next has returned 0. */
bool rk_rlog_torn(const rk_rlog *r, uint64_t *offset);

/* The last error as one line, "byte N: what is wrong"; "" when none. */
const char *rk_rlog_error(const rk_rlog *r);

/* Size of the log in bytes. */
uint64_t rk_rlog_size(const rk_rlog *r);

/* Unmaps and frees; r may be NULL. */
void rk_rlog_close(rk_rlog *r);

/* ---- Writing (append to a caller's rk_outbuf; nothing allocates) ---- */

/* A decision record's content. */
typedef struct rk_rlog_decision {
    const uint8_t *req;   /* request bytes exactly as received */
    size_t req_len;       /* their length */
    const uint8_t *resp;  /* the reply bytes */
    size_t resp_len;      /* their length */
    const char *ruleset;  /* "name@version" */
    size_t ruleset_len;   /* its bytes */
    int64_t at;           /* wall-clock ms when decided */
} rk_rlog_decision;

/* Bytes a decision record of this content takes at most, so a writer can
 * size its buffer. */
size_t rk_rlog_decision_size(const rk_rlog_decision *d);

/* Appends one decision record (crc computed here) to out. Returns 0, or
 * RK_ETOOBIG when it did not fit out or would exceed RK_RLOG_REC_MAX (out
 * then holds a clean prefix: reset it). */
int rk_rlog_encode_decision(rk_outbuf *out, const rk_rlog_decision *d);

/* One key of a plain record. */
typedef struct rk_rlog_field {
    const char *key; /* the key's bytes, not NUL-terminated */
    uint32_t key_len; /* its length */
    rk_value v;       /* the value; a missing one leaves the key out */
} rk_rlog_field;

/* Appends one plain traffic record holding the n fields, in canonical key
 * order (standard fields in RK_FIELD_MAP order, `label`, then the others in
 * the order given). Ints take msgpack's shortest encoding, floats float64.
 * Returns 0; RK_EEXISTS when a key appears twice (nothing appended);
 * RK_ETOOBIG as rk_rlog_encode_decision. */
int rk_rlog_encode_traffic(rk_outbuf *out, const rk_rlog_field *f, int n);

#endif
