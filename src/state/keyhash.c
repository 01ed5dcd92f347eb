/* The installation secret and keyed hashing.
 *
 * The secret is created once, atomically: it is written to a temporary file,
 * fsynced, and link(2)ed into place, so two processes starting on an empty data
 * directory agree on one secret and a crash never leaves a short secret file.
 * An existing file is trusted only if it is a regular file owned by us, 32 bytes
 * long, with no group or other permission bits; otherwise we refuse to start
 * rather than silently re-key (which would orphan every stored counter) or use a
 * secret others could read.
 *
 * Digests are SipHash-2-4 with 128-bit output (libsodium
 * crypto_shorthash_siphashx24) under a 16-byte key derived from the secret
 * with keyed BLAKE2b. SipHash is a pseudorandom function designed for short
 * inputs: a digest of a 10–40 byte identifier costs about 20 ns where keyed
 * BLAKE2b costs about 400 (a request hashes six or seven values, so this was
 * a fifth of the state store's time). Keyed with a secret, its 128-bit output
 * has no collisions an outsider can aim for, and random ones only near 2^64
 * values. The struct lives in sodium_malloc'd memory (guard pages, no core
 * dumps, wiped on free). The secret is never logged. */
#include "state/keyhash.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/files.h"
#include "lib/log.h"

/* Largest compound key hashed in one go: 4 values of up to this many bytes,
 * each behind a 4-byte length. Longer values (beyond the wire's 128-byte
 * string limit) go through a BLAKE2b pre-digest first. */
#define PART_MAX 128

_Static_assert(RK_HASH_LEN == crypto_shorthash_siphashx24_BYTES, "digests are SipHash-128");

struct rk_keyhash {
    uint8_t hash_key[crypto_shorthash_siphashx24_KEYBYTES]; /* derived: the key of every digest */
    uint8_t secret[RK_SECRET_LEN];  /* the installation secret */
    uint8_t seal_key[crypto_stream_xchacha20_KEYBYTES]; /* derived: keyed hash of a fixed label */
};

/* Reads exactly n bytes; -1 on error or short file. */
static int read_full(int fd, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const uint8_t *p, size_t n)
{
    size_t put = 0;
    while (put < n) {
        ssize_t r = write(fd, p + put, n - put);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        put += (size_t)r;
    }
    return 0;
}

/* Writes secret to path via a temporary file and link(2), which fails with
 * EEXIST instead of replacing a secret someone else created first. */
static int create_secret(const char *dir, const char *path, const uint8_t *secret)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/.%s.%ld.tmp", dir, RK_SECRET_FILE, (long)getpid());
    (void)unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rk_log_error("state: cannot create %s: %s", tmp, strerror(errno));
        return RK_EIO;
    }
    int rc = 0;
    if (write_full(fd, secret, RK_SECRET_LEN) != 0 || fsync(fd) != 0) {
        rk_log_error("state: cannot write %s: %s", tmp, strerror(errno));
        rc = RK_EIO;
    }
    close(fd);
    if (rc == 0 && link(tmp, path) != 0) {
        rc = errno == EEXIST ? RK_EEXISTS : RK_EIO;
        if (rc == RK_EIO)
            rk_log_error("state: cannot create %s: %s", path, strerror(errno));
    }
    (void)unlink(tmp);
    if (rc == 0)
        (void)rk_fsync_path(dir, true);
    return rc;
}

/* Opens and validates an existing secret file. RK_ENOTFOUND when absent. */
static int load_secret(const char *path, uint8_t *secret)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return RK_ENOTFOUND;
        rk_log_error("state: cannot open %s: %s", path, strerror(errno));
        return errno == ELOOP ? RK_EINVAL : RK_EIO;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rk_log_error("state: cannot stat %s: %s", path, strerror(errno));
        rc = RK_EIO;
    } else if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        rk_log_error("state: %s is not a regular file owned by this user; refusing to use it", path);
        rc = RK_EINVAL;
    } else if (st.st_mode & 077) {
        rk_log_error("state: %s has mode %04o; it must not be readable by group or others "
                     "(chmod 600 it)", path, (unsigned)(st.st_mode & 07777));
        rc = RK_EINVAL;
    } else if (st.st_size != RK_SECRET_LEN) {
        rk_log_error("state: %s is %jd bytes, expected %d; refusing to use it", path,
                     (intmax_t)st.st_size, RK_SECRET_LEN);
        rc = RK_EINVAL;
    } else if (read_full(fd, secret, RK_SECRET_LEN) != 0) {
        rk_log_error("state: cannot read %s", path);
        rc = RK_EIO;
    }
    close(fd);
    return rc;
}

