/* Copying a file's bytes into a new file: backups and the stores seeded
 * from them. */
#ifndef RK_LIB_FCOPY_H
#define RK_LIB_FCOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Copies at most max bytes of src (SIZE_MAX: all of it) into dst, which is
 * created with mode and must not exist; with sync, dst is fsync'ed. 0,
 * RK_ENOTFOUND (no src), or RK_EIO with errno set to the cause. */
int rk_fcopy(const char *src, const char *dst, mode_t mode, size_t max, bool sync);

#endif
