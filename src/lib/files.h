/* Small file-system helpers shared by the store, its log, the decision log
 * and backtests: copying a file, making a file or a directory entry
 * durable. */
#ifndef RK_LIB_FILES_H
#define RK_LIB_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Copies at most max bytes of src (SIZE_MAX: all of it) into dst, which is
 * created with mode and must not exist; with sync, dst is fsync'ed. 0,
 * RK_ENOTFOUND (no src), or RK_EIO with errno set to the cause. */
int rk_fcopy(const char *src, const char *dst, mode_t mode, size_t max, bool sync);

/* fsyncs the file at path, or with dir the directory (so that the names
 * created or removed in it survive a power cut). 0, or -1 with errno set. */
int rk_fsync_path(const char *path, bool dir);

#endif