int rk_keyhash_open(const char *dir, rk_keyhash **out)
{
    if (sodium_init() < 0)
        return RK_EIO;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, RK_SECRET_FILE) >= sizeof path)
        return RK_EINVAL;
    rk_keyhash *k = sodium_malloc(sizeof *k);
    if (!k)
        return RK_ENOMEM;
    int rc = load_secret(path, k->secret);
    if (rc == RK_ENOTFOUND) {
        randombytes_buf(k->secret, RK_SECRET_LEN);
        rc = create_secret(dir, path, k->secret);
        if (rc == RK_EEXISTS) /* another process won the race: use its secret */
            rc = load_secret(path, k->secret);
        else if (rc == 0)
            rk_log_info("state: created a new installation secret in %s", path);
    }
    if (rc != 0) {
        rk_keyhash_free(k);
        return rc;
    }
    static const char hlabel[] = "riskd hash key v2";
    crypto_generichash(k->hash_key, sizeof k->hash_key, (const unsigned char *)hlabel,
                       sizeof hlabel - 1, k->secret, RK_SECRET_LEN);
    static const char label[] = "riskd seal key v1";
    crypto_generichash(k->seal_key, sizeof k->seal_key, (const unsigned char *)label,
                       sizeof label - 1, k->secret, RK_SECRET_LEN);
    *out = k;
    return 0;
}

void rk_keyhash_free(rk_keyhash *k)
{
    if (k)
        sodium_free(k); /* wipes the memory */
}

int rk_keyhash_write(const rk_keyhash *k, const char *dir)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, RK_SECRET_FILE) >= sizeof path)
        return RK_EINVAL;
    return create_secret(dir, path, k->secret);
}

void rk_keyhash_bytes(const rk_keyhash *k, const void *p, size_t n, uint8_t out[RK_HASH_LEN])
{
    crypto_shorthash_siphashx24(out, p, n, k->hash_key);
}

/* The canonical text of v: a pointer into v or into buf. -1 when missing. */
static int value_text(const rk_value *v, char *buf, size_t size, const char **p, size_t *n)
{
    switch (v->type) {
    case RK_T_STR:
        *p = v->s ? v->s : "";
        *n = v->len;
        return 0;
    case RK_T_INT:
        *n = (size_t)snprintf(buf, size, "%" PRId64, v->i);
        *p = buf;
        return 0;
    case RK_T_FLOAT:
        *n = (size_t)snprintf(buf, size, "%.17g", v->f);
        *p = buf;
        return 0;
    case RK_T_BOOL:
        *p = v->b ? "true" : "false";
        *n = strlen(*p);
        return 0;
    default:
        return -1;
    }
}

int rk_keyhash_value(const rk_keyhash *k, const rk_value *v, uint8_t out[RK_HASH_LEN])
{
    return rk_keyhash_values(k, &v, 1, out);
}

int rk_keyhash_values(const rk_keyhash *k, const rk_value *const *vs, int n,
                      uint8_t out[RK_HASH_LEN])
{
    if (n < 1 || n > 4)
        return RK_EINVAL;
    char buf[40];
    const char *p;
    size_t len;
    if (n == 1) {
        if (value_text(vs[0], buf, sizeof buf, &p, &len) != 0)
            return RK_EINVAL;
        rk_keyhash_bytes(k, p, len, out);
        return 0;
    }
    /* Several parts: one SipHash over (u32 length, text) pairs, so that
     * ("ab","c") != ("a","bc"). A part longer than PART_MAX is replaced by
     * its own keyed digest, tagged by a length no real part of that size
     * could have. */
    unsigned char msg[4 * (sizeof(uint32_t) + PART_MAX)];
    size_t m = 0;
    for (int i = 0; i < n; i++) {
        if (value_text(vs[i], buf, sizeof buf, &p, &len) != 0)
            return RK_EINVAL;
        uint32_t l = (uint32_t)len;
        uint8_t digest[RK_HASH_LEN];
        if (len > PART_MAX) {
            rk_keyhash_bytes(k, p, len, digest);
            l = UINT32_MAX;
            p = (const char *)digest;
            len = sizeof digest;
        }
        memcpy(msg + m, &l, sizeof l);
        memcpy(msg + m + sizeof l, p, len);
        m += sizeof l + len;
    }
    rk_keyhash_bytes(k, msg, m, out);
    return 0;
}

void rk_keyhash_seal(const rk_keyhash *k, const uint8_t nonce[RK_SEAL_NONCE_LEN], void *buf,
                     size_t n)
{
    crypto_stream_xchacha20_xor(buf, buf, n, nonce, k->seal_key);
}

uint64_t rk_hash64(const void *p, size_t n)
{
    /* SipHash-2-4 under a fixed, public key: a fast, well-mixed digest (these
     * inputs are configuration, not secrets; the list tag is hashed on every
     * request). */
    static const unsigned char key[crypto_shorthash_KEYBYTES] = "riskd hash64 v2";
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, p, n, key);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return v;
}

uint64_t rk_hash_prefix64(const uint8_t h[RK_HASH_LEN])
{
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return v;
}
