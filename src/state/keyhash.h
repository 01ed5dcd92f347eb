/* Keyed hashing of entity values and transaction ids, and the per-installation
 * secret it is keyed with.
 *
 * Nothing that identifies a customer is written to the store in the clear:
 * counter keys, list members and transaction ids are all 128-bit SipHash-2-4
 * digests (libsodium crypto_shorthash_siphashx24) under a key derived from 32
 * random bytes kept in DATA_DIR/secret (mode 0600). A value hashes to the same digest whatever its
 * rk_type as long as its text is the same (int 5411 and string "5411"), which is
 * how the static lists of the rule language compare values too. */
#ifndef RK_STATE_KEYHASH_H
#define RK_STATE_KEYHASH_H

#include <stddef.h>
#include <stdint.h>

#include "lib/value.h"

#define RK_HASH_LEN 16       /* bytes in every keyed digest */
#define RK_SECRET_LEN 32     /* bytes in DATA_DIR/secret */
#define RK_SECRET_FILE "secret"

typedef struct rk_keyhash rk_keyhash;

/* Loads DIR/secret, creating it (32 bytes from randombytes_buf, mode 0600) when
 * absent. Refuses (RK_EINVAL, logged without the secret) a file that is not a
 * regular file owned by this user, has group/other permission bits, or is not
 * exactly 32 bytes. RK_EIO on other file errors, RK_ENOMEM. */
int rk_keyhash_open(const char *dir, rk_keyhash **out);
/* Wipes the secret from memory and frees; k may be NULL. */
void rk_keyhash_free(rk_keyhash *k);

/* Writes the secret to DIR/secret (created with O_EXCL, mode 0600, fsynced):
 * used by backups. RK_EEXISTS when the file exists, RK_EIO otherwise. */
int rk_keyhash_write(const rk_keyhash *k, const char *dir);

/* Keyed digest of n bytes. Thread-safe, allocation-free. */
void rk_keyhash_bytes(const rk_keyhash *k, const void *p, size_t n, uint8_t out[RK_HASH_LEN]);

/* Keyed digest of a value's canonical text (strings as-is, ints in decimal,
 * bools "true"/"false", floats "%.17g"). RK_EINVAL for a missing value. */
int rk_keyhash_value(const rk_keyhash *k, const rk_value *v, uint8_t out[RK_HASH_LEN]);

/* Keyed digest of a compound key: one value is hashed exactly as
 * rk_keyhash_value (so a single-field counter key equals the value's list
 * digest); several are hashed as (u32 length, text) pairs. RK_EINVAL when any
 * is missing or n is outside 1..4. */
int rk_keyhash_values(const rk_keyhash *k, const rk_value *const *vs, int n,
                      uint8_t out[RK_HASH_LEN]);

#define RK_SEAL_NONCE_LEN 24

/* Encrypts or decrypts (the same operation) n bytes in place with XChaCha20
 * under a key derived from the secret, for data kept at rest that may contain
 * identifiers (stored replies echo the transaction id). The nonce must differ
 * for every distinct plaintext. */
void rk_keyhash_seal(const rk_keyhash *k, const uint8_t nonce[RK_SEAL_NONCE_LEN], void *buf,
                     size_t n);

/* Unkeyed 64-bit digest (for definition identities and list names, which are
 * not secret). */
uint64_t rk_hash64(const void *p, size_t n);

/* First 8 bytes of a digest as an integer (value hashes for distinct counts). */
uint64_t rk_hash_prefix64(const uint8_t h[RK_HASH_LEN]);

#endif
